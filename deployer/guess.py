"""What ``deployer init`` guesses about a service from its code, and why.

Each guess is one deploy.toml key, the value init writes and the reason, printed as one
line. The service's ``.py`` files are parsed, never imported or run; comments and
docstrings never count (a README saying "no sd_notify" does not make it notify):

- ``[service] type``: ``notify`` only when the code speaks sd_notify (``sd_notify``,
  ``NOTIFY_SOCKET``, ``systemd.daemon.notify``, ``sdnotify``), else ``exec``;
- ``[service] socket``: ``127.0.0.1:<port>`` when the code takes a listening socket from
  systemd (``LISTEN_FDS``, ``listen_fds``) and reads its port as ``http_url`` does; else none;
- ``[health] http_url``: ``--health-url``, or ``http://127.0.0.1:<port>/health`` when the
  code serves ``/health`` and reads its port from an environment variable with a default;
  else none (healthy = the unit active and not restarted through the watch window);
- ``[health] expect_version``: true only when the code reads the installed version
  (``importlib.metadata.version``), the one deployer stamps on every build;
- ``[env] public``: the keys that are plainly not secrets (PORT, HOST, ``*_PORT``,
  ``*_HOST``, ``*_DIR``, LOG_LEVEL) of a sample .env and of the names the code reads;
- ``[smoke] command``: ``python -m <module> --selfcheck`` when its ``__main__`` takes it.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import UsageError
from deployer.pycode import ENV_NAME, Module, calls, dotted, env_reads, literal, port_number, read_modules

#: keys whose values are shown in output: plainly not secrets by their names
PUBLIC_NAME = re.compile(r"^(?:PORT|HOST|LOG_LEVEL|[A-Z][A-Z0-9_]*_(?:PORT|HOST|DIR))$")
#: never public, whatever the name ends with
SECRET_WORD = re.compile(r"SECRET|TOKEN|PASS|KEY|CREDENTIAL|AUTH|PRIVATE")
PORT_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*_)?PORT$")
#: sample .env files, looked for in the service's folder and the repository's root
ENV_SAMPLES = (
    ".env.example",
    ".env.sample",
    ".env.template",
    "env.example",
    "env.sample",
    "env.template",
    "example.env",
    "sample.env",
)
HEALTH_PATHS = ("/health", "/healthz")
NOTIFY_WORDS = ("sd_notify", "sdnotify")
#: what code that takes its socket from systemd (socket activation) says
LISTEN_WORDS = ("LISTEN_FDS", "listen_fds", "sd_listen_fds")


@dataclass(frozen=True)
class Guess:
    """One key of deploy.toml: its value as TOML text (None: left out) and why."""

    key: str
    value: str | None
    why: str

    @property
    def line(self) -> str:
        if self.value is None:
            return f"guessed no {self.key}: {self.why}"
        return f"guessed {self.key} = {self.value}: {self.why}"


@dataclass(frozen=True)
class Guesses:
    service_type: Guess
    socket: Guess
    http_url: Guess
    expect_version: Guess
    public: Guess
    smoke: Guess
    #: the service's sample .env, the source of packaging/env.template when there is one
    env_sample: Path | None = None

    def lines(self) -> list[str]:
        guesses = (
            self.service_type,
            self.socket,
            self.http_url,
            self.expect_version,
            self.public,
            self.smoke,
        )
        return [g.line for g in guesses]

    def placeholders(self) -> dict[str, str]:
        """The values of deploy.toml.in's placeholders."""
        url = (
            f"http_url = {self.http_url.value}"
            if self.http_url.value
            else '# http_url = "http://127.0.0.1:8080/health"'
        )
        return {
            "SERVICE_TYPE": self.service_type.value or '"exec"',
            "SOCKET": f"socket = {self.socket.value}" if self.socket.value else '# socket = "127.0.0.1:8000"',
            "HTTP_URL": url,
            "EXPECT_VERSION": self.expect_version.value or "false",
            "PUBLIC": self.public.value or "[]",
            "SMOKE": self.smoke.value or "[]",
        }


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


# ---------------------------------------------------------------------- readiness
def notify_marker(modules: list[Module]) -> tuple[str, str] | None:
    """(file, what) of the first sign that the code speaks sd_notify."""
    for m in modules:
        if m.tree is None:
            code = "\n".join(line.split("#", 1)[0] for line in m.text.splitlines())
            hit = re.search(r"\b(sd_notify|sdnotify|NOTIFY_SOCKET)\b|systemd\.daemon\.notify", code)
            if hit:
                return m.rel, hit.group(0)
            continue
        for node in ast.walk(m.tree):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").endswith("systemd.daemon")
                and any(a.name == "notify" for a in node.names)
            ):
                return m.rel, "systemd.daemon.notify"
            if isinstance(node, ast.Attribute) and dotted(node).endswith("systemd.daemon.notify"):
                return m.rel, "systemd.daemon.notify"
            names: list[str] = []
            if isinstance(node, ast.Name):
                names = [node.id]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [part for a in node.names for part in a.name.split(".")]
                names += (node.module or "").split(".") if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name in NOTIFY_WORDS:
                    return m.rel, name
        if any("NOTIFY_SOCKET" in c for c in m.constants()):
            return m.rel, "NOTIFY_SOCKET"
    return None


def guess_service_type(modules: list[Module]) -> Guess:
    key = "[service] type"
    found = notify_marker(modules)
    if found:
        rel, what = found
        return Guess(key, '"notify"', f"its code speaks sd_notify ({what} in {rel})")
    return Guess(key, '"exec"', "no sd_notify, NOTIFY_SOCKET, systemd.daemon.notify or sdnotify in its code")


# ---------------------------------------------------------------------- socket activation
def listen_marker(modules: list[Module]) -> tuple[str, str] | None:
    """(file, what) of the first sign that the code takes its listening socket from systemd."""
    for m in modules:
        names = set(m.constants())
        if m.tree is not None:
            names |= {n.id for n in ast.walk(m.tree) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(m.tree) if isinstance(n, ast.Attribute)}
            names |= {
                a.name.split(".")[-1]
                for n in ast.walk(m.tree)
                if isinstance(n, ast.ImportFrom)
                for a in n.names
            }
        else:
            names = set(re.findall(r"\b\w+\b", m.text))
        for word in LISTEN_WORDS:
            if word in names:
                return m.rel, word
    return None


def guess_socket(modules: list[Module]) -> Guess:
    key = "[service] socket"
    found = listen_marker(modules)
    if not found:
        return Guess(
            key, None, "nothing in its code takes a socket from systemd (LISTEN_FDS): it binds its port"
        )
    rel, what = found
    ports = env_ports(modules)
    if len(ports) != 1:
        return Guess(key, None, f"{rel} takes a socket from systemd ({what}), but on which port? (set it)")
    [(port, (name, where))] = ports.items()
    return Guess(
        key,
        json.dumps(f"127.0.0.1:{port}"),
        f"{rel} takes its listening socket from {what}; {where} reads {name} (default {port})",
    )


# ---------------------------------------------------------------------- version
def _metadata_names(tree: ast.Module) -> set[str]:
    """Local names bound to importlib.metadata's ``version`` (``from … import version as v``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("importlib.metadata", "importlib_metadata"):
            names |= {a.asname or a.name for a in node.names if a.name == "version"}
    return names


def reads_installed_version(modules: list[Module]) -> str | None:
    """The file that reads the installed distribution's version, if one does."""
    for m in modules:
        if m.tree is None:
            if re.search(r"metadata\.version\(|import version\b", m.text):
                return m.rel
            continue
        local = _metadata_names(m.tree)
        for call in calls(m):
            func = call.func
            if isinstance(func, ast.Name) and func.id in local:
                return m.rel
            if isinstance(func, ast.Attribute):
                owner = dotted(func.value)
                if func.attr == "version" and owner in (
                    "importlib.metadata",
                    "metadata",
                    "importlib_metadata",
                ):
                    return m.rel
                if func.attr == "get_distribution" and owner == "pkg_resources":
                    return m.rel
    return None


def own_version(modules: list[Module]) -> tuple[str, str] | None:
    """(file, value) of a hardcoded ``__version__ = "..."``, the shallowest file first."""
    for m in sorted(modules, key=lambda m: (m.rel.count("/"), m.rel)):
        if m.tree is None:
            continue
        for node in m.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = literal(node.value)
                if any(isinstance(t, ast.Name) and t.id == "__version__" for t in targets) and isinstance(
                    value, str
                ):
                    return m.rel, value
    return None


def guess_expect_version(modules: list[Module], base_version: str) -> Guess:
    key = "[health] expect_version"
    reader = reads_installed_version(modules)
    serving = _serving_health(modules)
    if reader and serving and not any("version" in set(m.constants()) for m, _ in serving):
        return Guess(
            key,
            "false",
            f"it reads its installed version ({reader}), but {serving[0][0].rel}, which serves "
            f'{serving[0][1]}, has no "version" to answer with',
        )
    if reader:
        return Guess(
            key,
            "true",
            f"it reports its installed version (importlib.metadata.version in {reader}), "
            "the one deployer stamps on every build",
        )
    stamp = f"{base_version}.dev<epoch>+g<sha>"
    own = own_version(modules)
    if own:
        return Guess(
            key,
            "false",
            f"it reports its own __version__ {own[1]!r}, deployer stamps dev builds {stamp}",
        )
    return Guess(
        key,
        "false",
        f"its code never reads its installed version (importlib.metadata.version), "
        f"so it cannot report the {stamp} deployer stamps",
    )


# ---------------------------------------------------------------------- health
def _serving_health(modules: list[Module]) -> list[tuple[Module, str]]:
    """The files that name a health route, with the route."""
    return [(m, p) for m in modules for p in HEALTH_PATHS if p in set(m.constants())]


def env_ports(modules: list[Module]) -> dict[int, tuple[str, str]]:
    """port -> (variable, file) of every port the code reads from the environment with a default."""
    ports: dict[int, tuple[str, str]] = {}
    for m in modules:
        for name, default in env_reads(m):
            port = port_number(default)
            if port is not None and PORT_NAME.match(name):
                ports.setdefault(port, (name, m.rel))
    return ports


def guess_http_url(modules: list[Module], flag: str | None) -> Guess:
    key = "[health] http_url"
    if flag:
        if not re.fullmatch(r"https?://[^\s\"\\]+", flag):
            raise UsageError(f"--health-url {flag!r}: not an http:// or https:// URL")
        return Guess(key, json.dumps(flag), "from --health-url")
    without = "healthy = the unit active and stable"
    serving = _serving_health(modules)
    if not serving:
        return Guess(key, None, f"no /health route in its code; {without} (--health-url URL to probe one)")
    rel, path = serving[0][0].rel, serving[0][1]
    ports = env_ports(modules)
    if len(ports) == 1:
        [(port, (name, where))] = ports.items()
        url = f"http://127.0.0.1:{port}{path}"
        return Guess(key, json.dumps(url), f"{rel} serves {path}; {where} reads {name} (default {port})")
    if not ports:
        why = f"{rel} serves {path}, but its port has no default in the code"
    else:
        seen = ", ".join(f"{n} {p}" for p, (n, _) in sorted(ports.items()))
        why = f"{rel} serves {path}, but on which port? ({seen})"
    return Guess(key, None, f"{why}; {without} (--health-url URL to probe it)")


# ---------------------------------------------------------------------- env
def env_sample(project_dir: Path, repo_root: Path) -> Path | None:
    for folder in dict.fromkeys((project_dir, repo_root)):
        for name in ENV_SAMPLES:
            if (folder / name).is_file():
                return folder / name
    return None


def sample_keys(path: Path) -> list[str]:
    keys = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        line = line.strip().removeprefix("export ").lstrip("# ").strip()
        name = line.split("=", 1)[0].strip()
        if "=" in line and ENV_NAME.match(name):
            keys.append(name)
    return keys


def guess_public(modules: list[Module], sample: Path | None, sample_label: str) -> Guess:
    key = "[env] public"
    found: dict[str, str] = {}
    for name in sample_keys(sample) if sample else []:
        found.setdefault(name, sample_label)
    for m in modules:
        for name, _ in env_reads(m):
            found.setdefault(name, m.rel)
    public = sorted(n for n in found if PUBLIC_NAME.match(n) and not SECRET_WORD.search(n))
    if not public:
        return Guess(
            key,
            "[]",
            "no PORT, HOST, *_PORT, *_HOST, *_DIR or LOG_LEVEL among the keys it reads: all values masked",
        )
    sources = ", ".join(dict.fromkeys(found[n] for n in public))
    return Guess(
        key, toml_list(public), f"not secrets by their names (from {sources}); every other value is masked"
    )


# ---------------------------------------------------------------------- smoke
def guess_smoke(project_dir: Path, module: str) -> Guess:
    key = "[smoke] command"
    for base in (project_dir, project_dir / "src"):
        main = base / module / "__main__.py"
        if main.is_file():
            try:
                text = main.read_text(encoding="utf-8", errors="replace")
            except OSError:
                break
            if re.search(r"[\"']--selfcheck[\"']", text):
                rel = main.relative_to(project_dir).as_posix()
                return Guess(
                    key, toml_list(["{python}", "-m", module, "--selfcheck"]), f"{rel} takes --selfcheck"
                )
            break
    return Guess(
        key,
        toml_list(["{python}", "-c", f"import {module}"]),
        f"no --selfcheck in {module}/__main__.py: importing the package is the smoke test",
    )


# ---------------------------------------------------------------------- all of it
def inspect_service(
    project_dir: Path, module: str, health_url: str | None = None, repo_root: Path | None = None
) -> Guesses:
    """Every guess about the service in ``project_dir`` (read-only)."""
    modules = read_modules(project_dir)
    root = repo_root or project_dir
    sample = env_sample(project_dir, root)
    label = sample.relative_to(root).as_posix() if sample and sample.is_relative_to(root) else str(sample)
    return Guesses(
        service_type=guess_service_type(modules),
        socket=guess_socket(modules),
        http_url=guess_http_url(modules, health_url),
        expect_version=guess_expect_version(modules, _base_version(project_dir)),
        public=guess_public(modules, sample, label),
        smoke=guess_smoke(project_dir, module),
        env_sample=sample,
    )


def _base_version(project_dir: Path) -> str:
    """[project] version, the base of the versions deployer stamps (a tag's for a dynamic one)."""
    try:
        project = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8")).get(
            "project", {}
        )
    except (OSError, tomllib.TOMLDecodeError):
        return "<version>"
    return str(project.get("version") or "<last tag's version>")
