"""``deployer diff`` on real artifacts: a version bump, an added dependency, an added
``.pth``, a ``.env`` key added (and never a value); and the engine's inventory of the
releases it keeps, with the keys of the .env each ran with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.diff import diff
from deployer.host.envfile import backup_env, record_env, write_env
from deployer.host.layout import Layout
from deployer.host.unpack import unpack
from tests.conftest import SUPPLY_SECRET

pytestmark = pytest.mark.slow


def deployer_diff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args], capture_output=True, text=True, timeout=120
    )


def test_a_code_change_is_a_version_bump_and_one_changed_file(variant_builds):
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    out = deployer_diff("--json", "diff", str(v1.path), str(v2.path))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert (d["from"]["version"], d["to"]["version"]) == (v1.manifest["version"], v2.manifest["version"])
    assert d["from"]["version"] != d["to"]["version"]
    assert d["app_files"] == {"added": [], "removed": [], "changed": ["tg_video_streamer/health.py"]}
    assert d["dependencies"] == {"added": [], "removed": [], "changed": []}
    assert d["pth"] == {"added": [], "changed": [], "removed": []}
    assert d["templates"] == {"added": [], "removed": [], "changed": {}}
    assert d["config"] == {}
    assert d["env"] == {
        "required": {"added": [], "removed": []},
        "public": {"added": [], "removed": []},
        "keys": None,
    }
    text = deployer_diff("--plain", "diff", str(v1.path), str(v2.path))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"tg_video_streamer {v1.manifest['version']} ({v1.manifest['release_id']}) -> "
        f"tg_video_streamer {v2.manifest['version']} ({v2.manifest['release_id']})",
        "tg_video_streamer files: 0 added, 0 removed, 1 changed",
        "  ~ tg_video_streamer/health.py",
    ]


def test_a_new_dependency_a_new_pth_and_a_new_env_key_are_shown_without_any_value(variant_builds):
    v1, supply = variant_builds("v1"), variant_builds("supply")
    out = deployer_diff("--json", "diff", str(v1.path), str(supply.path))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    six = next(n for n, f in supply.manifest["files"].items() if n.startswith("wheels/six-"))
    assert d["dependencies"]["added"] == [
        {"name": "six", "version": "1.17.0", "sha256": supply.manifest["files"][six]["sha256"]}
    ]
    assert d["dependencies"]["removed"] == [] and d["dependencies"]["changed"] == []
    (pth,) = d["pth"]["added"]
    assert (pth["wheel"], pth["file"]) == ("tg-video-streamer", "tg_video_streamer_boot.pth")
    assert "tg_video_streamer_boot.pth" in d["app_files"]["added"]
    assert d["env"]["required"] == {"added": ["NEW_TOKEN"], "removed": []}
    text = deployer_diff("--plain", "diff", str(v1.path), str(supply.path))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "dependencies: 1 added, 0 removed, 0 changed" in lines
    assert f"  + six 1.17.0 (sha256:{d['dependencies']['added'][0]['sha256'][:12]})" in lines
    assert ".pth files (run at every interpreter start): 1 new, 0 changed, 0 removed" in lines
    assert any(line.startswith("  + tg_video_streamer_boot.pth in tg-video-streamer ") for line in lines)
    assert "  + NEW_TOKEN ([env] required)" in lines
    for output in (out.stdout + out.stderr, text.stdout + text.stderr):
        assert SUPPLY_SECRET not in output


def test_bad_input_is_one_line(example_build, tmp_path):
    missing = deployer_diff("diff", str(example_build.path), str(tmp_path / "nope.tar"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"deployer: error: {tmp_path / 'nope.tar'}: no such artifact (with --host, A and B are release ids)"
    ]
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    bad = deployer_diff("diff", str(example_build.path), str(junk))
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def _keep(layout: Layout, artifact: Path, env: str) -> str:
    """Unpack ``artifact`` as the engine does, as a release that ran with ``env``."""
    manifest = unpack(str(artifact), layout.partial("20000101T000000Z-0000000"), layout)
    os.rename(layout.partial("20000101T000000Z-0000000"), layout.release(manifest["release_id"]))
    old = layout.env.read_text() if layout.env.exists() else None
    if old is not None:
        backup_env(layout, old)
    write_env(layout.env, env)
    record_env(layout.release(manifest["release_id"]), layout)
    return manifest["release_id"]


def test_the_engine_takes_the_inventory_of_releases_it_keeps_with_their_env_keys(variant_builds, tmp_path):
    v1, supply = variant_builds("v1"), variant_builds("supply")
    layout = Layout(tmp_path / "base", tmp_path / "etc" / "env")
    layout.env.parent.mkdir(parents=True)
    a = _keep(layout, v1.path, "HTTP_PORT=8080\nSTATE_DIR=/x\nOLD_KEY=old-s3cr3t\n")
    b = _keep(layout, supply.path, f"HTTP_PORT=8080\nSTATE_DIR=/x\nNEW_TOKEN={SUPPLY_SECRET}\n")
    config = {**v1.manifest["config"], "base_path": str(layout.base), "env_file": str(layout.env)}
    (tmp_path / "host.json").write_text(json.dumps(config))
    engine = layout.release(a) / "engine.pyz"
    out = subprocess.run(
        [sys.executable, str(engine), "--json", "--config", str(tmp_path / "host.json"), "inventory", a, b],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert SUPPLY_SECRET not in out.stdout and "old-s3cr3t" not in out.stdout
    events = [json.loads(line) for line in out.stdout.splitlines()]
    found = {e["detail"]: e["inventory"] for e in events if e["step"] == "inventory"}
    assert found[a]["env"]["keys"] == ["HTTP_PORT", "OLD_KEY", "STATE_DIR"]
    assert found[b]["env"]["keys"] == ["HTTP_PORT", "NEW_TOKEN", "STATE_DIR"]
    d = diff(found[a], found[b])
    assert d["env"]["keys"] == {"added": ["NEW_TOKEN"], "removed": ["OLD_KEY"]}
    assert [x["name"] for x in d["dependencies"]["added"]] == ["six"]
    assert [p["file"] for p in d["pth"]["added"]] == ["tg_video_streamer_boot.pth"]
    # the host's inventory of a release is the artifact's, plus the keys of its .env
    from deployer.artifact import Artifact

    assert {**found[b], "env": {**found[b]["env"], "keys": None}} == Artifact(supply.path).inventory()
    # a release the host does not keep: one line, exit 1
    gone = subprocess.run(
        [
            sys.executable,
            str(engine),
            "--config",
            str(tmp_path / "host.json"),
            "inventory",
            "20990101T000000Z-1234567",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1
    assert "release 20990101T000000Z-1234567 is not on this host" in gone.stdout
