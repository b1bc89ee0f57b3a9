"""Python handle on ``staging-host.sh``: boot, drive and remove staging guests.

A guest is a real Debian bookworm host (systemd as PID 1, OpenSSH, sudo, python3)
booted with ``systemd-nspawn`` in a network namespace of its own; see README.md.
Standard library only; every call runs an argv list with a timeout.

    host = StagingHost.up(index=1, opt_size="64M")
    try:
        subprocess.run(host.ssh_argv("uname", "-a"), check=True, timeout=30)
        host.exec(["install", "-d", "-o", "tgstream", "/opt/tg_video_streamer/releases"])
    finally:
        host.down()
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("staging-host.sh")

#: up may have to build the rootfs first (about 75 s from the Debian mirror)
UP_TIMEOUT = 900
DOWN_TIMEOUT = 90
CMD_TIMEOUT = 60

#: the guest of ``make demo`` and of trying things by hand: the default index of
#: staging-host.sh and mk/staging.mk. The test suite never boots it.
DEMO_INDEX = 100

#: staging-host.sh's exit status when ``up`` finds the guest already up (and leaves it be)
ALREADY_UP = 3

#: in a guest's run dir: who booted it (pid, start time, pid namespace), while it is theirs
OWNER_FILE = "owner"

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")

_live: dict[int, StagingHost] = {}


class StagingError(RuntimeError):
    """The harness script failed; the message carries its stderr tail."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class GuestAlreadyUp(StagingError):
    """``up`` found the guest running: someone else booted it, so it was left running."""


def script_env(index: int, opt_size: str | None = None) -> dict[str, str]:
    """The environment the script runs with for guest ``index``."""
    env = dict(os.environ)
    env["STAGING_INDEX"] = str(index)
    env.pop("STAGING_OPT_SIZE", None)
    if opt_size:
        env["STAGING_OPT_SIZE"] = opt_size
    path = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(path + [d for d in _SBIN if d not in path])
    return env


def run_script(
    index: int,
    *args: str,
    opt_size: str | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float = CMD_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``staging-host.sh ARGS`` for guest ``index``; raise StagingError if it fails."""
    argv = [str(SCRIPT), *args]
    proc = subprocess.run(
        argv,
        env=script_env(index, opt_size),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise StagingError(
            f"{' '.join(args)} (guest {index}) exited {proc.returncode}:\n{tail}", proc.returncode
        )
    return proc


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as printed by ``up`` and ``env``."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


class StagingHost:
    """One running guest. Faults and root commands go through the script."""

    def __init__(self, env: dict[str, str], opt_size: str | None = None) -> None:
        self.env = env
        self.host = env["STAGING_HOST"]
        self.port = int(env["STAGING_PORT"])
        self.user = env["STAGING_USER"]
        self.key_path = env["STAGING_KEY"]
        self.known_hosts_path = env["STAGING_KNOWN_HOSTS"]
        self.index = int(env["STAGING_INDEX"])
        self.machine = env["STAGING_MACHINE"]
        self.veth = env["STAGING_VETH"]
        self.opt_size = opt_size
        self.is_up = True

    @property
    def run_dir(self) -> Path:
        """The guest's state on the machine (keys, overlay, env); gone after ``down``."""
        return Path(self.key_path).parent

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down"
        return f"<StagingHost {self.machine} {self.user}@{self.host}:{self.port} {state}>"

    @classmethod
    def up(cls, index: int = 0, opt_size: str | None = None, timeout: float = UP_TIMEOUT) -> StagingHost:
        """Boot guest ``index`` (``opt_size``: a tmpfs of that size at /opt/tg_video_streamer).

        Raises GuestAlreadyUp, and leaves that guest running, if it is up already.
        """
        try:
            proc = run_script(index, "up", opt_size=opt_size, timeout=timeout)
            host = cls(parse_env(proc.stdout), opt_size)
            host.check_route()
            (host.run_dir / OWNER_FILE).write_text(_process_id(os.getpid()) or "")
        except StagingError as exc:
            if exc.returncode == ALREADY_UP:  # not ours to take down
                raise GuestAlreadyUp(
                    f"guest {index} is already up; it was left running "
                    f"(`STAGING_INDEX={index} {SCRIPT} down` stops it)",
                    exc.returncode,
                ) from None
            run_script(index, "down", check=False, timeout=DOWN_TIMEOUT)
            raise
        except BaseException:
            # a half-booted guest (or Ctrl-C during boot) must not outlive us
            run_script(index, "down", check=False, timeout=DOWN_TIMEOUT)
            raise
        _live[index] = host
        return host

    def keep_up(self) -> None:
        """Leave the guest running when this interpreter exits (``make demo``); from now
        on it belongs to no process, so :func:`down_if_abandoned` leaves it alone too."""
        if _live.get(self.index) is self:
            del _live[self.index]
        (self.run_dir / OWNER_FILE).unlink(missing_ok=True)

    def down(self) -> None:
        """Stop the guest and remove all it left on the machine; safe to call twice."""
        run_script(self.index, "down", timeout=DOWN_TIMEOUT)
        self.is_up = False
        if _live.get(self.index) is self:
            del _live[self.index]

    def exec(
        self,
        argv: Sequence[str],
        check: bool = True,
        input: str | None = None,
        timeout: float = CMD_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as root inside the guest (nsenter, not ssh)."""
        return self._script("exec", *argv, check=check, input=input, timeout=timeout)

    def push(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` inside the guest, as root (base64 through exec)."""
        import base64

        self.exec(
            ["sh", "-c", f'base64 -d > "$1" && chmod {mode:o} "$1"', "push", path],
            input=base64.b64encode(data).decode(),
        )

    def cut(self, kind: str) -> None:
        """``sessions``, ``reset``, ``link-down``, ``link-up`` or ``heal``."""
        if kind not in ("sessions", "reset", "link-down", "link-up", "heal"):
            raise ValueError(f"unknown cut: {kind!r}")
        self._script("cut", kind)

    def heal(self) -> None:
        """Undo every cut: reset rules removed, link up."""
        self._script("cut", "heal")

    def throttle(self, rate: str | None) -> None:
        """Limit machine -> guest to ``rate`` (tc syntax, e.g. ``8mbit``); None lifts it."""
        self._script("throttle", rate or "off")

    def fill_disk(self, free_mb: int | None) -> None:
        """Leave ``free_mb`` MiB free on the /opt tmpfs; None removes the filler."""
        self._script("fill-disk", "clear" if free_mb is None else str(int(free_mb)))

    def ssh_argv(self, *cmd: str) -> list[str]:
        """An OpenSSH command line that logs in as the deploy user and runs ``cmd``."""
        return [
            "ssh",
            "-i", self.key_path,
            "-p", str(self.port),
            "-o", f"UserKnownHostsFile={self.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=5",
            "-o", "ServerAliveInterval=1",
            "-o", "LogLevel=ERROR",
            f"{self.user}@{self.host}",
            *cmd,
        ]  # fmt: skip

    def check_route(self) -> None:
        """Raise unless the kernel sends traffic for the guest over this guest's own veth."""
        out = subprocess.run(
            ["ip", "-o", "-4", "route", "get", self.host],
            env=script_env(self.index),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        words = out.split()
        dev = words[words.index("dev") + 1] if "dev" in words[:-1] else None
        if dev != self.veth or "via" in words:
            raise StagingError(f"route to {self.host} is not over {self.veth}: {out.strip()!r}")

    def _script(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return run_script(self.index, *args, opt_size=self.opt_size, **kw)


def up(index: int = 0, opt_size: str | None = None) -> StagingHost:
    """Shorthand for :meth:`StagingHost.up`."""
    return StagingHost.up(index, opt_size)


def _process_id(pid: int) -> str | None:
    """``pid start-time pid-namespace`` of a live process, None if there is none: the
    start time tells a reused pid apart, the namespace says where the pid means anything."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return f"{pid} {fields[19]} {pidns}"


def down_if_abandoned(index: int) -> bool:
    """Take guest ``index`` down if the process that booted it through this harness has
    died without doing so (a test session killed before its teardown); True if it did.

    A guest whose owner still runs, one booted by hand or kept up (``make demo``), one
    booted from another pid namespace, and one still booting are all left alone.
    """
    proc = run_script(index, "env", check=False)
    if proc.returncode != 0:
        return False  # down (or not booted far enough to be anyone's leftover)
    env = parse_env(proc.stdout)
    try:
        owner = (Path(env["STAGING_KEY"]).parent / OWNER_FILE).read_text().split()
    except (KeyError, OSError):
        return False
    if len(owner) != 3 or not owner[0].isdigit():
        return False
    if owner[2] != os.readlink("/proc/self/ns/pid") or _process_id(int(owner[0])) == " ".join(owner):
        return False
    run_script(index, "down", timeout=DOWN_TIMEOUT)
    return True


@atexit.register
def _down_leftovers() -> None:
    """Last resort: never leave a guest of ours running when the interpreter exits."""
    for host in list(_live.values()):
        with contextlib.suppress(OSError, subprocess.SubprocessError, StagingError):
            host.down()
