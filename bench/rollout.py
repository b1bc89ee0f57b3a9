"""(a) Rollouts: the time to "every host healthy and gated" with 1, 4 and 8 staging guests.

Every guest is booted with the harness (each in its own network namespace), set up by
`deployer host setup`, and given v1 by one deploy (recorded as ``rollout-first``). Then,
for each fleet size N, a new one-line commit is deployed to the first N guests with
``--watch 10``, twice: with the default plan (the canary, then all the rest at once) and,
as the baseline of the same run, one host at a time (``[rollout] wave = 1``: how every
deploy switched before waves). Measured from the start of the `deployer` process to the
last ``gate ok`` event; bytes are each guest's veth counter over the command.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import builds as builds_mod
from bench.common import BenchError, say
from bench.probe import CliRun, CpuMeter, Veth, python_argv, wall_of
from tests.staging.guest import deploy_env, host_setup
from tests.staging.harness import DEMO_INDEX, StagingHost

WATCH = 10
MODES = {"waves": "", "one-by-one": "wave = 1\n"}


def fleet_builds(repo: Path, work: Path, sizes: list[int]) -> dict[str, object]:
    """One new commit per measured deploy: ``<mode>-<N>``."""
    names = [f"{mode}-{n}" for n in sizes for mode in MODES if n > 1 or mode == "waves"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = {
            name: pool.submit(builds_mod.build_edit, repo, name, f"2026-11-26T15:{k:02d}:00Z", work)
            for k, name in enumerate(names)
        }
        return {name: job.result() for name, job in jobs.items()}


class Fleet:
    def __init__(self, guests: list[StagingHost], repo: Path, work: Path):
        self.guests, self.repo, self.work = guests, repo, work
        known = work / "fleet_known_hosts"
        known.write_text("".join(Path(g.known_hosts_path).read_text() for g in guests))
        self.env = {
            **os.environ,
            **deploy_env(guests[0]),
            "DEPLOYER_KNOWN_HOSTS_FILE": str(known),
            "DEPLOYER_LOG_DIR": str(work / "deploy-logs"),
        }
        for name in ("GITHUB_STEP_SUMMARY", "DEPLOYER_NOTIFY_FILE", "DEPLOYER_CONFIG"):
            self.env.pop(name, None)
        text = (repo / "deploy.toml").read_text().replace('"examples/', f'"{repo}/examples/')
        text, n = re.subn(r"(?m)^keep_releases = .*$", "keep_releases = 50", text)
        if not n:
            raise BenchError("deploy.toml: no app.keep_releases line to override")
        self.configs = {}
        for mode, keys in MODES.items():
            path = work / f"fleet-{mode}.toml"
            path.write_text(text + f"\n[rollout]\ncanary = 1\n{keys}")
            self.configs[mode] = path

    def deploy(self, build, n: int, mode: str, kind: str = "rollout") -> dict:
        """Deploy ``build`` to the first ``n`` guests with the plan ``mode``."""
        guests = self.guests[:n]
        env = {**self.env, "DEPLOYER_HOSTS": ",".join(f"{g.user}@{g.host}:{g.port}" for g in guests)}
        veths = [Veth(g.veth) for g in guests]
        before = [v.read()[0] for v in veths]
        argv = python_argv("-c", str(self.configs[mode]), "deploy", "--watch", str(WATCH), str(build.path))
        cpu = CpuMeter([g.index for g in guests]).start()
        run = CliRun(argv).run(env, self.work, timeout=900)
        used = cpu.stop()
        sent = [v.read()[0] - b for v, b in zip(veths, before, strict=True)]
        gated = [
            wall_of(e["time"])
            for e in run.events
            if e.get("step") == "gate" and e.get("status") == "ok" and "time" in e
        ]
        staged = [
            wall_of(e["time"]) for e in run.events if e.get("step") == "smoke" and e.get("status") == "ok"
        ]
        if run.returncode != 0 or len(gated) != n:
            raise BenchError(
                f"{kind} {mode} to {n} hosts failed: exit {run.returncode}, {len(gated)} gates closed\n"
                f"{run.stderr_tail}"
            )
        rec = {
            "kind": kind,
            "mode": mode,
            "hosts": n,
            "watch_s": WATCH,
            "release": build.manifest["release_id"],
            "to_gated_s": round(max(gated) - run.started, 3),
            "canary_gated_s": round(min(gated) - run.started, 3),  # the first wave's first gate
            "staged_s": round(max(staged) - run.started, 3) if staged else None,
            "wall_s": round(run.ended - run.started, 3),
            "tx_per_host": sent,
            "waves": run.summary.get("waves"),
            "cpu": used,
            # per host, seconds: how long its smoke test and its venv took (CPU shared by all)
            "smoke_s": [round(float(e["duration"]), 3) for e in run.events if _ok(e, "smoke")],
            "venv_s": [round(float(e["duration"]), 3) for e in run.events if _ok(e, "venv")],
            "restart_s": [round(float(e["duration"]), 3) for e in run.events if _ok(e, "restart")],
        }
        say(
            f"{kind} {mode}, {n} hosts: every host gated after {rec['to_gated_s']:.2f}s "
            f"(all staged after {rec['staged_s']}s), "
            f"sent {min(sent) / 1e3:.0f}-{max(sent) / 1e3:.0f} KB per host"
        )
        return rec


def _ok(event: dict, step: str) -> bool:
    return event.get("step") == step and event.get("status") == "ok" and "duration" in event


def boot(first_index: int, count: int) -> list[StagingHost]:
    """Guests ``first_index`` .. ``first_index + count - 1``, two boots at a time."""
    indices = range(first_index, first_index + count)
    if DEMO_INDEX in indices or indices[-1] > 199:
        raise BenchError(
            f"guests {indices[0]}..{indices[-1]}: pick another BENCH_STAGING_INDEX (the demo's "
            f"{DEMO_INDEX} and anything above 199 are not the bench's)"
        )
    say(f"booting staging guests {first_index}..{first_index + count - 1}")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(StagingHost.up, first_index + i) for i in range(count)]
    guests, errors = [], []
    for f in futures:
        try:
            guests.append(f.result())
        except Exception as e:  # the others are taken down by the caller
            errors.append(e)
    if errors:
        for g in guests:
            g.down()
        raise BenchError(f"could not boot the fleet: {errors[0]}")
    return guests


def measure(first_index: int, sizes: list[int], builds: dict, records: list[dict], work: Path) -> None:
    """The rollout measurements on ``max(sizes)`` guests, taken down afterwards."""
    repo: Path = builds["_repo"]
    guests = boot(first_index, max(sizes))
    try:
        key = Path(guests[0].key_path + ".pub").read_text()  # one deploy key for every host
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda g: host_setup(g, repo / "deploy.toml", authorized_key=key), guests))
        fleet = Fleet(guests, repo, work)
        records.append(fleet.deploy(builds["v1"], len(guests), "waves", kind="rollout-first"))
        for n in sizes:
            for mode in MODES:
                if n > 1 or mode == "waves":
                    records.append(fleet.deploy(builds[f"{mode}-{n}"], n, mode))
    finally:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda g: g.down(), guests))
