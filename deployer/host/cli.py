"""The host engine's command line: ``python3 engine.pyz [--base B] COMMAND``.

Every step prints one JSON event line (time, step, status, detail, duration). The host
config (unit, health, shared dirs, ...) is a ``HostConfig`` (``contract.py``); which
copy wins is said there: ``--config-json`` > ``--config FILE`` > the artifact's
manifest > ``<base>/deploy.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, List, Optional

from deployer import __version__
from deployer.errors import DeployerError, HostError, UsageError
from deployer.host.artifact import iter_verified, read_manifest, read_signed
from deployer.host.commands import NO_LOCK, UNDER_LOCK, Change, lock_status, read_text, verify
from deployer.host.contract import HostConfig, Status, Step
from deployer.host.engine import Engine
from deployer.host.events import Events
from deployer.host.rootfiles import TEMPLATES, drift, load_templates
from deployer.host.service import Service, service_for
from deployer.host.setup import Setup
from deployer.host.signature import Trust, check, host_trust
from deployer.host.state import write_atomic

SAVED_CONFIG = "deploy.json"
ServiceFactory = Callable[[HostConfig], Service]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.pyz", description="deployer host engine")
    p.add_argument("--version", action="version", version=f"deployer-engine {__version__}")
    p.add_argument(
        "--json", action="store_true", help="JSON lines even on a terminal (the default elsewhere)"
    )
    p.add_argument("--base", help="the app's base path (default: from the config)")
    p.add_argument("--config", help="host config JSON file (default: artifact's, then saved)")
    p.add_argument("--config-json", help="host config as a JSON string (controller use)")
    p.add_argument("--actor", help="who deploys (audit log); default: the user")
    p.add_argument("--run-url", help="link to the CI run or log (audit log, lock holder)")
    p.add_argument(
        "--lock-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another deploy's lock instead of failing",
    )
    _add_commands(p.add_subparsers(dest="command", required=True))
    return p


def _add_commands(sub) -> None:
    """The subcommands and their arguments, in the order ``--help`` lists them."""
    sub.add_parser("verify", help="check an artifact's manifest and every hash").add_argument("artifact")
    sub.add_parser("preflight", help="can this host take the release? writes nothing").add_argument(
        "artifact", help="the artifact, or - to read its manifest JSON from stdin"
    )
    sub.add_parser("status", help="unit state, current release, health probe")
    sub.add_parser(
        "drift", help="the installed unit and launcher against templates; writes nothing"
    ).add_argument("templates", help="a JSON object of template texts by key, or - to read it from stdin")
    lg = sub.add_parser("logs", help="the service's journal (masked)")
    lg.add_argument("--release", metavar="ID", help="the journal excerpts kept for a release")
    lg.add_argument("-n", "--lines", type=int, default=100)
    sub.add_parser("inventory", help="what releases are made of (for deployer diff)").add_argument(
        "releases", nargs="+", metavar="ID"
    )
    sub.add_parser("stage", help="unpack, venv, install offline, smoke test").add_argument("artifact")
    a = sub.add_parser("activate", help="switch to a staged release, restart, health gate")
    a.add_argument("release")
    a.add_argument("--env-file", help="the new .env (default: keep the current one)")
    r = sub.add_parser("rollback", help="back to the last good activation before current")
    r.add_argument("--to", metavar="ID")
    sub.add_parser("releases", help="id, version, state, activated at, current")
    h = sub.add_parser("history", help="the last records of log/deploys.jsonl")
    h.add_argument("--last", type=int, metavar="N", help="only the last N (default 20 without --since)")
    h.add_argument("--since", metavar="TIME", help="only the records at or after TIME (2026-11-01T00:00:00Z)")
    sub.add_parser("prune", help="apply retention: releases, cached wheels, .env backups, logs")
    sub.add_parser("lock", help="who holds the deploy lock")
    i = sub.add_parser("install", help="the whole chain from a local artifact (air-gapped hosts)")
    i.add_argument("artifact")
    i.add_argument("--env-file", help="the new .env (default: keep the current one)")
    i.add_argument("--dry-run", action="store_true", help="preflight, stage and smoke only")
    for sp in (a, i):
        sp.add_argument(
            "--watch",
            type=float,
            metavar="SECONDS",
            help="override health.watch (seconds watched after healthy)",
        )
    sub.add_parser("serve", help="one process per deploy, driven over stdin (controller use)")
    s = sub.add_parser("setup", help="as root, once: deploy user, layout, sudoers, unit")
    s.add_argument("--artifact", help="take the templates from this artifact")
    s.add_argument("--templates", help="take the templates from this directory")
    s.add_argument("--authorized-key", help="public key file to authorize for the deploy user")
    s.add_argument(
        "--trust-key",
        action="append",
        metavar="PUB",
        help="a public key trusted to sign the app's artifacts (repeat: exactly these are trusted)",
    )
    s.add_argument(
        "--allow-unsigned", action="store_true", help="trust no keys: accept unsigned artifacts again"
    )
    s.add_argument("--check", action="store_true", help="only report drift; write nothing")


def load_host_config(args: argparse.Namespace) -> HostConfig:
    """The host config, from the first source that has one (the order is the contract's)."""
    if args.config_json:
        source = "--config-json"
        try:
            config = json.loads(args.config_json)
        except ValueError as e:
            raise UsageError(f"--config-json: {e}") from None
    elif args.config:
        source = f"--config {args.config}"
        try:
            config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"--config {args.config}: {e}") from None
    elif getattr(args, "artifact", None) not in (None, "-") and args.command != "verify":
        source = f"{args.artifact}: manifest config"
        config = dict(read_manifest(args.artifact).get("config") or {})
    else:
        if args.command == "setup":  # root never takes values from a file the deploy user writes
            raise UsageError(
                "setup needs --config-json, --config FILE or --artifact (not the saved deploy.json)"
            )
        if not args.base:
            raise UsageError("--base is needed (no config given)")
        saved = Path(args.base) / SAVED_CONFIG
        source = str(saved)
        try:
            config = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError(f"{saved}: no saved config; pass --config") from None
    if args.base and isinstance(config, dict):
        config["base_path"] = args.base
    return HostConfig.from_dict(config, source)


def run(args: argparse.Namespace, events: Events, service_factory: ServiceFactory) -> int:
    if args.command == "verify":
        return verify(args, events)
    config = load_host_config(args)
    if getattr(args, "watch", None) is not None:
        config = config.replace(watch=args.watch)
    if args.command == "setup":
        return run_setup(args, config, events)
    if args.command == "lock":
        return lock_status(config, events)
    engine = Engine(config, service_factory(config), events, actor=args.actor, run_url=args.run_url)
    if args.command in NO_LOCK:
        return NO_LOCK[args.command](args, engine)
    if args.command in ("stage", "install"):
        engine.check_signed(args.artifact)  # a refused artifact leaves nothing, not even deploy.json
    return _run_locked(args, engine, UNDER_LOCK[args.command])


def _run_locked(args: argparse.Namespace, engine: Engine, change: Change) -> int:
    """Take the deploy lock, save the config this run uses, make the change."""
    engine.acquire(wait=args.lock_wait)
    try:
        base = Path(engine.config.base_path)
        base.mkdir(parents=True, exist_ok=True)
        write_atomic(base / SAVED_CONFIG, json.dumps(engine.config.to_dict(), indent=2) + "\n")
        change(args, engine)
    finally:
        engine.release_lock()
    return 0


def setup_templates(args: argparse.Namespace, config: HostConfig, trust: Optional[Trust]) -> dict:
    """The unit and launcher templates root renders: from a directory, or from an artifact
    the host's trusted keys (``trust``: the keys given now, else those it has) vouch for."""
    if args.templates:
        return load_templates(Path(args.templates))
    if args.artifact:
        if trust is not None:
            check(read_signed(args.artifact), trust, args.artifact)
        texts = {}
        for member, reader, _ in iter_verified(args.artifact):
            if member.name.startswith("packaging/"):
                texts[Path(member.name).name] = reader.read().decode("utf-8")
        by_key = {k: texts.get(name) for k, name in TEMPLATES.items()}
        missing = [TEMPLATES[k] for k, v in by_key.items() if v is None]
        if missing:
            raise UsageError(f"{args.artifact} carries no template {missing[0]}")
        return by_key
    # never the templates under `current/`: the deploy user can write them, and root
    # would render them into the unit and the launcher
    raise UsageError("setup needs --artifact ARTIFACT or --templates DIR (the unit and launcher templates)")


def run_setup(args: argparse.Namespace, config: HostConfig, events: Events) -> int:
    trust_keys = [read_text(k, "--trust-key") or "" for k in args.trust_key or []]
    given = Trust.of_keys(config.app, trust_keys, "--trust-key") if trust_keys else None
    templates = setup_templates(args, config, None if args.allow_unsigned else given or host_trust(config))
    if args.check:
        problems = drift(templates, config)
        for p in problems:
            events.emit(Step.DRIFT, Status.FAIL, p)
        events.emit(
            "setup check",
            Status.OK if not problems else Status.FAIL,
            "unit and launcher match the templates" if not problems else f"{len(problems)} difference(s)",
        )
        return 1 if problems else 0
    key = read_text(args.authorized_key, "--authorized-key")
    changed = Setup(
        config,
        templates,
        events,
        authorized_key=key,
        trust_keys=trust_keys,
        allow_unsigned=args.allow_unsigned,
    ).run()
    events.emit(
        "setup", Status.OK, f"{len(changed)} change(s)" if changed else "nothing to change", changed=changed
    )
    return 0


def main(argv: Optional[List[str]] = None, service_factory: ServiceFactory = service_for) -> None:
    args = _parser().parse_args(argv)
    events = Events(human=not args.json and sys.stdout.isatty())  # a person at a terminal
    try:
        code = run(args, events, service_factory)
    except DeployerError as e:
        events.emit(Step.ERROR, Status.FAIL, str(e), error=type(e).__name__)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except OSError as e:  # a host problem (permissions, disk) is reported, not a traceback
        events.emit(
            "error",
            Status.FAIL,
            f"{e.strerror}: {e.filename}" if e.filename else str(e),
            error=HostError.__name__,
        )
        code = 1
    sys.exit(code)
