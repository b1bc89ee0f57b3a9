"""The contract between the controller and the host engine: the one place its names live.

Both halves import this module (the engine ships it inside ``engine.pyz``; standard
library only, Python >= 3.9). Everything that crosses the seam is defined here once:

- ``HostConfig``: the part of deploy.toml the engine needs, with the ONLY defaults.
  The controller's pydantic ``Config`` takes its defaults from here and builds one with
  ``Config.host_config()``. On the wire it is a JSON object (``HostConfig.to_dict``).
  Which copy wins, first found: ``--config-json`` (the controller, every start) >
  ``--config FILE`` > the artifact's manifest (``install``, ``setup --artifact``) >
  ``<base>/deploy.json`` (what the last deploy saved, for one-shot commands on the host).
- The engine's commands (``Command``), the steps its events name (``Step``), the event
  statuses (``Status``), release states, and the outcomes it records.
- ``engine_argv``: how the engine is started; ``parse_event``: how its output is read.
- ``masking.py`` (the one masking rule) and ``patterns.py`` (what may reach a root-owned
  file, the release id) sit beside it.
- ``SUDO_VERBS``: the only ``systemctl`` verbs the deploy user runs through sudo.
- Signed artifacts: ``SIGNATURE_NAMESPACE`` (what ``ssh-keygen -Y sign -n`` signs for),
  ``SIGNATURE_MEMBER`` (where the signature travels in the artifact) and
  ``allowed_signers_path`` (the keys a host trusts for an app, root's).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from deployer.errors import UsageError
from deployer.host.patterns import (
    ABS_PATH,
    ENV_ROOT,
    MODULE,
    NAME,
    SHARED_DIR,
    UNIT,
    USER,
    base_path_problems,
    listen_problems,
)

# ---------------------------------------------------------------------- names


class Command:
    """What the controller may send to ``serve`` (one JSON line each)."""

    PREFLIGHT = "preflight"
    STAGE = "stage"
    ACTIVATE = "activate"
    ROLLBACK = "rollback"
    PRUNE = "prune"
    RELEASES = "releases"
    LOGS = "logs"
    BYE = "bye"
    HEARTBEAT = "hb"


SERVE_COMMANDS = (
    Command.PREFLIGHT,
    Command.STAGE,
    Command.ACTIVATE,
    Command.ROLLBACK,
    Command.PRUNE,
    Command.RELEASES,
    Command.LOGS,
    Command.BYE,
    Command.HEARTBEAT,
)


class Step:
    """The ``step`` of an engine event: one vocabulary for code, output and tests."""

    LOCK = "lock"
    PREFLIGHT = "preflight"
    SIGNATURE = "signature"
    UNPACK = "unpack"
    STAGE = "stage"
    VENV = "venv"
    CHECK = "check"
    SMOKE = "smoke"
    ENV = "env"
    SWITCH = "switch"
    RESTART = "restart"
    HEALTHY = "healthy"
    GATE = "gate"
    REVERT = "revert"
    PRUNE = "prune"
    DRY_RUN = "dry-run"
    # framing: the answer to a command, the heartbeat, the end of a session
    DONE = "done"
    TICK = "tick"
    ERROR = "error"
    ABORT = "abort"
    # one-shot query results
    RELEASE = "release"
    HISTORY = "history"
    STATUS = "status"
    LOG = "log"
    DRIFT = "drift"
    VERIFY = "verify"
    INVENTORY = "inventory"


#: framing events the controller does not show a person
QUIET_STEPS = (Step.TICK, Step.DONE)


class Status:
    START = "start"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


class State:
    """A release's life (``releases/<id>/.state``): staging -> staged -> live -> good | bad."""

    STAGING = "staging"
    STAGED = "staged"
    LIVE = "live"
    GOOD = "good"
    BAD = "bad"


STATES = (State.STAGING, State.STAGED, State.LIVE, State.GOOD, State.BAD)
#: the states a release can be switched to
ACTIVATABLE = (State.STAGED, State.GOOD, State.LIVE)


class Outcome:
    """The ``result`` of a record in ``log/deploys.jsonl``."""

    LIVE = "live"  # switched; its gate is still open
    SUCCESS = "success"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    FAILED = "failed"  # install or smoke test failed: never switched
    STAGED = "staged"  # a dry run


#: how an activation ended (what a controller waits for after a lost link)
ACTIVATION_OUTCOMES = (Outcome.SUCCESS, Outcome.REVERTED, Outcome.REVERT_FAILED)

#: the engine's exit codes (besides an error's own ``exit_code``)
EXIT_ABORTED = 3

#: how many journal lines a deploy keeps and hands back for the audit log
JOURNAL_LINES = 200

#: the unit's ``Type=`` values deployer renders (``[service] type``)
SERVICE_TYPES = ("notify", "exec", "simple")

#: the only verbs the deploy user may run as ``sudo -n systemctl <verb> <unit>``
SUDO_VERBS = ("restart", "stop", "reset-failed")
#: ``[service] handover``: the unit is a template; these are its two instances, and the
#: verbs the deploy user may run on each (the new one is started without waiting for it:
#: it waits for the old one to exit, which only a stop after it ends)
HANDOVER_SLOTS = ("blue", "green")
HANDOVER_VERBS = ("--no-block start", "stop", "reset-failed")
#: the status texts (systemd's StatusText) an instance of a handover sends once it has
#: imported ``[service] preload`` and waits for the running one to exit, then once it
#: holds the lock and runs the service (which may send its own later); each is followed
#: by ``": <release id>"``, the release the instance imported (``handover_status``)
HANDOVER_READY = "deployer: preloaded, waiting for the running instance to exit"
HANDOVER_RUNNING = "deployer: preloaded, running"
#: under the base path: ``<slot>`` -> the release that instance is to run (the deploy
#: user's links, written before each start; an instance without one runs `current`)
HANDOVER_POINTERS = "slots"

#: the namespace an artifact's manifest is signed in (``ssh-keygen -Y sign -n``): a
#: signature the same key made for anything else (a git commit, a file) never passes
SIGNATURE_NAMESPACE = "deployer-artifact@v1"
#: the artifact member holding the manifest's signature, right after ``manifest.json``
SIGNATURE_MEMBER = "manifest.json.sig"
#: the file name of the keys a host trusts for an app, in root's ``/etc/deployer/<app>/``
ALLOWED_SIGNERS = "allowed_signers"


def unit_stem(unit: str) -> str:
    """``app`` of ``app`` or ``app.service``."""
    return unit[: -len(".service")] if unit.endswith(".service") else unit


def service_units(config: HostConfig) -> Tuple[str, ...]:
    """The units a deploy drives: the app's unit, or with handover its two instances."""
    if not config.handover:
        return (config.unit,)
    return tuple(f"{unit_stem(config.unit)}@{slot}.service" for slot in HANDOVER_SLOTS)


def handover_status(status_text: str) -> Tuple[str, str]:
    """(state, release id) of a handover instance's StatusText; ("", "") when it is not one
    of ours (pure)."""
    state, _, rid = status_text.rpartition(": ")
    return (state, rid) if state in (HANDOVER_READY, HANDOVER_RUNNING) else ("", "")


def socket_unit(config: HostConfig) -> Optional[str]:
    """``<unit>.socket`` with ``[service] socket``, else None."""
    return f"{unit_stem(config.unit)}.socket" if config.socket is not None else None


def sudo_commands(config: HostConfig) -> List[List[str]]:
    """Every ``systemctl`` argv tail the deploy user may run through sudo, exactly: the
    verbs on each unit, and with a socket its stop (a first release that failed leaves
    nothing listening)."""
    verbs = HANDOVER_VERBS if config.handover else SUDO_VERBS
    commands = [verb.split() + [unit] for unit in service_units(config) for verb in verbs]
    socket = socket_unit(config)
    return commands + ([["stop", socket]] if socket else [])


def allowed_signers_path(app: str) -> str:
    """Where ``host setup --trust-key`` puts the keys trusted to sign ``app``'s artifacts;
    the principal they are trusted as is the app's name."""
    return f"{ENV_ROOT}/{app}/{ALLOWED_SIGNERS}"


# ---------------------------------------------------------------------- host config


@dataclass(frozen=True)
class SmokeConfig:
    #: argv run in the new venv before the switch; ``{python}`` is its python
    command: Tuple[str, ...] = ()
    timeout: float = 60.0


@dataclass(frozen=True)
class HealthConfig:
    http_url: Optional[str] = None
    command: Optional[Tuple[str, ...]] = None
    expect_version: bool = True
    timeout: float = 30.0
    watch: float = 60.0
    fatal_patterns: Tuple[str, ...] = ("Traceback", "ImportError", "ModuleNotFoundError")


@dataclass(frozen=True)
class HostConfig:
    """What the engine needs to know about the app (no secrets, no SSH details)."""

    app: str
    module: str
    unit: str
    user: str
    base_path: str
    interpreter: str
    smoke: SmokeConfig
    health: HealthConfig = field(default_factory=HealthConfig)
    keep_releases: int = 5
    shared_dirs: Tuple[str, ...] = ("sessions", "data")
    env_required: Tuple[str, ...] = ()
    #: .env keys whose values are not secret (a port, a host name): shown, not masked
    env_public: Tuple[str, ...] = ()
    audit_retention_days: int = 30
    #: how systemd knows the service started: ``notify`` (it sends READY=1), ``exec``
    #: (its program was executed), ``simple`` (forked)
    service_type: str = "notify"
    #: systemd socket activation (``[service] socket``): the TCP address a ``<unit>.socket``
    #: listens on and holds across restarts, handed to the service as fd 3 (LISTEN_FDS);
    #: None: the service binds its own port
    socket: Optional[str] = None
    #: ``[service] handover``: a restart starts the new release beside the running one (two
    #: instances of a template unit, ``HANDOVER_SLOTS``); it imports ``preload``, waits
    #: until the running one exits (a lock only one instance holds), then runs
    handover: bool = False
    #: the modules a handover's new instance imports while the old one still runs
    preload: Tuple[str, ...] = ()
    #: ``[service] standby`` (with handover): after each deploy's gate, the release a
    #: rollback would go back to is started in the idle instance, imports ``preload`` and
    #: waits there; a rollback to it only stops the running one
    standby: bool = False
    #: where the service's .env lives; default ``/etc/deployer/<app>/env``: a root-owned
    #: folder (no link can be planted there), a file the deploy user may only rewrite
    env_file: Optional[str] = None

    @property
    def env_path(self) -> str:
        return self.env_file or f"{ENV_ROOT}/{self.app}/env"

    def to_dict(self) -> Dict[str, Any]:
        """The wire and file form: plain JSON types."""
        return json.loads(json.dumps(asdict(self)))

    def replace(self, **changes: Any) -> HostConfig:
        """A copy with top-level fields or ``health``/``smoke`` fields changed."""
        data = self.to_dict()
        for key, value in changes.items():
            table = next((t for t in ("health", "smoke") if key in data[t]), None)
            if table is not None:
                data[table][key] = value
            else:
                data[key] = value
        return HostConfig.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any, source: str = "host config") -> HostConfig:
        """Validate the JSON form; ``UsageError`` names the key and the source."""
        if not isinstance(data, dict):
            raise UsageError(f"{source}: not a JSON object")
        top = _typed(cls, data, source, nested={"smoke": SmokeConfig, "health": HealthConfig})
        config = cls(**top)
        for key, problem in config.problems():
            raise UsageError(f"{source}: {key}: {problem}")
        return config

    def problems(self) -> List[Tuple[str, str]]:
        """(key, why) for every value that may not go into a root-owned file or a path.

        These values are rendered into the unit, the launcher and the sudoers drop-in, and
        name paths root acts on: each must match a strict pattern (no newline, no ``..``)."""
        found = []
        for key, pattern, value in (
            ("app", NAME, self.app),
            ("unit", UNIT, self.unit),
            ("user", USER, self.user),
            ("module", MODULE, self.module),
            ("interpreter", ABS_PATH, self.interpreter),
        ):
            if not pattern.match(value):
                found.append((key, f"{value!r} does not match {pattern.pattern}"))
        if self.service_type not in SERVICE_TYPES:
            found.append(("service_type", f"{self.service_type!r} is not one of {', '.join(SERVICE_TYPES)}"))
        if self.user == "root":
            found.append(("user", "root may not deploy or run the service: name a user of its own"))
        found += [("base_path", why) for why in base_path_problems(self.base_path)]
        if self.socket is not None:
            found += [("socket", why) for why in listen_problems(self.socket)]
        if self.handover and self.socket is not None:
            found.append(
                ("handover", "cannot be combined with socket: the socket unit starts one named service")
            )
        if self.standby and not self.handover:
            found.append(("standby", "needs handover: the standby is the idle instance of the handover"))
        if self.handover and "@" in self.unit:
            found.append(
                ("unit", f"{self.unit!r}: with handover the unit is a template; name it without '@'")
            )
        found += [("preload", f"{m!r} is not a module name") for m in self.preload if not MODULE.match(m)]
        if self.env_file is not None and not ABS_PATH.match(self.env_file):
            found.append(("env_file", f"{self.env_file!r} must be an absolute path of plain names"))
        for d in self.shared_dirs:
            if not SHARED_DIR.match(d) or ".." in d.split("/"):
                found.append(("shared_dirs", f"{d!r} is not a safe relative path"))
        return found


_SIMPLE: Dict[str, Any] = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _typed(cls: Any, data: Dict[str, Any], source: str, nested: Dict[str, Any]) -> Dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        hint = (
            " (a deployer newer than this artifact's engine: build the artifact with it)"
            if source == "--config-json"
            else ""
        )
        raise UsageError(f"{source}: unknown key {unknown[0]!r}{hint}")
    out: Dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise UsageError(f"{source}: {name} is missing")
            continue
        value = data[name]
        if name in nested:
            sub = value if isinstance(value, dict) else None
            if sub is None:
                raise UsageError(f"{source}: {name} must be an object")
            out[name] = nested[name](**_typed(nested[name], sub, f"{source}: {name}", {}))
            continue
        out[name] = _coerce(str(f.type), value, f"{source}: {name}")
    return out


def _coerce(kind: str, value: Any, where: str) -> Any:
    optional = kind.startswith("Optional[")
    if optional:
        if value is None:
            return None
        kind = kind[len("Optional[") : -1]
    if kind.startswith("Tuple[str"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: must be a list of strings")
        return tuple(value)
    expected = _SIMPLE[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise UsageError(f"{where}: must be {kind}, not {type(value).__name__}")
    return float(value) if kind == "float" else value


# ---------------------------------------------------------------------- the wire


def engine_argv(
    interpreter: str,
    engine: str,
    config: HostConfig,
    *args: str,
    actor: Optional[str] = None,
    run_url: Optional[str] = None,
) -> List[str]:
    """The argv that starts the engine with ``config`` (the controller's copy wins)."""
    argv = [interpreter, engine, "--config-json", json.dumps(config.to_dict(), separators=(",", ":"))]
    if actor:
        argv += ["--actor", actor]
    if run_url:
        argv += ["--run-url", run_url]
    return argv + list(args)


def parse_event(line: Any) -> Optional[Dict[str, Any]]:
    """One line of engine output as an event, or None when it is not one."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def parse_events(text: str) -> List[Dict[str, Any]]:
    """Every event in a block of engine output."""
    return [e for e in map(parse_event, text.splitlines()) if e is not None]
