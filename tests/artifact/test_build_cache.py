"""A warm build of a code-only commit rebuilds only the app wheel, and a cold one builds
the very same bytes: the cache saves time, never changes what is built; entries no build
used for 30 days are pruned, the ones a build uses are not."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from deployer.builder import build_release
from deployer.builder.cache import cache_dir
from deployer.config import load_config
from tests.conftest import VARIANTS, git

pytestmark = pytest.mark.slow


def code_only_commit(service_repo, dest):
    subprocess.run(["git", "clone", "-q", str(service_repo), str(dest)], check=True)
    path, old, new = VARIANTS["v2"]
    (dest / path).write_text((dest / path).read_text().replace(old, new, 1))
    git(dest, "commit", "-qam", "one line of code", date="2026-11-27T09:00:00Z")
    return dest


def build(repo, out):
    steps: dict[str, str] = {}
    config = load_config(repo / "deploy.toml", environ={})
    result = build_release(
        config, repo / "deploy.toml", out, lambda name, detail: steps.setdefault(name, detail)
    )
    return result, steps


def test_a_code_only_commit_reuses_the_lock_and_every_wheel_and_a_cold_cache_builds_the_same_bytes(
    example_build, service_repo, tmp_path, monkeypatch
):
    repo = code_only_commit(service_repo, tmp_path / "repo")
    warm, steps = build(repo, tmp_path / "warm")
    deps = len([m for m in example_build.manifest["files"] if m.startswith("wheels/")]) - 1
    assert steps["lock"].endswith("the last change to pyproject.toml, requirements.txt (cached)"), steps[
        "lock"
    ]
    assert f"{deps} of them from the cache" in steps["wheels"], steps["wheels"]
    # the same dependencies, to the byte, as the commit before: only the app wheel is new
    assert warm.manifest["release_id"] != example_build.manifest["release_id"]
    old = {k: v for k, v in example_build.manifest["files"].items() if "tg_video_streamer" not in k}
    new = {k: v for k, v in warm.manifest["files"].items() if "tg_video_streamer" not in k}
    assert {k: v for k, v in new.items() if k.startswith(("wheels/", "bytecode/", "tools/"))} == {
        k: v for k, v in old.items() if k.startswith(("wheels/", "bytecode/", "tools/"))
    }

    # an empty cache (the sdist-only wheels it built itself kept, as on any machine that built them once)
    cold_cache = tmp_path / "cold-cache"
    shutil.copytree(cache_dir() / "built-wheels", cold_cache / "built-wheels")
    monkeypatch.setenv("DEPLOYER_CACHE", str(cold_cache))
    cold, steps = build(repo, tmp_path / "cold")
    assert not steps["lock"].endswith("(cached)") and " 0 of them from the cache" in steps["wheels"], steps
    assert cold.path.read_bytes() == warm.path.read_bytes()
    assert len(list((cold_cache / "locks").glob("*.pins"))) == 1

    # 40 days on, a build marks every entry it takes; the day's prune removes only the others
    stale = cold_cache / "wheels" / "cp311-x" / "gone-1.0-py3-none-any.whl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not used by any build")
    old = time.time() - 40 * 86400
    for path in cold_cache.rglob("*"):
        os.utime(path, (old, old))
    again, steps = build(repo, tmp_path / "again")
    assert again.path.read_bytes() == warm.path.read_bytes()
    assert " 0 of them from the cache" not in steps["wheels"] and steps["lock"].endswith("(cached)")
    assert "unused for 30 days removed" in steps["cache"], steps
    assert not stale.exists() and not stale.parent.exists()
    kept = {p.name for p in (cold_cache / "wheels").rglob("*.whl")}
    assert {Path(name).name for name in again.manifest["files"] if name.startswith("wheels/")} <= kept | {
        Path(again.manifest["app_wheel"]).name
    }
    assert len(list((cold_cache / "locks").glob("*.pins"))) == 1
