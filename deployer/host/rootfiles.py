"""The root-owned files of an app: where they live, their text, and drift (pure but drift).

The unit and the launcher are rendered from templates (``packaging/``) with values the
contract has checked (``HostConfig.problems``); the sudoers drop-in is built from
``sudo_commands``, one exact line each (``sudo_lines``: what a deploy and ``check`` also
ask ``sudo -n -l`` for); authorized_keys gets the deploy key with
``restrict``; the allowed-signers file holds exactly the keys trusted to sign the app's
artifacts. With ``[service] socket``, a ``<unit>.socket`` (systemd socket activation)
and a drop-in that makes the service require it are built from fixed lines too, whatever
the service's own unit template says. ``setup.py`` writes them as root.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Dict, List, Optional

from deployer.errors import HostError, UsageError
from deployer.host.contract import (
    HANDOVER_POINTERS,
    HANDOVER_READY,
    HANDOVER_RUNNING,
    HANDOVER_SLOTS,
    SIGNATURE_NAMESPACE,
    HostConfig,
    allowed_signers_path,
    sudo_commands,
    unit_stem,
)
from deployer.host.signature import BASE_PATH_NOTE, parse_public_key, signer_line

TEMPLATES = {"unit": "unit.service.in", "launcher": "launch.sh.in"}
SYSTEMCTL = "/usr/bin/systemctl"
UNIT_DIR = Path("/etc/systemd/system")
SUDOERS_DIR = Path("/etc/sudoers.d")
LAUNCHER_DIR = Path("/usr/local/lib/deployer")


def unit_path(unit: str) -> Path:
    return UNIT_DIR / (unit if unit.endswith(".service") else unit + ".service")


def template_path(unit: str) -> Path:
    """The template unit of ``[service] handover`` (``<unit>@.service``)."""
    return UNIT_DIR / f"{unit_stem(unit)}@.service"


def unit_file(config: HostConfig) -> Path:
    """The unit file setup writes: the unit, or with handover its template."""
    return template_path(config.unit) if config.handover else unit_path(config.unit)


def socket_path(unit: str) -> Path:
    return UNIT_DIR / f"{unit_stem(unit)}.socket"


def socket_dropin_path(unit: str) -> Path:
    return UNIT_DIR / f"{unit_stem(unit)}.service.d" / "deployer-socket.conf"


def launcher_path(app: str) -> Path:
    return LAUNCHER_DIR / app / "launch"


def sudoers_path(app: str) -> Path:
    return SUDOERS_DIR / f"deployer-{re.sub(r'[^A-Za-z0-9_-]', '_', app)}"


def load_templates(directory: Path) -> Dict[str, str]:
    texts = {}
    for key, name in TEMPLATES.items():
        try:
            texts[key] = (directory / name).read_text(encoding="utf-8")
        except OSError as e:
            raise HostError(f"template {directory / name}: {e.strerror}") from None
    return texts


#: a line every unit deployer writes carries (the packaged template's first comment)
UNIT_MARKERS = ("installed root-owned by `deployer host setup`",)


def sudo_lines(config: HostConfig) -> List[str]:
    """The exact command lines the deploy user may run through sudo, as sudoers and
    ``sudo -n -l`` spell them (pure)."""
    return [f"{SYSTEMCTL} {' '.join(c)}" for c in sudo_commands(config)]


def sudo_rules(config: HostConfig) -> List[str]:
    """The deploy user's only sudo rights: one exact line per command, no wildcards (pure)."""
    return [f"{config.user} ALL=(root) NOPASSWD: {line}" for line in sudo_lines(config)]


def sudoers_text(config: HostConfig) -> str:
    """The sudoers drop-in (pure): a comment, then exactly ``sudo_rules``."""
    head = (
        f"# {sudoers_path(config.app)} - written by `deployer host setup`, checked with visudo -c.\n"
        "# Exact command lines only: the deploy user can restart and stop its service, nothing else.\n"
    )
    return head + "".join(line + "\n" for line in sudo_rules(config))


def authorize(have: str, key: str) -> str:
    """authorized_keys text with ``key`` present once, as ``restrict <key>`` (pure).

    ``restrict`` turns off port, agent and X11 forwarding, ptys and ~/.ssh/rc: a deploy
    needs commands and SFTP only. A line for the same key without it gets it."""
    parts = key.split()
    if len(parts) < 2:
        raise HostError("--authorized-key: not a public key line (type base64 [comment])")
    kind, blob = parts[0], parts[1]
    lines, found = [], False
    for line in have.splitlines():
        tokens = line.split()
        at = next((i for i in range(len(tokens) - 1) if tokens[i : i + 2] == [kind, blob]), None)
        if at is not None:
            found = True
            options = tokens[0] if at == 1 else ""
            if at == 0:
                line = "restrict " + line.strip()
            elif "restrict" not in options.split(","):
                line = "restrict," + line.strip()
        lines.append(line)
    if not found:
        lines.append("restrict " + " ".join(parts))
    return "".join(line + "\n" for line in lines)


_COMMENT = re.compile(r"^[A-Za-z0-9_.@+:= -]{1,80}\Z")


def allowed_signers_text(config: HostConfig, keys: List[str]) -> str:
    """The allowed-signers file of ``config``'s app: exactly ``keys`` (the texts of .pub
    files), each trusted as the app (the principal) for deployer's namespace only (pure).

    Setup writes the set it is given, so rotation is: trust the new key beside the old one,
    deploy with the new one, then trust the new one alone. ``UsageError`` for a key that is
    not one; a key given twice is written once."""
    if not keys:
        raise UsageError("--trust-key: give at least one public key")
    lines = [
        f"# {allowed_signers_path(config.app)} - written by `deployer host setup --trust-key`; "
        "deploys never write it.\n",
        f"# {config.app}'s artifacts are installed only when signed by one of these keys "
        f"(ssh-keygen -Y sign -n {SIGNATURE_NAMESPACE}).\n",
        f"{BASE_PATH_NOTE}{config.base_path}\n",
    ]
    seen = set()
    for i, text in enumerate(keys, 1):
        key = parse_public_key(text, f"--trust-key #{i}")
        if key.blob in seen:
            continue
        seen.add(key.blob)
        comment = f" {key.comment}" if _COMMENT.match(key.comment) else ""
        lines.append(f"# {key.fingerprint}{comment}\n")
        lines.append(signer_line(config.app, key))
    return "".join(lines)


def signer_fingerprints(text: str) -> List[str]:
    """The fingerprints of the keys an allowed-signers text trusts, in its order (pure)."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and not line.startswith("#"):
            found.append(parse_public_key(" ".join(words[2:4]), "allowed signers").fingerprint)
    return found


def socket_text(config: HostConfig) -> str:
    """``<unit>.socket`` for ``[service] socket`` (pure): systemd listens, the service accepts."""
    stem = unit_stem(config.unit)
    return (
        f"# {stem}.socket - {UNIT_MARKERS[0]}; deploys never write it.\n"
        f"# [service] socket: systemd listens here and holds the socket across every restart of\n"
        f"# {stem}.service, so connections that arrive while it restarts wait in the kernel's\n"
        "# queue instead of being refused. The service gets it as fd 3 (LISTEN_FDS=1).\n"
        "[Unit]\n"
        f"Description={config.app} listening socket (deployed by deployer)\n"
        "\n"
        "[Socket]\n"
        f"ListenStream={config.socket}\n"
        "# one service process accepts every connection\n"
        "Accept=no\n"
        "# room for the connections of a restart (the kernel caps it at net.core.somaxconn)\n"
        "Backlog=4096\n"
        "NoDelay=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )


def socket_dropin_text(config: HostConfig) -> str:
    """The service's drop-in for ``[service] socket`` (pure): never start without the socket."""
    stem = unit_stem(config.unit)
    return (
        f"# {socket_dropin_path(config.unit)} - {UNIT_MARKERS[0]}; deploys never write it.\n"
        f"# [service] socket: the service takes its listening socket from {stem}.socket (fd 3,\n"
        "# LISTEN_FDS): the socket is started first, and the service never runs without it.\n"
        "[Unit]\n"
        f"Requires={stem}.socket\n"
        f"After={stem}.socket\n"
    )


#: what the launcher of ``[service] handover`` runs in the release's python (argv: the
#: launcher, the base path, the release it resolved, the module, the modules to preload).
#: The lock on ``shared/`` is held by the instance that runs; once this one holds it, it
#: runs only if its release is still `current`: a standby (``[service] standby``) that
#: finds another release live (the running one crashed) starts over on `current` instead
HANDOVER_BOOT = f"""
import fcntl, importlib, os, runpy, socket, sys
launcher, base, release, module, preload = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def status(text):
    where = os.environ.get("NOTIFY_SOCKET", "")
    if where:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect("\\0" + where[1:] if where.startswith("@") else where)
            s.sendall(b"STATUS=" + text + b": " + os.path.basename(release).encode())
for name in preload:
    importlib.import_module(name)
lock = os.open(base + "/shared", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
status(b"{HANDOVER_READY}")
fcntl.flock(lock, fcntl.LOCK_EX)
if os.path.realpath(base + "/current") != release:
    os.execv("/bin/sh", ["/bin/sh", launcher])
status(b"{HANDOVER_RUNNING}")
sys.argv[:] = [module]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def handover_launcher_text(config: HostConfig) -> str:
    """The launcher of ``[service] handover`` (pure; fixed lines, whatever the template).
    Its argument is the instance (``%i``): the release is the one its slot link names
    when it has one, else `current`."""
    base, launcher = config.base_path, launcher_path(config.app)
    preload = "".join(f" {m}" for m in config.preload)
    slots = "|".join(HANDOVER_SLOTS)
    return (
        "#!/bin/sh\n"
        f"# {config.app} launcher ([service] handover), installed root-owned by `deployer host setup`.\n"
        "# Resolve the release ONCE (the instance's slot link, else `current`); its python\n"
        "# imports [service] preload, tells systemd (StatusText), waits for the lock on\n"
        f"# {base}/shared the running instance holds until it exits, then runs the service in\n"
        "# the same process if that release is still `current` (else starts over on `current`):\n"
        "# the two instances of a handover overlap in their imports only, never in the service.\n"
        "set -eu\n"
        f"release=$(readlink -f {base}/current)\n"
        f'case "${{1-}}" in {slots}) slot=$(readlink -f {base}/{HANDOVER_POINTERS}/$1 || true)\n'
        '  if [ -n "$slot" ] && [ -x "$slot/venv/bin/python" ]; then release=$slot; fi ;;\n'
        "esac\n"
        f'exec "$release/venv/bin/python" -c \'{HANDOVER_BOOT}\' {launcher} {base} "$release" '
        f"{config.module}{preload}\n"
    )


def render(templates: Dict[str, str], config: HostConfig) -> Dict[str, str]:
    """Unit and launcher text for this app, and with ``[service] socket`` the socket unit
    and the service's drop-in (pure). With ``[service] handover`` the unit is rendered as
    the template ``<unit>@.service`` and the launcher is ``handover_launcher_text``."""
    values = {
        "app": config.app,
        "unit": f"{unit_stem(config.unit)}@" if config.handover else config.unit,
        "user": config.user,
        "base": config.base_path,
        "module": config.module,
        # a handover's instances tell the launcher which one they are
        "launcher": f"{launcher_path(config.app)}{' %i' if config.handover else ''}",
        "env_file": config.env_path,
        "service_type": config.service_type,
    }
    try:
        rendered = {k: Template(t).substitute(values) for k, t in templates.items()}
    except (KeyError, ValueError) as e:
        raise HostError(f"template has an unknown or malformed placeholder: {e}") from None
    for line in rendered.get("unit", "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "EnvironmentFile" and value.strip().lstrip("-") != config.env_path:
            raise HostError(
                f"{TEMPLATES['unit']}: EnvironmentFile={value.strip()} is not ${{env_file}} "
                f"({config.env_path}): systemd reads it as root, so it must be the .env setup keeps "
                "in root's folder; update the template"
            )
    if config.socket is not None:
        rendered["socket"] = socket_text(config)
        rendered["socket-dropin"] = socket_dropin_text(config)
    if config.handover:
        rendered["launcher"] = handover_launcher_text(config)
    return rendered


def installed_paths(config: HostConfig) -> Dict[str, Path]:
    """Every root-owned file of the app setup renders (the socket's whether it is
    configured or not, the unit of the other form, with or without handover: one left
    from an earlier config is drift too)."""
    return {
        "unit": unit_file(config),
        "launcher": launcher_path(config.app),
        "socket": socket_path(config.unit),
        "socket-dropin": socket_dropin_path(config.unit),
        "other-unit": unit_path(config.unit) if config.handover else template_path(config.unit),
    }


def compare(
    installed: Dict[str, Optional[str]], rendered: Dict[str, str], paths: Dict[str, Path]
) -> List[str]:
    """Drift between installed texts (None: missing) and rendered ones (pure); a path
    with nothing rendered for it must not be installed."""
    problems = []
    for key, path in paths.items():
        want, have = rendered.get(key), installed.get(key)
        if want is None:
            if have is not None and any(m in have for m in UNIT_MARKERS):
                problems.append(
                    f"{path} is installed but this config does not use it (run `deployer host setup`)"
                )
        elif have is None:
            problems.append(f"{path} is not installed (run `deployer host setup`)")
        elif have != want:
            problems.append(f"{path} differs from the rendered template (run `deployer host setup`)")
    return problems


def drift(templates: Dict[str, str], config: HostConfig) -> List[str]:
    """What differs between this host's installed unit/launcher and the rendered ones."""
    paths = installed_paths(config)
    installed: Dict[str, Optional[str]] = {}
    for key, path in paths.items():
        try:
            installed[key] = path.read_text(encoding="utf-8")
        except OSError:
            installed[key] = None
    return compare(installed, render(templates, config), paths)
