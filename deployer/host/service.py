"""The service manager behind a small interface: systemd on hosts, anything in tests.

Only what a deploy needs: restart, stop, the unit's state (active, restart counter,
invocation id) and this invocation's journal lines. The deploy user runs exactly the
``sudo -n systemctl <verb> <unit>`` lines of ``contract.sudo_commands`` (the sudoers
drop-in allows those and nothing else) and reads its own journal.

``Systemd`` drives one unit; ``Handover`` (``[service] handover``) the two instances of
a template unit, so that a restart starts the new release before the old one stops.
"""

from __future__ import annotations

import contextlib
import time
from typing import Dict, List, Optional, Tuple

from deployer.errors import HealthError, HostError
from deployer.host.contract import (
    HANDOVER_READY,
    HANDOVER_SLOTS,
    HostConfig,
    handover_status,
    service_units,
    socket_unit,
)
from deployer.host.layout import Layout
from deployer.host.proc import run
from deployer.host.rootfiles import SYSTEMCTL, sudo_lines
from deployer.host.state import replace_symlink

SHOW_PROPS = (
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "InvocationID",
    "MainPID",
    "Type",
    "StatusText",
)
#: the states of a unit that runs or is about to
RUNNING = ("active", "activating", "reloading")


class Service:
    """Interface; ``Systemd`` is the real one."""

    name: str
    #: the exact ``sudo -n -l`` lines a deploy needs (``rootfiles.sudo_lines``)
    rights: Tuple[str, ...] = ()

    def restart(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def show(self) -> Dict[str, str]:
        """At least ActiveState, NRestarts and InvocationID."""
        raise NotImplementedError

    def journal(self, invocation_id: str) -> List[str]:
        """Every line this invocation wrote (and systemd wrote about it)."""
        raise NotImplementedError

    def problems(self) -> List[str]:
        """Why a deploy could not drive this service (missing rights, no unit); [] if none."""
        return []

    def needed_rights(self) -> List[str]:
        """The exact command lines ``sudo -n -l`` must list for the deploy user."""
        return list(self.rights)

    def recent(self, lines: int) -> List[str]:
        """The last ``lines`` of the service's journal."""
        raise NotImplementedError

    def stand_by(self, rid: str) -> bool:
        """Start release ``rid`` beside the running one, to take over in an instant
        (``[service] standby``); False when this service cannot."""
        return False

    def standby(self) -> Optional[str]:
        """The release that stands by, or None."""
        return None


class Systemd(Service):
    """One unit; with ``socket`` (``[service] socket``), stopping it stops its socket too."""

    def __init__(
        self,
        unit: str,
        socket: Optional[str] = None,
        rights: Tuple[str, ...] = (),
        systemctl: str = SYSTEMCTL,
        journalctl: str = "/usr/bin/journalctl",
        sudo: str = "/usr/bin/sudo",
    ):
        self.name = unit if unit.endswith(".service") else unit + ".service"
        self.unit, self.socket, self.rights = unit, socket, rights
        self.systemctl, self.journalctl, self.sudo = systemctl, journalctl, sudo

    def privileged(self, verb: str, unit: Optional[str] = None, timeout: float = 120) -> int:
        """``sudo -n systemctl <verb> <unit>``, its exit code; HostError when sudo refuses."""
        unit = unit or self.unit
        # `sudo -n`: fail at once instead of prompting; argv matches the sudoers line exactly
        argv = [self.sudo, "-n", self.systemctl, *verb.split(), unit]
        proc = run(argv, timeout=timeout)
        # a failed start is reported by the health check with its journal; only a
        # refused sudo is an error of its own
        refused = "password is required" in proc.stderr or "not allowed" in proc.stderr
        if proc.returncode != 0 and refused:
            raise HostError(
                f"sudo refused `systemctl {verb} {unit}`: run "
                "`deployer host setup` to install the sudoers drop-in"
            )
        return proc.returncode

    def restart(self) -> None:
        if self.show().get("Result") == "start-limit-hit":
            self.privileged("reset-failed")  # else systemd refuses the start outright
        if self.privileged("restart") != 0:
            props = self.show()
            if props.get("Result") == "timeout" and props.get("Type") == "notify":
                raise HealthError(
                    f"{self.name} never said it was ready: it is Type=notify, so systemd waits for "
                    "READY=1 (sd_notify) until TimeoutStartSec; if the service does not send it, set "
                    '[service] type = "exec" in deploy.toml and run `deployer host setup`'
                )

    def stop(self) -> None:
        self.privileged("stop")
        if self.socket:  # else a connection would start it again, with nothing to run
            self.privileged("stop", self.socket)

    def show(self) -> Dict[str, str]:
        proc = run([self.systemctl, "show", "-p", ",".join(SHOW_PROPS), self.name], timeout=30)
        props = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            props[key] = value
        return props

    def problems(self) -> List[str]:
        """The unit must be installed and ``sudo -n -l`` must list our exact command lines."""
        if not unit_installed(self.unit):
            return [f"unit {self.name} is not installed: run `deployer host setup` first"]
        return missing_rights(self.sudo, self.needed_rights())

    def recent(self, lines: int) -> List[str]:
        proc = run(
            [self.journalctl, "--no-pager", "-o", "short-iso", "-u", self.name, "-n", str(lines)], timeout=30
        )
        return proc.stdout.splitlines()

    def journal(self, invocation_id: str) -> List[str]:
        if not invocation_id:
            return []
        proc = run(
            [
                self.journalctl,
                "--no-pager",
                "-o",
                "cat",
                f"_SYSTEMD_INVOCATION_ID={invocation_id}",
                "+",
                f"INVOCATION_ID={invocation_id}",
            ],
            timeout=30,
        )
        return proc.stdout.splitlines()


class Handover(Service):
    """``[service] handover``: the unit is a template with two instances (``blue``,
    ``green``); one runs, the other is stopped or stands by.

    A restart starts the other one without waiting for it (``--no-block``), its slot link
    pointed at `current` first. The launcher resolves that link (the new release),
    imports ``[service] preload``, says so in its status (``HANDOVER_READY: <release>``)
    and waits for a lock the running instance holds until it exits (then says
    ``HANDOVER_RUNNING``). Once the new one says either, the old one is stopped: the new
    one takes the lock and runs at once, with its imports done. The two never run the
    service's code at the same time; only the new one's imports overlap the old one's
    last moments.

    ``stand_by`` (``[service] standby``) starts the idle instance on another release, which
    imports and waits: a restart onto that release then only stops the running one.

    A new instance that fails or exits before it says so is stopped, and the old one,
    never touched, keeps running what it ran: the next ``restart`` (the revert's) keeps it.
    """

    def __init__(self, config: HostConfig):
        self.slots = tuple(Systemd(unit) for unit in service_units(config))
        self.rights = tuple(sudo_lines(config))
        self.template = self.slots[0].name.split("@", 1)[0] + "@.service"
        self.layout = Layout.of(config)
        self.timeout = config.health.timeout  # for the new instance's imports
        self._running: Optional[Systemd] = None  # the instance the last restart left running
        self._kept: Optional[Systemd] = None  # an old instance a failed handover left running

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.current.name

    @property
    def current(self) -> Systemd:
        """The instance that runs (or was last started); the first one when none does."""
        return self._running or self._live() or self.slots[0]

    def _states(self) -> Dict[Systemd, Dict[str, str]]:
        """Each instance's properties, read once for one decision."""
        return {slot: slot.show() for slot in self.slots}

    def _live(self, states: Optional[Dict[Systemd, Dict[str, str]]] = None) -> Optional[Systemd]:
        states = states or self._states()
        running = [(slot, p) for slot, p in states.items() if p.get("ActiveState") in RUNNING]
        # both run while a handover is under way or one stands by: the one that waits is not live
        settled = [slot for slot, p in running if _said(p)[0] != HANDOVER_READY]
        found = settled or [slot for slot, _ in running]
        return found[0] if found else None

    def _other(self, slot: Optional[Systemd]) -> Systemd:
        return self.slots[1] if slot is self.slots[0] else self.slots[0]

    def _slot_name(self, slot: Systemd) -> str:
        return HANDOVER_SLOTS[self.slots.index(slot)]

    def restart(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None and kept.show().get("ActiveState") == "active":
            self._running = kept  # it still runs the release it ran before the failed handover
            return
        states = self._states()
        old = self._live(states)
        new = self._other(old)
        target = self.layout.current_id()
        # a standby of this release has imported it already (None: any invocation will do)
        standing = old is not None and self._standing_by(new, states[new], target)
        before = None if standing else self._start(new, states[new], target)
        self._running = new
        if old is None:
            return
        try:
            self._wait_ready(new, before)
        except HealthError:
            new.stop()
            self._running, self._kept = old, old
            raise
        old.stop()

    def stand_by(self, rid: str) -> bool:
        """The idle instance started on release ``rid``, to import and wait beside the
        running one; False when nothing runs (a standby would take the lock and run)."""
        states = self._states()
        live = self._live(states)
        if live is None:
            return False
        spare = self._other(live)
        if not self._standing_by(spare, states[spare], rid):
            self._start(spare, states[spare], rid)
        return True

    def standby(self) -> Optional[str]:
        """The release the idle instance stands by with, or None."""
        states = self._states()
        live = self._live(states)
        props = states[self._other(live)] if live is not None else {}
        state, rid = _said(props)
        return rid if props.get("ActiveState") in RUNNING and state == HANDOVER_READY else None

    def _standing_by(self, slot: Systemd, props: Dict[str, str], rid: Optional[str]) -> bool:
        """Whether ``slot`` (its properties ``props``) runs, started on ``rid``, and has not
        failed to import it."""
        if rid is None or props.get("ActiveState") not in RUNNING or props.get("SubState") == "auto-restart":
            return False
        state, said = _said(props)
        return said == rid if state else self.layout.slot_release(self._slot_name(slot)) == rid

    def _start(self, slot: Systemd, props: Dict[str, str], rid: Optional[str]) -> str:
        """``slot`` (its properties ``props``; stopped first if it runs) started on release
        ``rid``, not waited for; the invocation it had before (a new one is this start's)."""
        if props.get("ActiveState") in RUNNING:
            slot.stop()  # a standby of another release, or a new instance a lost handover left
        elif props.get("ActiveState") == "failed":
            slot.privileged("reset-failed")  # else a start-limit-hit refuses the start
        link = self.layout.slot(self._slot_name(slot))
        if rid is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()  # the launcher runs `current`
        else:
            link.parent.mkdir(exist_ok=True)
            replace_symlink(link, f"../releases/{rid}")
        slot.privileged("--no-block start")
        return props.get("InvocationID", "")

    def _wait_ready(self, new: Systemd, before: Optional[str]) -> None:
        """Until the new instance (an invocation after ``before``) has imported
        ``[service] preload`` and waits for the old."""
        deadline = time.monotonic() + self.timeout
        while True:
            props = new.show()
            started = before is None or props.get("InvocationID", "") not in ("", before)
            if started and _said(props)[0]:
                return  # waiting for the old one, or running already (the old one had exited)
            if started and (
                props.get("ActiveState") not in RUNNING or props.get("SubState") == "auto-restart"
            ):
                tail = " | ".join(new.journal(props.get("InvocationID", ""))[-3:])
                raise HealthError(
                    f"{new.name} exited before it could take over ({props.get('Result', '?')}): "
                    f"{tail or 'no output'}; the running instance was left as it was"
                )
            if time.monotonic() > deadline:
                raise HealthError(
                    f"{new.name} did not finish importing [service] preload within {self.timeout:.0f}s; "
                    "the running instance was left as it was"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        for slot in self.slots:
            slot.stop()
        self._running = None

    def show(self) -> Dict[str, str]:
        return self.current.show()

    def journal(self, invocation_id: str) -> List[str]:
        return self.slots[0].journal(invocation_id)

    def recent(self, lines: int) -> List[str]:
        return Systemd(self.template.replace("@.", "@*.")).recent(lines)

    def problems(self) -> List[str]:
        if not unit_installed(self.template):
            return [
                f"unit {self.template} ([service] handover) is not installed: run `deployer host setup` first"
            ]
        return missing_rights(self.slots[0].sudo, self.needed_rights())


def _said(props: Dict[str, str]) -> Tuple[str, str]:
    """(state, release) a handover instance's status text says (``handover_status``)."""
    return handover_status(props.get("StatusText", ""))


def service_for(config: HostConfig) -> Service:
    """The service a deploy of ``config`` drives on this host."""
    if config.handover:
        return Handover(config)
    return Systemd(config.unit, socket_unit(config), tuple(sudo_lines(config)))


def missing_rights(sudo: str, needed: List[str]) -> List[str]:
    """A problem when ``sudo -n -l`` does not list every command line in ``needed``."""
    proc = run([sudo, "-n", "-l"], timeout=30)
    allowed = proc.stdout if proc.returncode == 0 else ""
    missing = [r for r in needed if r not in allowed]
    if missing:
        return [f"sudo does not allow `{missing[0]}` for this user: run `deployer host setup`"]
    return []


def unit_installed(unit: str, path: Optional[str] = None) -> bool:
    from pathlib import Path

    name = unit if unit.endswith(".service") else unit + ".service"
    return Path(path or f"/etc/systemd/system/{name}").is_file()
