"""The cooldown against the real index: a build of the example with every dependency
"too young" is refused in one line naming a package and its upload time; with
min_age_policy = "warn" it is built, each one named."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

FINDING = re.compile(
    r"(?P<name>[a-z0-9-]+) (?P<version>\S+) \((?P<file>\S+\.whl)\) was uploaded "
    r"(?P<when>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), (?P<age>[\d.]+) days before the commit"
)


def build(repo, out, policy: str) -> subprocess.CompletedProcess:
    config = repo / "deploy.toml"
    text = config.read_text()
    config.write_text(
        re.sub(r"\[artifact\]\n", f'[artifact]\nmin_age_days = 3650\nmin_age_policy = "{policy}"\n', text)
    )
    return subprocess.run(
        [sys.executable, "-m", "deployer", "--plain", "-c", str(config), "build", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_young_dependencies_are_refused_or_warned_about(service_repo, tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(service_repo), str(repo)], check=True)
    refused = build(repo, tmp_path / "dist", "refuse")
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("deployer: error: artifact.min_age_days = 3650: "), last
    m = FINDING.search(last)
    assert m, last
    assert m["file"].lower().startswith(f"{m['name'].replace('-', '_')}-{m['version']}-")
    assert re.search(r"\(and \d+ more: ", last) and last.endswith(
        '(artifact.min_age_policy = "warn" only warns)'
    )
    assert not list((tmp_path / "dist").glob("*.tar"))

    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "deploy.toml"], check=True)
    warned = build(repo, tmp_path / "dist", "warn")
    assert warned.returncode == 0, warned.stderr
    warnings = [line for line in warned.stderr.splitlines() if "cooldown ok: warning: " in line]
    assert len(warnings) >= 20 and all(FINDING.search(w) for w in warnings)
    assert any(" pyaes 1.6.1 (pyaes-1.6.1-py3-none-any.whl) was uploaded 2017-" in w for w in warnings)
    assert list((tmp_path / "dist").glob("*.tar"))
