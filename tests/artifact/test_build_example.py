"""`deployer build` on the example service: one offline, reproducible artifact."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import find_python, git, members

pytestmark = pytest.mark.slow


def test_artifact_layout_and_manifest(example_build, service_repo):
    m = example_build.manifest
    names = members(example_build.path)
    assert names[0] == "manifest.json"
    assert example_build.path.name == f"tg_video_streamer-{m['release_id']}.tar"
    assert not [
        n for n in names if n.endswith((".tar.gz", ".zip", ".tgz")) and not n.startswith("bytecode/")
    ], "no sdists"
    assert all(n.endswith(".whl") for n in names if n.startswith("wheels/"))
    wheels = {n.split("/")[1].split("-")[0].lower() for n in names if n.startswith("wheels/")}
    # sdist-only pyaes was built into a wheel; the native ntgcalls wheel is for the target
    assert {"pyaes", "ntgcalls", "tgcrypto", "kurigram", "tg_video_streamer"} <= wheels
    sha = git(service_repo, "rev-parse", "HEAD")
    assert m["git"]["sha"] == sha and m["git"]["ref"] == "main" and not m["git"]["dirty"]
    assert m["version"].startswith("0.1.0.dev")
    assert m["version"].endswith(f"+g{sha[:7]}")
    assert m["release_id"].startswith("20261126T101500Z-")
    assert m["target"]["abi"] == "cp311" and m["target"]["glibc"] == "2.36"
    assert m["glibc_required"] and tuple(map(int, m["glibc_required"].split("."))) <= (2, 36)
    assert m["engine"] == "engine.pyz" and m["uv_wheel"].startswith("tools/uv-")
    assert m["config"]["base_path"] == "/opt/tg_video_streamer"
    assert set(m["files"]) == set(names) - {"manifest.json"}
    # every wheel with Python sources comes byte-compiled for the target's Python
    layers = m["bytecode"]["layers"]
    assert m["bytecode"]["tag"] == "cpython-311"
    assert set(layers.values()) == {n for n in names if n.startswith("bytecode/")}
    assert set(layers) <= {n for n in names if n.startswith("wheels/")}
    assert {"aiohttp", "kurigram", "tg_video_streamer"} <= {
        n.split("/")[1].split("-")[0].lower() for n in layers
    }


def test_verify_cli_and_engine_agree(example_artifact, tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "deployer", "verify", str(example_artifact)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: tg_video_streamer")
    engine = tmp_path / "engine.pyz"
    subprocess.run(["tar", "xf", str(example_artifact), "-C", str(tmp_path), "engine.pyz"], check=True)
    pythons = [p for p in (find_python("3.9"), find_python("3.11")) if p]
    assert pythons
    for exe in pythons:
        out = subprocess.run(
            [exe, str(engine), "verify", str(example_artifact)],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"status": "ok"' in out.stdout.splitlines()[-1]


def test_tampered_copy_is_refused_by_cli(example_artifact, tmp_path):
    bad = tmp_path / "bad.tar"
    data = bytearray(example_artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    out = subprocess.run(
        [sys.executable, "-m", "deployer", "verify", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "sha256 does not match" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_lock_installs_offline_and_selfcheck_passes(example_python):
    out = subprocess.run(
        [example_python, "-m", "tg_video_streamer", "--selfcheck"],
        capture_output=True,
        text=True,
        env={},
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("selfcheck ok")
    check = subprocess.run([example_python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_two_builds_of_one_commit_are_byte_identical(example_build, service_repo, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "-c",
            str(service_repo / "deploy.toml"),
            "build",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    second = tmp_path / example_build.path.name
    assert second.read_bytes() == example_build.path.read_bytes()
