"""`artifact.format = "pex"`: the same artifact plus a --venv pex that becomes venv/."""

from __future__ import annotations

import os
import subprocess

import pytest

from deployer.builder import build_release
from deployer.config import load_config
from tests.artifact.test_sbom import assert_sbom_lists_exactly_the_shipped_wheels
from tests.conftest import extract, target_python

pytestmark = pytest.mark.slow


def test_pex_artifact_becomes_a_venv_offline(service_repo, tmp_path):
    config = load_config(service_repo / "deploy.toml", environ={})
    config = config.model_copy(
        update={"artifact": config.artifact.model_copy(update={"format": "pex", "ship_uv": False})}
    )
    result = build_release(config, service_repo / "deploy.toml", tmp_path / "dist")
    m = result.manifest
    assert m["format"] == "pex" and m["pex"] == "app.pex" and m["uv_wheel"] is None
    assert "app.pex" in m["files"] and any(f.startswith("wheels/") for f in m["files"])
    assert_sbom_lists_exactly_the_shipped_wheels(result.path, tmp_path)
    tree = extract(result.path, tmp_path / "tree")
    venv = tmp_path / "venv"
    offline = ["unshare", "--net"] if os.geteuid() == 0 else []
    env = {"PEX_TOOLS": "1", "PATH": os.environ["PATH"], "PEX_ROOT": str(tmp_path / "pex-root")}
    subprocess.run(
        [*offline, target_python(), str(tree / "app.pex"), "venv", "--compile", str(venv)],
        check=True,
        env=env,
        timeout=300,
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "tg_video_streamer", "--selfcheck"],
        capture_output=True,
        text=True,
        env={},
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert m["version"] in out.stdout
