"""deploy.toml: the validated description of an app, its target and its hosts.

Config is data, validated up front. Unknown keys are rejected and every error names
its key path (``hosts[0].port: ...``). Environment variables override what CI injects
(``apply_env_overrides``), so secrets never have to live in the file. What the host
engine needs is handed over as a ``HostConfig`` (``Config.host_config``), whose
defaults are the only ones: the models below take theirs from it.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deployer.errors import ConfigError
from deployer.host.contract import HealthConfig, HostConfig, SmokeConfig

DEFAULT_CONFIG = "deploy.toml"

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_RE, max_length=64)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class App(Model):
    """What is deployed and where it lives on the host."""

    name: Name
    module: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")] | None = None
    unit: Name | None = None
    source: str = "."
    requirements: str | None = "requirements.txt"
    packaging: str = "packaging"
    user: Name = "tgstream"
    base_path: str | None = None
    keep_releases: Annotated[int, Field(ge=1, le=100)] = HostConfig.keep_releases
    shared_dirs: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")]] = list(
        HostConfig.shared_dirs
    )

    @field_validator("base_path")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or ".." in v.split("/") or v == "/"):
            raise ValueError("must be an absolute path below / without '..'")
        return v.rstrip("/") if v else v

    @field_validator("shared_dirs")
    @classmethod
    def _no_dotdot(cls, v: list[str]) -> list[str]:
        for d in v:
            if ".." in d.split("/") or d in ("venv", "manifest.json", ".env"):
                raise ValueError(f"{d!r} is not allowed as a shared dir")
        return v

    @property
    def module_name(self) -> str:
        return self.module or self.name.replace("-", "_")

    @property
    def unit_name(self) -> str:
        return self.unit or self.name

    @property
    def base(self) -> str:
        return self.base_path or f"/opt/{self.name}"


class Platform(Model):
    """The host's Python and platform: drives the build, preflight and venv alike."""

    python_version: Annotated[str, Field(pattern=r"^3\.\d{1,2}$")] = "3.11"
    interpreter: str = "/usr/bin/python3"
    platform: Literal["linux_x86_64", "linux_aarch64"] = "linux_x86_64"
    glibc: Annotated[str, Field(pattern=r"^2\.\d{1,2}$")] = "2.36"

    @field_validator("python_version")
    @classmethod
    def _supported(cls, v: str) -> str:
        if int(v.split(".")[1]) < 9:
            raise ValueError("the host engine needs Python 3.9 or newer")
        return v

    @field_validator("interpreter")
    @classmethod
    def _abs_interpreter(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must be an absolute path, e.g. /usr/bin/python3")
        return v

    @property
    def arch(self) -> str:
        return self.platform.split("_", 1)[1]

    @property
    def glibc_tuple(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)


class Host(Model):
    name: Name | None = None
    address: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\[\]-]+$")]
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: Name | None = None

    @property
    def label(self) -> str:
        return self.name or self.address


class Ssh(Model):
    key_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: Seconds = 10
    accept_new_host_keys: bool = False


class Health(Model):
    """When a restarted service counts as healthy, and how long it is watched."""

    http_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    command: list[str] | None = None
    expect_version: bool = HealthConfig.expect_version
    timeout: Seconds = HealthConfig.timeout
    watch: Annotated[float, Field(ge=0, le=3600)] = HealthConfig.watch
    fatal_patterns: list[str] = list(HealthConfig.fatal_patterns)

    @field_validator("fatal_patterns")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"{p!r} is not a valid regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _one_probe(self) -> Health:
        if self.http_url and self.command:
            raise ValueError("give http_url or command, not both")
        if self.command is not None and not self.command:
            raise ValueError("command must not be empty")
        return self


class Env(Model):
    """Where the production .env comes from (a file, or an environment variable in CI)."""

    file: str | None = None
    from_variable: Name | None = None
    required: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []
    #: keys whose values are not secret (HTTP_PORT, LOG_LEVEL): shown in output, not masked
    public: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []


class Smoke(Model):
    """Run in the new venv before the switch, with an empty environment.

    ``{python}`` is replaced by the release's venv python; the default is
    ``{python} -m <module> --selfcheck``.
    """

    command: list[str] | None = None
    timeout: Seconds = SmokeConfig.timeout


class Service(Model):
    """How systemd runs the service (rendered into the unit by `deployer host setup`)."""

    #: notify: the service sends sd_notify READY=1 when it is ready; exec: started once
    #: its program runs (for services that do not speak sd_notify)
    type: Literal["notify", "exec", "simple"] = "notify"
    #: systemd socket activation: the TCP address (``127.0.0.1:8000``, a port, ``[::1]:8000``)
    #: a ``<unit>.socket`` listens on across restarts; the service takes it from LISTEN_FDS
    socket: Annotated[str, Field(min_length=1, max_length=64)] | None = HostConfig.socket
    #: a restart starts the new release beside the running one: it imports ``preload``,
    #: then waits until the old one has exited (two instances of a template unit, never
    #: running the service's code at once); the window without a service shrinks to the
    #: old one's stop and the new one's start after its imports
    handover: bool = HostConfig.handover
    #: the modules the new release imports while the old one still runs (``handover``)
    preload: list[Annotated[str, Field(min_length=1, max_length=200)]] = []
    #: with ``handover``: after each deploy's gate the release a rollback goes back to
    #: starts in the idle instance, imports ``preload`` and stands by; a rollback to it
    #: only stops the running one (one more process, holding its imports, on the host)
    standby: bool = HostConfig.standby


class Rollout(Model):
    """In which order a deploy or rollback switches its hosts (controller only: the
    engines never see it). The first ``canary`` hosts are switched and pass their gate
    first; then the rest, ``wave`` hosts at a time, each wave gated in parallel. The
    first wave with a failure is the last."""

    canary: Annotated[int, Field(ge=0, le=1000)] = 1
    #: hosts per wave after the canary; None: all the rest at once
    wave: Annotated[int, Field(ge=1, le=1000)] | None = None


class Notify(Model):
    kind: Literal["slack", "webhook", "email", "telegram"]
    url_from_variable: Name
    on: list[Literal["success", "failure"]] = ["success", "failure"]


class Audit(Model):
    retention_days: Annotated[int, Field(ge=1, le=3650)] = HostConfig.audit_retention_days


class Artifact(Model):
    format: Literal["wheelhouse", "pex"] = "wheelhouse"
    ship_uv: bool = True
    #: the cooldown: a dependency uploaded less than this many days before the commit is
    #: refused (or, with min_age_policy = "warn", warned about); 0 = off
    min_age_days: Annotated[float, Field(ge=0, le=3650)] = 0
    min_age_policy: Literal["refuse", "warn"] = "refuse"
    bytecode: bool = True
    build_python: str | None = None
    #: the key every build signs the manifest with (ssh-keygen -Y sign); none: unsigned
    signing_key: str | None = None


class Config(Model):
    app: App
    target: Platform = Platform()
    hosts: list[Host] = []
    ssh: Ssh = Ssh()
    health: Health = Health()
    env: Env = Env()
    smoke: Smoke = Smoke()
    service: Service = Service()
    rollout: Rollout = Rollout()
    notify: list[Notify] = []
    audit: Audit = Audit()
    artifact: Artifact = Artifact()

    @model_validator(mode="after")
    def _safe_for_root(self) -> Config:
        """What root renders into the unit, launcher and sudoers, checked by the contract."""
        for key, problem in self.host_config().problems():
            raise ValueError(f"{HOST_KEYS[key]}: {problem}")
        return self

    @model_validator(mode="after")
    def _unique_hosts(self) -> Config:
        seen: set[str] = set()
        for i, h in enumerate(self.hosts):
            key = f"{h.address}:{h.port}"
            if key in seen:
                raise ValueError(f"hosts[{i}]: {key} is listed twice")
            seen.add(key)
        return self

    def host_user(self, host: Host) -> str:
        return host.user or self.app.user

    def smoke_command(self) -> list[str]:
        return self.smoke.command or ["{python}", "-m", self.app.module_name, "--selfcheck"]

    def host_config(self) -> HostConfig:
        """The part of this config the host engine needs (no secrets, no SSH details)."""
        app, health = self.app, self.health
        return HostConfig(
            app=app.name,
            module=app.module_name,
            unit=app.unit_name,
            user=app.user,
            base_path=app.base,
            interpreter=self.target.interpreter,
            smoke=SmokeConfig(command=tuple(self.smoke_command()), timeout=self.smoke.timeout),
            health=HealthConfig(
                http_url=health.http_url,
                command=tuple(health.command) if health.command is not None else None,
                expect_version=health.expect_version,
                timeout=health.timeout,
                watch=health.watch,
                fatal_patterns=tuple(health.fatal_patterns),
            ),
            keep_releases=app.keep_releases,
            shared_dirs=tuple(app.shared_dirs),
            env_required=tuple(self.env.required),
            env_public=tuple(self.env.public),
            service_type=self.service.type,
            socket=self.service.socket,
            handover=self.service.handover,
            preload=tuple(self.service.preload),
            standby=self.service.standby,
            audit_retention_days=self.audit.retention_days,
        )


#: HostConfig field -> the deploy.toml key it comes from
HOST_KEYS = {
    "app": "app.name",
    "module": "app.module",
    "unit": "app.unit",
    "user": "app.user",
    "base_path": "app.base_path",
    "interpreter": "target.interpreter",
    "shared_dirs": "app.shared_dirs",
    "service_type": "service.type",
    "socket": "service.socket",
    "handover": "service.handover",
    "preload": "service.preload",
    "standby": "service.standby",
}


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: ``<source>: <key.path>: <message>`` for the first error (+ count)."""
    errors = err.errors()
    first = errors[0]
    path = _key_path(tuple(p for p in first["loc"] if p not in ("function-after",)))
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {path}: {msg}{more}" if path else f"{source}: {msg}{more}"


def parse_hosts(spec: str) -> list[dict]:
    """``user@addr:port,addr2`` -> host dicts (DEPLOYER_HOSTS)."""
    hosts = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        user = None
        if "@" in item:
            user, item = item.split("@", 1)
        m = re.fullmatch(r"\[?([^\]]+?)\]?(?::(\d+))?", item)
        if not m or (item.count(":") > 1 and not item.startswith("[")):
            raise ConfigError(f"DEPLOYER_HOSTS: cannot parse host {item!r}")
        host: dict = {"address": m.group(1)}
        if m.group(2):
            host["port"] = int(m.group(2))
        if user:
            host["user"] = user
        hosts.append(host)
    return hosts


def apply_env_overrides(data: dict, environ: dict[str, str]) -> dict:
    """Return a copy of the raw config with CI-injected environment overrides applied."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    if environ.get("DEPLOYER_HOSTS"):
        data["hosts"] = parse_hosts(environ["DEPLOYER_HOSTS"])
    if environ.get("DEPLOYER_USER"):
        data.setdefault("app", {})["user"] = environ["DEPLOYER_USER"]
        data["hosts"] = [{k: v for k, v in h.items() if k != "user"} for h in data.get("hosts", [])]
    for var, (table, key) in {
        "DEPLOYER_SSH_KEY_FILE": ("ssh", "key_file"),
        "DEPLOYER_KNOWN_HOSTS_FILE": ("ssh", "known_hosts"),
        "DEPLOYER_ENV_FILE": ("env", "file"),
        "DEPLOYER_SIGNING_KEY_FILE": ("artifact", "signing_key"),
    }.items():
        if environ.get(var):
            data.setdefault(table, {})[key] = environ[var]
    return data


def load_config(path: str | os.PathLike = DEFAULT_CONFIG, environ: dict | None = None) -> Config:
    """Read, override from the environment, and validate a deploy.toml."""
    path = Path(path)
    environ = dict(os.environ if environ is None else environ)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run `deployer init` to create one)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return validate_config(apply_env_overrides(raw, environ), str(path))


def validate_config(data: dict, source: str = DEFAULT_CONFIG) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def resolve(config_path: str | os.PathLike, relative: str) -> Path:
    """A path from the config, taken relative to the config file's folder."""
    p = Path(os.path.expanduser(relative))
    return p if p.is_absolute() else Path(config_path).resolve().parent / p
