"""The build's cooldown (pure, on a fake index answer): which shipped wheels are younger
than artifact.min_age_days at the commit time, or of unknown age, and the one line."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployer.builder import cooldown, index
from deployer.config import validate_config
from deployer.errors import ConfigError

COMMIT = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
OLD, YOUNG = "kurigram-2.2.26-py3-none-any.whl", "aiohttp-3.14.5-cp311-cp311-manylinux_2_17_x86_64.whl"
WHEELS = {OLD: "a" * 64, YOUNG: "b" * 64, "pyaes-1.6.1-py3-none-any.whl": "c" * 64}


def simple_page(*files: tuple[str, str, datetime | None]) -> dict:
    """A project's page of the simple API as JSON (PEP 691, with PEP 700 upload times)."""
    return {
        "meta": {"api-version": "1.1"},
        "files": [
            {"filename": name, "hashes": {"sha256": sha}, "url": f"https://files.invalid/{name}"}
            | ({"upload-time": when.isoformat().replace("+00:00", "Z")} if when else {})
            for name, sha, when in files
        ],
    }


def answers(young_age=timedelta(days=2)) -> dict:
    return {
        ("kurigram", "2.2.26"): cooldown.parse_simple_api(
            simple_page(
                (OLD, "a" * 64, COMMIT - timedelta(days=75)),
                ("kurigram-2.2.27-py3-none-any.whl", "f" * 64, COMMIT + timedelta(days=3)),
            ),
            "2.2.26",
        ),
        ("aiohttp", "3.14.5"): cooldown.parse_simple_api(
            simple_page((YOUNG, "b" * 64, COMMIT - young_age), ("aiohttp-3.14.5.tar.gz", "e" * 64, COMMIT)),
            "3.14.5",
        ),
        # built here from its sdist: the sdist's upload counts
        ("pyaes", "1.6.1"): cooldown.parse_simple_api(
            simple_page(("pyaes-1.6.1.tar.gz", "d" * 64, datetime(2017, 9, 20, tzinfo=UTC))), "1.6.1"
        ),
    }


def test_off_by_default_and_validated():
    config = validate_config({"app": {"name": "x"}})
    assert config.artifact.min_age_days == 0 and config.artifact.min_age_policy == "refuse"
    with pytest.raises(ConfigError, match=r"artifact\.min_age_policy: Input should be 'refuse' or 'warn'"):
        validate_config({"app": {"name": "x"}, "artifact": {"min_age_policy": "maybe"}})
    with pytest.raises(ConfigError, match=r"artifact\.min_age_days: Input should be greater than or equal"):
        validate_config({"app": {"name": "x"}, "artifact": {"min_age_days": -1}})


def test_a_young_wheel_is_found_with_its_upload_time_and_age():
    findings = cooldown.check(WHEELS, answers(), COMMIT, 7)
    assert [(f.name, f.version, f.filename) for f in findings] == [("aiohttp", "3.14.5", YOUNG)]
    (young,) = findings
    assert young.uploaded == COMMIT - timedelta(days=2) and young.age_days == pytest.approx(2.0)
    line = cooldown.summary(findings, 7)
    assert line == (
        f"artifact.min_age_days = 7: aiohttp 3.14.5 ({YOUNG}) was uploaded 2026-11-24T10:15:00Z, "
        "2.0 days before the commit; pin an older version or build a later commit "
        '(artifact.min_age_policy = "warn" only warns)'
    )
    assert "\n" not in line


def test_old_enough_is_let_through_and_the_boundary_is_exact():
    assert cooldown.check(WHEELS, answers(young_age=timedelta(days=7)), COMMIT, 7) == []
    assert cooldown.check(WHEELS, answers(young_age=timedelta(days=7) - timedelta(seconds=1)), COMMIT, 7)
    assert cooldown.check(WHEELS, answers(), COMMIT, 1) == []


def test_a_wheel_the_index_cannot_vouch_for_has_no_age():
    other_bytes = {
        **answers(),
        ("kurigram", "2.2.26"): cooldown.parse_simple_api(
            simple_page((OLD, "9" * 64, COMMIT - timedelta(days=75))), "2.2.26"
        ),
    }
    not_listed = {**answers(), ("kurigram", "2.2.26"): "the index does not list this project"}
    for fake, why in (
        (other_bytes, "the index's file of that name has other bytes (sha256)"),
        (not_listed, "the index does not list this project"),
    ):
        findings = cooldown.check(WHEELS, fake, COMMIT, 7)
        assert [(f.name, f.uploaded, f.why) for f in findings] == [
            ("aiohttp", COMMIT - timedelta(days=2), ""),  # the youngest first, then the unknown
            ("kurigram", None, why),
        ]
    line = cooldown.summary(cooldown.check(WHEELS, not_listed, COMMIT, 7), 7)
    assert "(and 1 more: kurigram)" in line


def test_a_file_uploaded_after_the_commit_counts_from_its_own_upload():
    late = {
        **answers(),
        ("kurigram", "2.2.26"): cooldown.parse_simple_api(
            simple_page((OLD, "a" * 64, COMMIT + timedelta(days=1))), "2.2.26"
        ),
    }
    (finding,) = [f for f in cooldown.check(WHEELS, late, COMMIT, 7) if f.name == "kurigram"]
    assert "1.0 days after the commit" in finding.describe()


def test_the_simple_api_is_asked_over_http(tmp_path):
    pages = {"/simple/kurigram/": simple_page((OLD, "a" * 64, COMMIT - timedelta(days=75)))}
    asked = []

    class Index(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append((self.path, self.headers["Accept"]))
            body = json.dumps(pages[self.path]).encode() if self.path in pages else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", index.ACCEPT)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        found = index.releases_files([("kurigram", "2.2.26"), ("nothere", "1.0")], url, timeout=5)
    finally:
        server.shutdown()
    assert found[("nothere", "1.0")] == "the index does not list this project"
    (upload,) = found[("kurigram", "2.2.26")]
    assert (upload.filename, upload.sha256, upload.uploaded) == (OLD, "a" * 64, COMMIT - timedelta(days=75))
    assert set(asked) == {("/simple/kurigram/", index.ACCEPT), ("/simple/nothere/", index.ACCEPT)}


def test_file_versions():
    assert cooldown.file_version("python-socks-3.2.1.tar.gz") == "3.2.1"
    assert cooldown.file_version(YOUNG) == "3.14.5"
    assert cooldown.file_version("README.txt") is None
