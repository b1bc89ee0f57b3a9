"""The artifacts a run deploys, and `deployer build` of this checkout timed.

v1 is the example service committed in a scratch git repo (tests/conftest.py); every
new release is one more commit on top of it with a one-line code change.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import report
from bench.common import BenchError, say
from deployer.builder import build_release
from deployer.config import load_config
from tests.conftest import build_variant, git, make_service_repo

ROOT = Path(__file__).resolve().parents[1]
HEALTH_PY = Path("examples/tg_video_streamer/tg_video_streamer/health.py")
ONE_LINE = ('"status": "ok"', '"status": "ok", "build": "{name}"')


def build_edit(repo: Path, name: str, date: str, work: Path):
    """Clone the service repo, change one line of code, commit it at ``date``, build it."""
    clone = work / f"repo-{name}"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, timeout=60)
    target = clone / HEALTH_PY
    old, new = ONE_LINE[0], ONE_LINE[1].format(name=name)
    text = target.read_text()
    if old not in text:
        raise BenchError(f"{HEALTH_PY}: {old!r} not found for the one-line change")
    target.write_text(text.replace(old, new, 1))
    git(clone, "commit", "-qam", f"{name}: one-line change", date=date)
    config = load_config(clone / "deploy.toml", environ={})
    return build_release(config, clone / "deploy.toml", work / f"dist-{name}")


def build_all(work: Path, news: int) -> dict[str, object]:
    """v1, then ``news`` new commits: v2 (the tests' variant) and n2, n3, ..."""
    repo = make_service_repo(work / "service-repo")
    t0 = time.monotonic()
    config = load_config(repo / "deploy.toml", environ={})
    builds = {"v1": build_release(config, repo / "deploy.toml", work / "dist-v1")}
    names = [f"n{k}" for k in range(2, news + 1)]
    with ThreadPoolExecutor(max_workers=3) as pool:  # caches are warm after v1
        jobs = {"v2": pool.submit(build_variant, repo, "v2", work)}
        for k, name in enumerate(names):
            jobs[name] = pool.submit(build_edit, repo, name, f"2026-11-26T14:{k:02d}:00Z", work)
        for name, job in jobs.items():
            builds[name] = job.result()
    say(
        f"built {len(builds)} artifacts from {repo.name} in {time.monotonic() - t0:.1f}s: "
        + ", ".join(f"{n}={b.manifest['release_id']}" for n, b in builds.items())
    )
    builds["_repo"] = repo
    return builds


def build_timing(work: Path, runs: int = 2) -> list[dict]:
    """`deployer build -o DIR` of this checkout, as `make release` runs it (warm caches)."""
    recs = []
    for rep in range(1, runs + 1):
        out = work / f"release-{rep}"
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "--plain", "build", "-o", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
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
        recs.append(
            {
                "kind": "build",
                "rep": rep,
                "seconds": round(seconds, 2),
                "artifact_bytes": artifact.stat().st_size,
                "members": sizes,
                "artifact": artifact.name,
            }
        )
        say(f"deployer build #{rep}: {seconds:.1f}s, {report.human_bytes(artifact.stat().st_size)}")
    return recs
