"""``setup``: make a host ready for deploys, once, as root. Idempotent.

Creates the deploy user and the base layout, adds the user to ``systemd-journal``
(journal access without sudo), writes the sudoers drop-in (built from ``SUDO_VERBS``,
one exact command line per verb, checked with ``visudo -c`` before it is put in place),
installs the root-owned launcher and unit rendered from the templates in
``packaging/``, reloads systemd and enables the unit. Reports what it changed.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path
from string import Template
from typing import Dict, List, Optional

from deployer.errors import HostError
from deployer.host.contract import SUDO_VERBS, HostConfig
from deployer.host.events import Events
from deployer.host.layout import Layout
from deployer.host.proc import run

TEMPLATES = {"unit": "unit.service.in", "launcher": "launch.sh.in"}
SYSTEMCTL = "/usr/bin/systemctl"
UNIT_DIR = Path("/etc/systemd/system")
SUDOERS_DIR = Path("/etc/sudoers.d")
LAUNCHER_DIR = Path("/usr/local/lib/deployer")


def unit_path(unit: str) -> Path:
    return UNIT_DIR / (unit if unit.endswith(".service") else unit + ".service")


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


def sudo_rules(user: str, unit: str) -> List[str]:
    """The deploy user's only sudo rights: one exact line per verb, no wildcards (pure)."""
    return [f"{user} ALL=(root) NOPASSWD: {SYSTEMCTL} {verb} {unit}" for verb in SUDO_VERBS]


def sudoers_text(config: HostConfig) -> str:
    """The sudoers drop-in (pure): a comment, then exactly ``sudo_rules``."""
    head = (
        f"# {sudoers_path(config.app)} - written by `deployer host setup`, checked with visudo -c.\n"
        "# Exact command lines only: the deploy user can restart and stop its service, nothing else.\n"
    )
    return head + "".join(line + "\n" for line in sudo_rules(config.user, config.unit))


def render(templates: Dict[str, str], config: HostConfig) -> Dict[str, str]:
    """Unit and launcher text for this app (pure)."""
    values = {
        "app": config.app,
        "unit": config.unit,
        "user": config.user,
        "base": config.base_path,
        "module": config.module,
        "launcher": str(launcher_path(config.app)),
    }
    try:
        return {k: Template(t).substitute(values) for k, t in templates.items()}
    except (KeyError, ValueError) as e:
        raise HostError(f"template has an unknown or malformed placeholder: {e}") from None


def installed_paths(config: HostConfig) -> Dict[str, Path]:
    return {"unit": unit_path(config.unit), "launcher": launcher_path(config.app)}


def compare(
    installed: Dict[str, Optional[str]], rendered: Dict[str, str], paths: Dict[str, Path]
) -> List[str]:
    """Drift between installed texts (None: missing) and rendered ones (pure)."""
    problems = []
    for key, path in paths.items():
        if installed.get(key) is None:
            problems.append(f"{path} is not installed (run `deployer host setup`)")
        elif installed[key] != rendered[key]:
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


class Setup:
    def __init__(
        self,
        config: HostConfig,
        templates: Dict[str, str],
        events: Events,
        authorized_key: Optional[str] = None,
    ):
        self.config, self.events = config, events
        self.rendered = render(templates, config)
        self.authorized_key = authorized_key
        self.changed: List[str] = []

    def run(self) -> List[str]:
        if os.geteuid() != 0:
            raise HostError("host setup needs root (run it with sudo as an admin)")
        user = self.config.user
        self._step("user", self._user)
        pw = pwd.getpwnam(user)
        self._step("layout", lambda: self._layout(pw.pw_uid, pw.pw_gid))
        self._step("sudoers", self._sudoers)
        self._step(
            "launcher",
            lambda: self._write(launcher_path(self.config.app), self.rendered["launcher"], 0o755),
        )
        unit = unit_path(self.config.unit)
        self._step("unit", lambda: self._write(unit, self.rendered["unit"], 0o644))
        self._step("enable", self._enable)
        return self.changed

    # ------------------------------------------------------------------ steps
    def _step(self, name: str, fn) -> None:
        with self.events.step(f"setup {name}") as r:
            before = len(self.changed)
            fn()
            r["detail"] = "; ".join(self.changed[before:]) or "unchanged"

    def _user(self) -> None:
        user = self.config.user
        try:
            pwd.getpwnam(user)
        except KeyError:
            _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user])
            _run(["usermod", "-p", "*", user])  # no password, but not locked: key login works
            self.changed.append(f"created user {user}")
        try:
            members = grp.getgrnam("systemd-journal").gr_mem
        except KeyError:
            members = None
        if members is not None and user not in members:
            _run(["usermod", "-aG", "systemd-journal", user])
            self.changed.append(f"added {user} to systemd-journal")
        if self.authorized_key:
            pw = pwd.getpwnam(user)
            ssh = Path(pw.pw_dir) / ".ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            os.chown(ssh, pw.pw_uid, pw.pw_gid)
            keys = ssh / "authorized_keys"
            have = keys.read_text(encoding="utf-8") if keys.exists() else ""
            if self.authorized_key.strip() not in have:
                keys.write_text(have + self.authorized_key.strip() + "\n", encoding="utf-8")
                os.chown(keys, pw.pw_uid, pw.pw_gid)
                os.chmod(keys, 0o600)
                self.changed.append("authorized the deploy key")

    def _layout(self, uid: int, gid: int) -> None:
        layout = Layout(self.config.base_path)
        dirs = [layout.base, layout.releases, layout.shared, layout.cache, layout.log, layout.incoming] + [
            layout.shared / d for d in self.config.shared_dirs
        ]
        created, chowned = [], []
        for d in dirs:
            if not d.is_dir():
                d.mkdir(parents=True, mode=0o750)
                created.append(d)
            st = d.stat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(d, uid, gid)
                chowned.append(d)
        os.chmod(layout.shared, 0o750)
        if set(chowned) - set(created):
            self.changed.append(f"gave {len(set(chowned) - set(created))} dirs back to {self.config.user}")
        if created:
            self.changed.append(
                f"created {layout.base} and {len(created) - 1} dirs below it, owned by {self.config.user}"
                if layout.base in created
                else f"created {', '.join(str(d) for d in created)}"
            )

    def _sudoers(self) -> None:
        path = sudoers_path(self.config.app)
        text = sudoers_text(self.config)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        tmp = path.with_name(f".{path.name}.tmp")  # dotfiles in sudoers.d are ignored
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o440)
        proc = run(["visudo", "-c", "-q", "-f", str(tmp)])
        if proc.returncode != 0:
            tmp.unlink()
            raise HostError(f"visudo rejected the sudoers drop-in: {proc.stderr.strip() or proc.stdout}")
        os.replace(tmp, path)
        self.changed.append(f"wrote {path} (visudo -c ok)")

    def _write(self, path: Path, text: str, mode: int) -> None:
        if (
            path.exists()
            and path.read_text(encoding="utf-8") == text
            and (path.stat().st_mode & 0o7777) == mode
            and path.stat().st_uid == 0
        ):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chown(tmp, 0, 0)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        self.changed.append(f"wrote {path}")

    def _enable(self) -> None:
        _run([SYSTEMCTL, "daemon-reload"])
        unit = self.config.unit
        proc = run([SYSTEMCTL, "is-enabled", unit])
        if proc.stdout.strip() != "enabled":
            _run([SYSTEMCTL, "enable", unit])
            self.changed.append(f"enabled {unit}")


def _run(argv: List[str]) -> None:
    run(argv, timeout=120, check=True)
