"""What each of the engine's subcommands does, given the parsed command line.

``NO_LOCK``: the commands that take no lock, because they only read (or, like ``serve``,
take it themselves). ``UNDER_LOCK``: the changes, which ``cli.run`` makes under the
deploy lock. ``setup`` (as root) is ``cli.run_setup``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional

from deployer.errors import UsageError
from deployer.host.activate import EnvChange
from deployer.host.artifact import read_manifest, validate_manifest_shape, verify_artifact
from deployer.host.contract import HostConfig, Status, Step
from deployer.host.engine import Engine
from deployer.host.events import Events, parse_time
from deployer.host.lock import DeployLock, describe
from deployer.host.serve import Serve

Subcommand = Callable[[argparse.Namespace, Engine], int]  # returns the exit code
Change = Callable[[argparse.Namespace, Engine], None]  # run under the deploy lock


def read_text(path: Optional[str], flag: str = "--env-file") -> Optional[str]:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror}") from None


def verify(args: argparse.Namespace, events: Events) -> int:
    with events.step(Step.VERIFY, args.artifact) as r:
        m = verify_artifact(args.artifact)
        r["detail"] = f"{m['app']} {m['version']} release {m['release_id']}"
    return 0


def lock_status(config: HostConfig, events: Events) -> int:
    base = Path(config.base_path)
    status = DeployLock(base / ".lock", base / ".lock.holder").status()
    events.emit(Step.LOCK, Status.INFO, describe(status["holder"]) if status["held"] else "free", **status)
    return 0


# -- the commands that take no lock


def _releases(args: argparse.Namespace, engine: Engine) -> int:
    for row in engine.releases():
        engine.events.emit(Step.RELEASE, Status.INFO, row["id"], **row)
    return 0


def _history(args: argparse.Namespace, engine: Engine) -> int:
    records = list(engine.history.records())
    if args.since:
        since = parse_time(args.since)
        if since is None:
            raise UsageError(f"history --since {args.since}: not a UTC time like 2026-11-01T00:00:00Z")
        records = [r for r in records if (parse_time(str(r.get("time", ""))) or since) >= since]
    last = args.last if args.last is not None else (None if args.since else 20)
    if last is not None:
        records = records[-last:] if last > 0 else []
    for record in records:
        engine.events.emit(Step.HISTORY, Status.INFO, record.get("result", ""), record=record)
    return 0


def _serve(args: argparse.Namespace, engine: Engine) -> int:
    return Serve(engine).run(lock_wait=args.lock_wait)


def _preflight(args: argparse.Namespace, engine: Engine) -> int:
    if args.artifact == "-":
        manifest = validate_manifest_shape(json.loads(sys.stdin.read()), "stdin")
    else:
        manifest = read_manifest(args.artifact)
    engine.preflight(manifest)
    return 0


def _drift(args: argparse.Namespace, engine: Engine) -> int:
    text = sys.stdin.read() if args.templates == "-" else read_text(args.templates, "drift")
    try:
        templates = json.loads(text or "")
    except ValueError as e:
        raise UsageError(f"drift {args.templates}: not JSON: {e}") from None
    for problem in engine.drift(templates):
        engine.events.emit(Step.DRIFT, Status.INFO, problem)
    return 0


def _status(args: argparse.Namespace, engine: Engine) -> int:
    engine.events.emit(Step.STATUS, Status.INFO, "", **engine.status())
    return 0


def _logs(args: argparse.Namespace, engine: Engine) -> int:
    for line in engine.logs(args.release, args.lines):
        engine.events.emit(Step.LOG, Status.INFO, line)
    return 0


def _inventory(args: argparse.Namespace, engine: Engine) -> int:
    from deployer.host.inventory import release_inventory

    found = [release_inventory(engine.layout, rid) for rid in args.releases]  # all, or an error
    for rid, inventory in zip(args.releases, found):
        engine.events.emit(Step.INVENTORY, Status.INFO, rid, inventory=inventory)
    return 0


NO_LOCK: Dict[str, Subcommand] = {
    "releases": _releases,
    "history": _history,
    "serve": _serve,
    "preflight": _preflight,
    "drift": _drift,
    "status": _status,
    "logs": _logs,
    "inventory": _inventory,
}


# -- the changes, made under the deploy lock


def _stage(args: argparse.Namespace, engine: Engine) -> None:
    engine.stage(args.artifact)


def _activate(args: argparse.Namespace, engine: Engine) -> None:
    engine.activate(args.release, EnvChange(text=read_text(args.env_file)))


def _rollback(args: argparse.Namespace, engine: Engine) -> None:
    engine.rollback(args.to)


def _prune(args: argparse.Namespace, engine: Engine) -> None:
    engine.prune()


def _install(args: argparse.Namespace, engine: Engine) -> None:
    """preflight, stage, activate, prune: the whole chain from a local artifact."""
    env = read_text(args.env_file)
    engine.preflight(read_manifest(args.artifact))
    rid = engine.stage(args.artifact)
    if args.dry_run:
        engine.history.append({**engine.record, "action": "dry-run", "to": rid, "result": "staged"})
        engine.events.emit(Step.DRY_RUN, Status.OK, f"{rid} staged and smoke-tested; nothing switched")
        return
    engine.activate(rid, EnvChange(text=env), action="install")
    engine.prune()


UNDER_LOCK: Dict[str, Change] = {
    "stage": _stage,
    "activate": _activate,
    "rollback": _rollback,
    "prune": _prune,
    "install": _install,
}
