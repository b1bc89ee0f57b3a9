"""``setup``: make a host ready for deploys, once, as root. Idempotent.

Creates the deploy user and the base layout, gives it its own journal only (see
``_journal_access``), writes the sudoers drop-in (``rootfiles.sudo_lines``, one exact
command line each, checked with ``visudo -c`` before it is put in place), installs the
root-owned launcher and unit rendered from the templates in ``packaging/`` (with
``[service] socket`` also ``<unit>.socket`` and the drop-in that makes the service
require it; without, an earlier one is taken away; with ``[service] handover`` the unit
is a template of two instances, and a unit of the other form an earlier setup installed
is stopped and removed, its running service started again in the new form), reloads
systemd and enables the unit (and the socket). With ``--trust-key`` it writes the keys trusted
to sign the app's artifacts (exactly those given; ``--allow-unsigned`` removes them);
without either, they stay as they are. Reports what it changed.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Dict, List, Optional

from deployer.errors import HostError, UsageError
from deployer.host import safefs
from deployer.host.contract import HostConfig, allowed_signers_path, service_units
from deployer.host.events import Events
from deployer.host.layout import Layout
from deployer.host.proc import run
from deployer.host.rootfiles import (
    SYSTEMCTL,
    UNIT_MARKERS,
    allowed_signers_text,
    authorize,
    installed_paths,
    launcher_path,
    render,
    signer_fingerprints,
    socket_dropin_path,
    socket_path,
    sudoers_path,
    sudoers_text,
    template_path,
    unit_file,
    unit_path,
    unit_stem,
)

PERSISTENT_JOURNAL = "/var/log/journal"


def uid_min() -> int:
    """The first uid of regular users (``UID_MIN`` of /etc/login.defs, else 1000)."""
    try:
        with open("/etc/login.defs", encoding="utf-8") as f:
            for line in f:
                words = line.split()
                if len(words) == 2 and words[0] == "UID_MIN" and words[1].isdigit():
                    return int(words[1])
    except OSError:
        pass
    return 1000


class Setup:
    def __init__(
        self,
        config: HostConfig,
        templates: Dict[str, str],
        events: Events,
        authorized_key: Optional[str] = None,
        trust_keys: Optional[List[str]] = None,
        allow_unsigned: bool = False,
    ):
        self.config, self.events = config, events
        self.rendered = render(templates, config)
        self.authorized_key = authorized_key
        if trust_keys and allow_unsigned:
            raise UsageError("--trust-key and --allow-unsigned contradict each other: give one")
        #: the allowed-signers text to write (None: leave the file as it is), checked up front
        self.trusted = allowed_signers_text(config, trust_keys) if trust_keys else None
        self.allow_unsigned = allow_unsigned
        self.changed: List[str] = []
        self.socket_moved = False  # [service] socket now names another address than installed

    def run(self) -> List[str]:
        if os.geteuid() != 0:
            raise HostError("host setup needs root (run it with sudo as an admin)")
        user = self.config.user
        self._refuse_what_is_not_ours()  # before anything is written
        self._step("user", self._user)
        pw = pwd.getpwnam(user)
        self._step("layout", lambda: self._layout(pw.pw_uid, pw.pw_gid))
        self._step("env", lambda: self._env(pw.pw_uid, pw.pw_gid))
        self._step("trust", self._trust)
        self._step("sudoers", self._sudoers)
        self._step(
            "launcher",
            lambda: self._write(launcher_path(self.config.app), self.rendered["launcher"], 0o755),
        )
        unit = unit_file(self.config)
        self._step("unit", lambda: self._write(unit, self.rendered["unit"], 0o644))
        self._step("socket", self._socket)
        self._step("enable", self._enable)
        return self.changed

    # ------------------------------------------------------------------ steps
    def _step(self, name: str, fn) -> None:
        with self.events.step(f"setup {name}") as r:
            before = len(self.changed)
            fn()
            r["detail"] = "; ".join(self.changed[before:]) or "unchanged"

    def _refuse_what_is_not_ours(self) -> None:
        """A system account as the deploy user, or a unit name the host already uses
        for something else (``app.unit = "ssh"`` would replace sshd's)."""
        user = self.config.user
        try:
            pw: Optional[pwd.struct_passwd] = pwd.getpwnam(user)
        except KeyError:
            pw = None
        if pw is not None and pw.pw_uid < uid_min():
            raise HostError(
                f"app.user {user!r} is a system account (uid {pw.pw_uid}): deployer will not deploy or "
                "run a service as it; name a user of its own (setup creates it)"
            )
        unit = self.config.unit
        for path in (unit_path(unit), template_path(unit), socket_path(unit)):
            elsewhere = run([SYSTEMCTL, "show", "-p", "FragmentPath", "--value", path.name]).stdout.strip()
            if elsewhere and elsewhere != str(path):
                raise HostError(
                    f"app.unit {self.config.unit!r}: {path.name} is a unit of this host already "
                    f"({elsewhere}); pick another name"
                )
            if not _ours(path):
                raise HostError(
                    f"app.unit {self.config.unit!r}: {path} was not written by deployer; pick another name"
                )

    def _user(self) -> None:
        user = self.config.user
        try:
            pwd.getpwnam(user)
            exists = True
        except KeyError:
            exists = False
        if not exists:
            _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user])
            _run(["usermod", "-p", "*", user])  # no password, but not locked: key login works
            self.changed.append(f"created user {user}")
        self._journal_access(user)
        if self.authorized_key:
            self._authorize(pwd.getpwnam(user))

    def _journal_access(self, user: str) -> None:
        """The deploy user reads the journal of what runs as it, not the whole system's.

        journald keeps a regular user's lines (the service's output included) in a file of
        that user's when the journal is persistent (/var/log/journal): then membership of
        ``systemd-journal``, which reads every unit's lines, is not needed and is taken
        away. A volatile journal has one file for all, so there the group is the only way.
        """
        try:
            members = grp.getgrnam("systemd-journal").gr_mem
        except KeyError:
            return
        if Path(PERSISTENT_JOURNAL).is_dir():
            if user in members:
                _run(["gpasswd", "-d", user, "systemd-journal"])
                self.changed.append(f"took {user} out of systemd-journal (it reads its own journal)")
        elif user not in members:
            _run(["usermod", "-aG", "systemd-journal", user])
            self.changed.append(
                f"added {user} to systemd-journal (the journal is volatile: one file for all)"
            )

    def _authorize(self, pw) -> None:
        """Add the deploy key to ~/.ssh/authorized_keys with ``restrict``, as root inside
        the deploy user's home: through descriptors, never through a planted link."""
        home = Path(pw.pw_dir)
        home_fd, _ = safefs.open_root_owned_path(home)
        try:
            ssh_fd, _ = safefs.open_dir_at(home_fd, ".ssh", home / ".ssh", create=0o700)
        finally:
            os.close(home_fd)
        try:
            safefs.give(ssh_fd, pw.pw_uid, pw.pw_gid, 0o700)
            keys = home / ".ssh" / "authorized_keys"
            have = safefs.read_private(ssh_fd, "authorized_keys", keys, pw.pw_uid) or ""
            want = authorize(have, self.authorized_key or "")
            if want != have:
                safefs.write_private(ssh_fd, "authorized_keys", want, pw.pw_uid, pw.pw_gid, 0o600)
                self.changed.append("authorized the deploy key (restrict: no forwarding, no pty)")
        finally:
            os.close(ssh_fd)

    def _layout(self, uid: int, gid: int) -> None:
        """The base path and its folders, the deploy user's: made and handed over as root
        through descriptors (a folder the deploy user swapped for a link is refused)."""
        layout = Layout(self.config.base_path)
        rel = ["releases", "shared", "secrets", "cache", "log", "incoming"] + [
            f"shared/{d}" for d in self.config.shared_dirs
        ]
        modes = {"shared": 0o750, "secrets": 0o700}
        base_fd, base_made = safefs.open_root_owned_path(layout.base, create=0o750)
        created, chowned = ([layout.base] if base_made else []), []
        try:
            if safefs.give(base_fd, uid, gid):
                chowned.append(layout.base)
            for r in rel:
                fd, made = safefs.ensure_tree(base_fd, layout.base, r, 0o750)
                try:
                    created += made
                    if safefs.give(fd, uid, gid, modes.get(r)):
                        chowned.append(layout.base / r)
                finally:
                    os.close(fd)
        finally:
            os.close(base_fd)
        if set(chowned) - set(created):
            self.changed.append(f"gave {len(set(chowned) - set(created))} dirs back to {self.config.user}")
        if created:
            self.changed.append(
                f"created {layout.base} and {len(created) - 1} dirs below it, owned by {self.config.user}"
                if layout.base in created
                else f"created {', '.join(str(d) for d in created)}"
            )

    def _env(self, uid: int, gid: int) -> None:
        """The .env's place: ``/etc/deployer/<app>/`` root's (0755), ``env`` in it the
        deploy user's (0600). It may rewrite the file, never replace it with a link."""
        path = Path(self.config.env_path)
        dir_fd, made = safefs.open_root_owned_path(path.parent, create=0o755)
        try:
            if safefs.give(dir_fd, 0, 0, 0o755) or made:
                self.changed.append(f"made {path.parent} (root's)")
            legacy = Layout(self.config.base_path).shared / ".env"
            try:
                fd = os.open(path.name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                created = False
            except FileNotFoundError:
                fd = os.open(
                    path.name,
                    os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dir_fd,
                )
                created = True
            with os.fdopen(fd, "r+", encoding="utf-8") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise HostError(f"{path} is not a regular file; remove it and run setup again")
                safefs.give(f.fileno(), uid, gid, 0o600)
                if created:
                    self.changed.append(f"made {path} ({self.config.user}'s, 0600)")
                    old = self._legacy_env(legacy, uid)
                    if old is not None:
                        f.write(old)
                        f.flush()
                        os.fsync(f.fileno())
                        self._remove_legacy_env(legacy)
                        self.changed.append(f"moved the .env from {legacy} (the service could write there)")
        finally:
            os.close(dir_fd)

    def _trust(self) -> None:
        """The keys trusted to sign the app's artifacts, root's (0644) in root's folder:
        exactly those given (``--trust-key``), none (``--allow-unsigned``), or as they were."""
        if self.trusted is None and not self.allow_unsigned:
            return
        path = Path(allowed_signers_path(self.config.app))
        dir_fd, made = safefs.open_root_owned_path(path.parent, create=0o755)
        try:
            if safefs.give(dir_fd, 0, 0, 0o755) or made:
                self.changed.append(f"made {path.parent} (root's)")
            have = safefs.read_private(dir_fd, path.name, path, 0)
            if self.allow_unsigned:
                if have is not None:
                    os.unlink(path.name, dir_fd=dir_fd)
                    self.changed.append(f"removed {path}: artifacts need no signature any more")
                return
            assert self.trusted is not None
            st = None if have is None else os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
            if have != self.trusted or st is None or stat.S_IMODE(st.st_mode) != 0o644:
                safefs.write_private(dir_fd, path.name, self.trusted, 0, 0, 0o644)
                keys = signer_fingerprints(self.trusted)
                self.changed.append(f"wrote {path}: {len(keys)} key(s) may sign artifacts: {', '.join(keys)}")
        finally:
            os.close(dir_fd)

    def _legacy_env(self, legacy: Path, uid: int) -> Optional[str]:
        """The .env an earlier layout kept in shared/, read without following links."""
        fd = self._open_legacy_dir(legacy)
        if fd is None:
            return None
        try:
            return safefs.read_private(fd, legacy.name, legacy, uid)
        finally:
            os.close(fd)

    def _remove_legacy_env(self, legacy: Path) -> None:
        """Once moved, no copy of the secrets is left where the service can write."""
        fd = self._open_legacy_dir(legacy)
        if fd is not None:
            try:
                os.unlink(legacy.name, dir_fd=fd)  # unlink never follows a link
            finally:
                os.close(fd)

    @staticmethod
    def _open_legacy_dir(legacy: Path) -> Optional[int]:
        try:
            base_fd, _ = safefs.open_root_owned_path(legacy.parent.parent)
        except (HostError, FileNotFoundError):
            return None
        try:
            fd, _ = safefs.open_dir_at(base_fd, legacy.parent.name, legacy.parent)
        except FileNotFoundError:
            return None
        finally:
            os.close(base_fd)
        return fd

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

    def _socket(self) -> None:
        """``[service] socket``: the socket unit and the service's drop-in that requires it.

        Without it, an earlier one is taken away: the drop-in first (systemd reloaded), so
        stopping the socket never stops the service, which keeps serving on its copy of
        the socket until its next restart binds the port itself."""
        sock, dropin = socket_path(self.config.unit), socket_dropin_path(self.config.unit)
        if self.config.socket is not None:
            before = sock.read_text(encoding="utf-8") if sock.exists() else None
            self._write(sock, self.rendered["socket"], 0o644)
            self._write(dropin, self.rendered["socket-dropin"], 0o644)
            self.socket_moved = before is not None and before != self.rendered["socket"]
            return
        if not sock.exists() and not dropin.exists():
            return
        if dropin.exists():
            dropin.unlink()
            with contextlib.suppress(OSError):
                dropin.parent.rmdir()  # only when nothing else is in it
            _run([SYSTEMCTL, "daemon-reload"])
        if sock.exists():
            _run([SYSTEMCTL, "disable", "--now", sock.name])
            sock.unlink()
        self.changed.append(f"removed {sock.name} and its drop-in ([service] socket is not set)")

    def _other_form(self) -> bool:
        """The unit of the other form (with or without ``[service] handover``) that an
        earlier setup installed: stopped, disabled and removed. True when it was running
        (``_enable`` then starts this form's unit in its place)."""
        other = installed_paths(self.config)["other-unit"]
        if not other.exists():
            return False
        other_form = self.config.replace(handover=not self.config.handover, socket=None, standby=False)
        units = service_units(other_form)
        running = [
            u for u in units if run([SYSTEMCTL, "is-active", u]).stdout.strip() in ("active", "activating")
        ]
        _run([SYSTEMCTL, "disable", "--now", *units])
        other.unlink()
        self.changed.append(
            f"removed {other.name} ([service] handover is {'set' if self.config.handover else 'not set'})"
        )
        return bool(running)

    def _enable(self) -> None:
        was_running = self._other_form()
        _run([SYSTEMCTL, "daemon-reload"])
        # with handover the first instance starts at boot (it runs `current`, whichever ran)
        unit = service_units(self.config)[0]
        proc = run([SYSTEMCTL, "is-enabled", unit])
        if proc.stdout.strip() != "enabled":
            _run([SYSTEMCTL, "enable", unit])
            self.changed.append(f"enabled {unit}")
        if was_running:
            _run([SYSTEMCTL, "--no-block", "start", unit])
            self.changed.append(f"started {unit} in place of the unit removed")
        if self.config.socket is None:
            return
        sock = socket_path(unit).name
        if run([SYSTEMCTL, "is-enabled", sock]).stdout.strip() != "enabled":
            _run([SYSTEMCTL, "enable", sock])
            self.changed.append(f"enabled {sock}")
        # Not started here: the service's next start (a deploy's restart) starts it first,
        # once a service that binds the port itself has let it go.
        if self.socket_moved and run([SYSTEMCTL, "is-active", sock]).stdout.strip() == "active":
            # a listening socket keeps its address until restarted; the service, which
            # requires it, is restarted with it and takes the new one
            _run([SYSTEMCTL, "restart", sock])
            self.changed.append(f"restarted {sock} and {unit_stem(unit)}.service on {self.config.socket}")


def _run(argv: List[str]) -> None:
    run(argv, timeout=120, check=True)


def _ours(path: Path) -> bool:
    """A unit file that is not there, or one deployer wrote."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    return any(m in text for m in UNIT_MARKERS)
