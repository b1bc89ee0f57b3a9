"""The artifacts a run deploys, and `deployer build` of this checkout timed.

v1 is the example service committed in a scratch git repo (tests/conftest.py); every
new release is one more commit on top of it with a one-line code change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import report
from bench.common import BenchError, say
from deployer.builder import build_release, source
from deployer.config import load_config
from tests.conftest import build_variant, git, make_service_repo

ROOT = Path(__file__).resolve().parents[1]
HEALTH_PY = Path("examples/tg_video_streamer/tg_video_streamer/health.py")
ONE_LINE = ('"status": "ok"', '"status": "ok", "build": "{name}"')
ONE_LINE_RE = re.compile(r'"status": "ok"(, "build": "[^"]*")?')  # the line, changed or not


def clone(repo: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True, timeout=60)
    return dest


def commit_edit(clone: Path, name: str, date: str) -> str:
    """Change one line of code in ``clone`` and commit it at ``date``; the version it builds to."""
    target = clone / HEALTH_PY
    text, n = ONE_LINE_RE.subn(ONE_LINE[1].format(name=name), target.read_text(), 1)
    if not n:
        raise BenchError(f"{HEALTH_PY}: {ONE_LINE[0]!r} not found for the one-line change")
    target.write_text(text)
    git(clone, "commit", "-qam", f"{name}: one-line change", date=date)
    commit = source.read_commit(clone)
    pyproject = source.load_pyproject(clone / HEALTH_PY.parents[1])
    return source.release_version(source.base_version(pyproject, clone), commit, "")


def build_edit(repo: Path, name: str, date: str, work: Path):
    """Clone the service repo, change one line of code, commit it at ``date``, build it."""
    dest = clone(repo, work / f"repo-{name}")
    commit_edit(dest, name, date)
    config = load_config(dest / "deploy.toml", environ={})
    return build_release(config, dest / "deploy.toml", work / f"dist-{name}")


def build_all(work: Path, news: int) -> dict[str, object]:
    """v1, then ``news`` new commits: v2 (the tests' variant) and n2, n3, ...; and
    ``news`` more for the deploys with ``[service] handover``: h1, h2, ..."""
    repo = make_service_repo(work / "service-repo")
    t0 = time.monotonic()
    config = load_config(repo / "deploy.toml", environ={})
    builds = {"v1": build_release(config, repo / "deploy.toml", work / "dist-v1")}
    names = [f"n{k}" for k in range(2, news + 1)]
    with ThreadPoolExecutor(max_workers=3) as pool:  # caches are warm after v1
        jobs = {"v2": pool.submit(build_variant, repo, "v2", work)}
        for k, name in enumerate(names):
            jobs[name] = pool.submit(build_edit, repo, name, f"2026-11-26T14:{k:02d}:00Z", work)
        for k in range(1, news + 1):
            jobs[f"h{k}"] = pool.submit(build_edit, repo, f"h{k}", f"2026-11-26T14:{30 + k:02d}:00Z", work)
        for name, job in jobs.items():
            builds[name] = job.result()
    say(
        f"built {len(builds)} artifacts from {repo.name} in {time.monotonic() - t0:.1f}s: "
        + ", ".join(f"{n}={b.manifest['release_id']}" for n, b in builds.items())
    )
    builds["_repo"] = repo
    return builds


def build_timing(repo: Path, work: Path, runs: int = 3) -> list[dict]:
    """`deployer build` of the service: once with an empty deployer cache, then ``runs``
    times warm, each for one more code-only commit (what `deployer deploy` builds from HEAD)."""
    dest = clone(repo, work / "repo-builds")
    recs = [
        _timed_build(dest, work / "build-cold", "build-cold", 1, {"DEPLOYER_CACHE": str(work / "cold-cache")})
    ]
    for rep in range(1, runs + 1):
        commit_edit(dest, f"b{rep}", f"2026-11-26T17:{rep:02d}:00Z")
        recs.append(_timed_build(dest, work / f"build-warm-{rep}", "build-warm", rep, {}))
    return recs


def _timed_build(repo: Path, out: Path, kind: str, rep: int, env: dict) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "--plain",
            "-c",
            str(repo / "deploy.toml"),
            "build",
            "-o",
            str(out),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchError(f"deployer build failed: {proc.stderr.strip()[-1500:]}")
    artifact = Path(proc.stdout.strip().splitlines()[-1])
    sizes: dict[str, int] = {}
    with tarfile.open(artifact) as tar:
        for info in tar:
            group = info.name.split("/")[0] if "/" in info.name else info.name
            if info.name.startswith("wheels/") and "tg_video_streamer" in info.name:
                group = "app wheel"
            sizes[group] = sizes.get(group, 0) + info.size
    say(f"deployer build ({kind} #{rep}): {seconds:.2f}s, {report.human_bytes(artifact.stat().st_size)}")
    return {
        "kind": kind,
        "rep": rep,
        "seconds": round(seconds, 2),
        "artifact_bytes": artifact.stat().st_size,
        "members": sizes,
        "artifact": artifact.name,
        "steps": [line for line in proc.stderr.splitlines() if line.strip()][-12:],
    }
