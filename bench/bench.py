"""`make bench`: deploy speed on a real staging host against the hand-written baseline.

One run (``--parts``, default all: speed, steady, rollout, build). On one fresh staging
guest (systemd-nspawn, real SSH, real systemd unit), for ``speed``:

1. builds the example service from a scratch git repo: v1, and one new commit per
   repetition, each a one-line code change (v2, n2, n3, ...);
2. per repetition, on an empty host (unit stopped, base path moved aside, `host setup`
   again): the baseline's first deploy, redeploy and rollback (each with the same smoke
   test deployer runs), then deployer's first deploy;
3. code-only redeploys of new commits; re-activations of releases the host already
   has (v1/v2 alternating), each followed by a rollback; `deployer deploy` from HEAD
   (build included) of one more code-only commit per repetition;
4. where the controller's own time goes (imports, verify, connect, engine start), and
   the engine's venv and smoke steps taken apart on the host (bench/host_steps.py);
5. every deploy and rollback of 2. and 3. also yields its unavailability window: from the
   old release's last answer to the new one's first, probed every 20 ms in the guest;
6. with ``[service] handover`` set up: code-only redeploys of new commits (h1, h2, ...),
   each followed by a rollback, with their windows.

``steady`` (bench/steady.py), on the same guest: a request every 10 ms against notes_api
during 10 deploys and 10 rollbacks, with and without ``[service] socket``.
``rollout`` (bench/rollout.py), on guests ``--index`` .. ``--index`` + 7 once the first
is down: the time to every host healthy and gated with 1, 4 and 8 hosts, watch 10 s.
``build``, after the guests are down: `deployer build` of the service with an empty
deployer cache, then warm three times, each for one more code-only commit; artifact size.

"To healthy" is the time from the start of the command (the `deployer` process, or the
baseline's first `scp`) to the moment `/health` answers the new version: taken from the
engine's `healthy` event, and independently from a 20 ms probe inside the guest's
network namespace. The watch window is excluded (`--watch 0`); it is shown once apart.
Bytes are the machine-side veth counters: everything sent, SSH included.

Every measurement is one JSON line in bench/results/<UTC time>.jsonl; the report
compares the medians with bench/results/reference.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import apart, baseline, report, rollout, steady
from bench import builds as builds_mod
from bench.common import BenchError, say
from bench.probe import CliRun, HealthWatcher, Veth, python_argv
from deployer.config import load_config
from deployer.host.contract import HANDOVER_READY, HANDOVER_SLOTS, handover_status
from tests.staging.guest import deploy_env, host_setup
from tests.staging.harness import UP_TIMEOUT, StagingError, StagingHost, run_script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REFERENCE = RESULTS / "reference.jsonl"
BASE = baseline.BASE
UNIT = baseline.UNIT
GATE_WATCH = 3
#: what the handover measurements add to the example's deploy.toml
HANDOVER_KEYS = (
    "\n[service]\nhandover = true\nstandby = true\n"
    'preload = ["tg_video_streamer.service", "tg_video_streamer.settings"]\n'
)
DEFAULT_INDEX = 190  # and the next 7 for the rollout part: clear of the test suite's and the demo's
PARTS = ("speed", "steady", "rollout", "build")
TRASH = "/var/tmp/bench-trash"  # inside the guest: what reset_host moves aside
PACE_WINDOW, PACE_MAX = 11.0, 4


# ---------------------------------------------------------------------- context
class Bench:
    def __init__(self, guest: StagingHost, work: Path, builds: dict, records: list[dict]):
        self.guest, self.work, self.builds, self.records = guest, work, builds, records
        self.repo: Path = builds["_repo"]
        self.config = self._config(self.repo, "deploy.toml")
        self.smoke = list(load_config(self.config, environ={}).host_config().smoke.command)
        self.env_text = (self.repo / "examples/tg_video_streamer/staging.env").read_text()
        self.env = {**os.environ, **deploy_env(guest), "DEPLOYER_LOG_DIR": str(work / "deploy-logs")}
        for name in ("GITHUB_STEP_SUMMARY", "DEPLOYER_NOTIFY_FILE", "DEPLOYER_CONFIG"):
            self.env.pop(name, None)
        self.watcher = HealthWatcher(guest.machine).start()
        self.veth = Veth(guest.veth).start()
        self.tars: dict[str, Path] = {}
        self.restarts: list[float] = []  # when each measured command restarted the unit
        self.resets = 0

    def close(self) -> None:
        self.watcher.stop()
        self.veth.stop()

    def _config(self, repo: Path, name: str) -> Path:
        """``repo``'s deploy.toml, with absolute paths, no watch window (reported
        apart) and room for every release the run deploys (re-activation needs them)."""
        text = (repo / "deploy.toml").read_text()
        text = text.replace('"examples/', f'"{repo}/examples/')
        text, n_watch = re.subn(r"(?m)^watch = .*$", "watch = 0", text)
        text, n_keep = re.subn(r"(?m)^keep_releases = .*$", "keep_releases = 50", text)
        if not (n_watch and n_keep):
            raise BenchError("deploy.toml: no health.watch / app.keep_releases line to override")
        path = self.work / name
        path.write_text(text)
        return path

    def version(self, name: str) -> str:
        return self.builds[name].manifest["version"]

    def record(self, rec: dict) -> dict:
        rec["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.records.append(rec)
        return rec

    # ------------------------------------------------------------------ host state
    def reset_host(self) -> None:
        """An empty host: unit stopped, base path and the deploy user's caches gone, set up again.

        They are moved aside, not deleted (the guest's teardown deletes them): on ext4
        without a journal, as on this machine, allocating an inode scans past every inode
        freed in the last 30 s (``recently_deleted()`` in ``find_inode_bit``), so after an
        ``rm -rf`` of a venv each file created costs 0.4-0.7 ms of kernel CPU instead of
        0.03. The command measured next would pay for the harness's cleanup."""
        self.resets += 1
        trash = f"{TRASH}/{self.resets}"
        self.guest.exec(
            [
                "sh",
                "-c",
                f"systemctl stop {UNIT} 2>/dev/null; mkdir -p {trash}; "
                f"for d in {BASE} ~{self.guest.user}/.cache; do "
                f'[ ! -e "$d" ] || mv "$d" {trash}/$(echo "$d" | tr / _); done',
            ],
            timeout=60,
        )
        host_setup(self.guest, self.repo / "deploy.toml")

    # ------------------------------------------------------------------ measurements
    def pace(self) -> float:
        """Sleep, if needed, so the unit is restarted at most 4 times in any 11 s.

        systemd refuses a 6th start within 10 s (StartLimitBurst=5, the default, which the
        unit keeps) and marks the unit failed: fast deploys and rollbacks back to back
        reach that, so the benchmark spaces them out (and BENCHMARKS.md reports it).
        """
        now = time.time()
        recent = sorted(t for t in self.restarts if now - t < PACE_WINDOW)
        if len(recent) < PACE_MAX - 1:
            return 0.0
        wait = PACE_WINDOW - (now - recent[-(PACE_MAX - 1)])
        if wait > 0:
            time.sleep(wait)
        return max(0.0, wait)

    @staticmethod
    def settle() -> float:
        """Write back what earlier commands left dirty (``sync``), so each measured command
        pays for its own disk writes only; seconds it took (not measured time)."""
        t0 = time.monotonic()
        os.sync()
        return round(time.monotonic() - t0, 3)

    def deployer(
        self, kind: str, rep: int, args: list[str], expect: str, release: str, config: Path | None = None
    ) -> dict:
        paced = self.pace()
        settled = self.settle()
        self.watcher.arm()
        tx0, rx0 = self.veth.read()
        run = CliRun(python_argv("-c", str(config or self.config), *args)).run(self.env, self.work)
        tx1, rx1 = self.veth.read()
        seen = self.watcher.wait_seen(expect, run.started)
        self.watcher.disarm()
        healthy = run.at("healthy")
        restarted = run.at("restart", "start")
        if restarted:
            self.restarts.append(restarted)
        host = (run.summary.get("hosts") or [{}])[0]
        if run.returncode != 0 or healthy is None or seen is None:
            raise BenchError(
                f"{kind} #{rep} ({' '.join(args)}) failed: exit {run.returncode}, "
                f"healthy event {healthy}, /health saw {expect}: {seen}\n"
                f"{run.stderr_tail}"
            )
        at_healthy = self.veth.at(healthy) or (tx1, rx1)
        upload = next(
            (e.get("detail") for e in run.events if e.get("step") == "upload" and e.get("status") == "ok"),
            None,
        )
        rec = self.record(
            {
                "kind": kind,
                "rep": rep,
                "tool": "deployer",
                "argv": [Path(a).name if "/" in a else a for a in args],
                "release": release,
                "version": expect,
                "to_healthy_s": round(healthy - run.started, 3),
                "to_healthy_ext_s": round(seen - run.started, 3),
                "wall_s": round(run.ended - run.started, 3),
                "engine_healthy_s": host.get("healthy_s"),
                "gate_s": host.get("gate_s"),
                "tx_bytes": tx1 - tx0,
                "rx_bytes": rx1 - rx0,
                "tx_to_healthy": at_healthy[0] - tx0,
                "upload": upload,
                "unanswered_s": round(self.watcher.unanswered(run.started, seen), 3),
                "window_s": _round(self.watcher.window(expect, run.started)),
                "steps": {k: round(v, 3) for k, v in run.durations().items()},
                "timeline": [
                    [name, round(a - run.started, 3), round(b - run.started, 3)]
                    for name, a, b in run.timeline()
                ],
                "healthy_at_s": round(healthy - run.started, 3),
                "started": round(run.started, 3),
                "paced_s": round(paced, 2),
                "settled_s": settled,
            }
        )
        say(
            f"{kind} #{rep}: {rec['to_healthy_s']:.2f}s to healthy (probe "
            f"{rec['to_healthy_ext_s']:.2f}s, process {rec['wall_s']:.2f}s), "
            f"sent {report.human_bytes(rec['tx_bytes'])}"
            + (f", upload {upload}" if upload else "")
            + (f", unavailable {rec['window_s']:.3f}s" if rec["window_s"] is not None else "")
        )
        return rec

    def baseline(self, kind: str, rep: int, name: str) -> dict:
        tar = self.tars.get(name)
        if tar is None:
            tar = self.tars[name] = baseline.wheelhouse_tar(
                self.builds[name].path, self.work / f"wheelhouse-{name}.tar"
            )
        expect = self.version(name)
        paced = self.pace()
        settled = self.settle()
        self.watcher.arm()
        tx0, rx0 = self.veth.read()
        res = baseline.run(self.guest, tar, f"baseline-{rep}-{name}", expect, self.env_text, self.smoke)
        return self._baseline_record(
            kind, rep, f"baseline-{rep}-{name}", expect, res, paced, settled, tx0, rx0, tar
        )

    def baseline_rollback(self, rep: int, name: str) -> dict:
        """The baseline's own rollback to its release of ``name`` (still on the host)."""
        expect = self.version(name)
        paced = self.pace()
        settled = self.settle()
        self.watcher.arm()
        tx0, rx0 = self.veth.read()
        res = baseline.rollback(self.guest, f"baseline-{rep}-{name}", expect)
        return self._baseline_record(
            "baseline-rollback", rep, f"baseline-{rep}-{name}", expect, res, paced, settled, tx0, rx0
        )

    def _baseline_record(
        self, kind: str, rep: int, release: str, expect: str, res: dict, paced, settled, tx0, rx0, tar=None
    ) -> dict:
        tx1, rx1 = self.veth.read()
        seen = self.watcher.wait_seen(expect, res["started"])
        self.watcher.disarm()
        healthy = res.get("marks", {}).get("healthy")
        if res.get("marks", {}).get("switch"):
            self.restarts.append(res["marks"]["switch"])
        if not res["ok"] or healthy is None or seen is None:
            raise BenchError(f"baseline {kind} #{rep} failed: {res.get('error')}")
        at_healthy = self.veth.at(healthy) or (tx1, rx1)
        rec = self.record(
            {
                "kind": kind,
                "rep": rep,
                "tool": "baseline",
                "release": release,
                "version": expect,
                "to_healthy_s": round(healthy - res["started"], 3),
                "to_healthy_ext_s": round(seen - res["started"], 3),
                "wall_s": round(res["ended"] - res["started"], 3),
                "tx_bytes": tx1 - tx0,
                "rx_bytes": rx1 - rx0,
                "tx_to_healthy": at_healthy[0] - tx0,
                "upload": f"{tar.stat().st_size / 1e6:.1f} MB wheelhouse tar" if tar else None,
                "unanswered_s": round(self.watcher.unanswered(res["started"], seen), 3),
                "window_s": _round(self.watcher.window(expect, res["started"])),
                "steps": {k: round(v, 3) for k, v in baseline.phases(res).items()},
                "started": round(res["started"], 3),
                "paced_s": round(paced, 2),
                "settled_s": settled,
            }
        )
        say(
            f"{kind} #{rep}: {rec['to_healthy_s']:.2f}s to healthy (probe "
            f"{rec['to_healthy_ext_s']:.2f}s), sent {report.human_bytes(rec['tx_bytes'])}"
            + (f", unavailable {rec['window_s']:.3f}s" if rec["window_s"] is not None else "")
        )
        return rec

    # ------------------------------------------------------------------ phases
    def first_deploys(self, reps: int, rest: float = 0.0) -> None:
        """Per repetition, each on an empty host: baseline first + redeploy, deployer first.

        ``rest``: seconds of idle before each first deploy (both tools)."""
        for rep in range(1, reps + 1):
            self.reset_host()
            time.sleep(rest)
            self.baseline("baseline-first", rep, "v1")
            self.baseline("baseline-redeploy", rep, "v2")
            self.baseline_rollback(rep, "v1")
            self.reset_host()
            time.sleep(rest)
            rid = self.builds["v1"].manifest["release_id"]
            self.deployer(
                "first", rep, ["deploy", "--watch", "0", str(self.builds["v1"].path)], self.version("v1"), rid
            )

    def redeploys(self, news: list[str], reps: int) -> None:
        """New one-line commits; then re-activations (v1/v2), each followed by a rollback."""
        for rep, name in enumerate(news, 1):
            b = self.builds[name]
            self.deployer(
                "code-new",
                rep,
                ["deploy", "--watch", "0", str(b.path)],
                self.version(name),
                b.manifest["release_id"],
            )
        live = news[-1]
        for rep in range(1, reps + 1):
            name = "v1" if rep % 2 else "v2"
            b = self.builds[name]
            self.deployer(
                "code-reactivate",
                rep,
                ["deploy", "--watch", "0", str(b.path)],
                self.version(name),
                b.manifest["release_id"],
            )
            self.deployer(
                "rollback", rep, ["rollback"], self.version(live), self.builds[live].manifest["release_id"]
            )
        self.head_deploys(reps)
        b = self.builds["v1"]
        rec = self.deployer(
            "gate",
            1,
            ["deploy", "--watch", str(GATE_WATCH), str(b.path)],
            self.version("v1"),
            b.manifest["release_id"],
        )
        rec["watch_s"] = GATE_WATCH

    def handovers(self, reps: int) -> None:
        """``[service] handover`` on (host setup turns the unit into its template's two
        instances): code-only redeploys of new commits, each followed by a rollback."""
        config = self.work / "deploy-handover.toml"
        config.write_text(self.config.read_text() + HANDOVER_KEYS)
        live = self.guest.exec(["readlink", f"{BASE}/current"]).stdout.strip().rsplit("/", 1)[-1]
        name = next(n for n, b in self.builds.items() if n != "_repo" and b.manifest["release_id"] == live)
        self.watcher.arm()
        host_setup(self.guest, config)  # the running unit stopped, the first instance started
        if self.watcher.wait_seen(self.version(name), time.time()) is None:
            raise BenchError("with [service] handover set up, the service never answered")
        self.watcher.disarm()
        for rep in range(1, reps + 1):
            b, before = self.builds[f"h{rep}"], self.builds[name]
            rec = self.deployer(
                "handover",
                rep,
                ["deploy", "--watch", "0", str(b.path)],
                self.version(f"h{rep}"),
                b.manifest["release_id"],
                config,
            )
            rec["standby_ready_s"] = self.wait_standby(before.manifest["release_id"])
            self.deployer(
                "handover-rollback",
                rep,
                ["rollback"],
                self.version(name),
                before.manifest["release_id"],
                config,
            )

    def wait_standby(self, rid: str, timeout: float = 60) -> float:
        """Seconds until an instance stands by with ``rid`` (``[service] standby``: it
        imports after the deploy has ended), from the end of that deploy's command."""
        t0 = time.monotonic()
        units = [f"{UNIT}@{slot}.service" for slot in HANDOVER_SLOTS]
        while time.monotonic() - t0 < timeout:
            out = self.guest.exec(["systemctl", "show", "-p", "StatusText", "--value", *units]).stdout
            if any(handover_status(line) == (HANDOVER_READY, rid) for line in out.splitlines()):
                return round(time.monotonic() - t0, 3)
            time.sleep(0.05)
        raise BenchError(f"no instance stood by with {rid} within {timeout:.0f}s of the deploy")

    def head_deploys(self, reps: int) -> None:
        """`deployer deploy` with no artifact, in a clone of the service: each time one more
        code-only commit, built (warm caches) and deployed; to healthy, build included."""
        clone = builds_mod.clone(self.repo, self.work / "repo-head")
        config = self._config(clone, "deploy-head.toml")
        for rep in range(1, reps + 1):
            version = builds_mod.commit_edit(clone, f"head{rep}", f"2026-11-26T16:{rep:02d}:00Z")
            self.deployer("head", rep, ["deploy", "--watch", "0"], version, "HEAD", config)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def machine_facts() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory": mem,
        "python": platform.python_version(),
        "commit": head,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--reps",
        type=int,
        default=int(os.environ.get("BENCH_REPS", "3")),
        help="repetitions of each measurement (default 3, env BENCH_REPS)",
    )
    p.add_argument(
        "--index",
        type=int,
        default=int(os.environ.get("BENCH_STAGING_INDEX", str(DEFAULT_INDEX))),
        help=f"staging guest index (default {DEFAULT_INDEX}, env BENCH_STAGING_INDEX); the "
        "rollout part uses it and the next ones, one per host",
    )
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"which measurements, comma-separated (default {','.join(PARTS)})",
    )
    p.add_argument(
        "--fleet",
        default="1,4,8",
        help="the rollout part's fleet sizes (default 1,4,8; the largest is how many guests boot)",
    )
    p.add_argument(
        "--save-reference", action="store_true", help="also write this run as bench/results/reference.jsonl"
    )
    p.add_argument(
        "--skip-build-timing", action="store_true", help="do not time `deployer build` of the checkout"
    )
    p.add_argument(
        "--host-steps",
        type=int,
        default=1,
        metavar="N",
        help="repetitions of the host-side venv/smoke breakdown (default 1; 0 skips it)",
    )
    p.add_argument(
        "--rest",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="idle this long before each first deploy, baseline's and deployer's "
        "(an experiment: the empty host is moved aside, not deleted, so a "
        "first deploy never follows a mass delete anyway)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target of the issue is missed")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("make bench needs root (the staging host is a systemd-nspawn guest)", file=sys.stderr)
        return 2
    if args.reps < 1:
        p.error("--reps must be at least 1")
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not parts or set(parts) - set(PARTS):
        p.error(f"--parts: pick from {', '.join(PARTS)}")
    try:
        sizes = sorted({int(x) for x in args.fleet.split(",")})
    except ValueError:
        p.error("--fleet: comma-separated numbers of hosts, e.g. 1,4,8")
    if sizes[0] < 1 or 1 not in sizes:
        p.error("--fleet: sizes start at 1 (every size is compared with one host)")
    if args.skip_build_timing:
        parts = [x for x in parts if x != "build"]
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    records: list[dict] = [
        {
            "kind": "run",
            "stamp": stamp,
            "reps": args.reps,
            "rest_s": args.rest,
            "parts": parts,
            "index": args.index,
            **machine_facts(),
        }
    ]
    work = Path(tempfile.mkdtemp(prefix="deployer-bench-"))
    guest = None
    ok = False
    try:
        proc = run_script(args.index, "build", check=False, timeout=UP_TIMEOUT)
        if proc.returncode != 0:
            raise BenchError(f"cannot prepare the staging rootfs: {proc.stderr.strip()[-800:]}")
        builds = builds_mod.build_all(work, args.reps)
        if "rollout" in parts:
            builds.update(rollout.fleet_builds(builds["_repo"], work, sizes))
        notes = steady.builds(work) if "steady" in parts else None
        news = ["v2"] + [f"n{k}" for k in range(2, args.reps + 1)]
        if "speed" in parts or notes:
            say(f"booting staging guest {args.index}")
            guest = StagingHost.up(args.index)
            records[0]["guest_python"] = guest.exec(["python3", "-V"]).stdout.strip()
        if "speed" in parts:
            bench = Bench(guest, work, builds, records)
            try:
                bench.first_deploys(args.reps, args.rest)
                shown = guest.exec(
                    ["systemctl", "show", "-p", "StartLimitBurst", "-p", "StartLimitIntervalUSec", UNIT]
                ).stdout
                records[0]["unit_start_limit"] = dict(line.split("=", 1) for line in shown.split())
                bench.redeploys(news, args.reps)
                apart.controller(bench, args.reps)
                apart.host_steps(bench, args.host_steps)
                bench.handovers(args.reps)  # last: it leaves the unit a template
            finally:
                bench.close()
        if notes:
            steady.measure(guest, work, notes, records)
        if guest is not None:
            guest.down()
            guest = None
        if "rollout" in parts:
            rollout.measure(args.index, sizes, builds, records, work)
        if "build" in parts:
            records.extend(builds_mod.build_timing(builds["_repo"], work))
        ok = True
    finally:
        if guest is not None:
            with contextlib.suppress(Exception):
                guest.down()
        records[0]["seconds"] = round(time.monotonic() - started, 1)
        records[0]["complete"] = ok
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"{stamp}.jsonl"
        out.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
        shutil.rmtree(work, ignore_errors=True)
    say(f"raw measurements: {out.relative_to(ROOT)} ({len(records)} lines)")
    reference = report.load(REFERENCE) if REFERENCE.is_file() else None
    print(report.render(records, reference))
    if args.save_reference:
        shutil.copyfile(out, REFERENCE)
        say(f"saved as {REFERENCE.relative_to(ROOT)}")
    return 1 if args.strict and not report.targets_met(records) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, StagingError) as e:
        sys.exit(f"bench: {e}")
