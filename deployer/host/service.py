"""The service manager behind a small interface: systemd on hosts, anything in tests.

Only what a deploy needs: restart, stop, the unit's state (active, restart counter,
invocation id) and this invocation's journal lines. The deploy user runs exactly
``sudo -n systemctl restart|stop <unit>`` (the sudoers drop-in allows those lines and
nothing else) and reads the journal through the ``systemd-journal`` group.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from deployer.errors import HealthError, HostError
from deployer.host.contract import SUDO_VERBS
from deployer.host.proc import run

SHOW_PROPS = ("ActiveState", "SubState", "Result", "NRestarts", "InvocationID", "MainPID", "Type")


class Service:
    """Interface; ``Systemd`` is the real one."""

    name: str

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

    def recent(self, lines: int) -> List[str]:
        """The last ``lines`` of the service's journal."""
        raise NotImplementedError


class Systemd(Service):
    def __init__(
        self,
        unit: str,
        systemctl: str = "/usr/bin/systemctl",
        journalctl: str = "/usr/bin/journalctl",
        sudo: str = "/usr/bin/sudo",
    ):
        self.name = unit if unit.endswith(".service") else unit + ".service"
        self.unit = unit
        self.systemctl, self.journalctl, self.sudo = systemctl, journalctl, sudo

    def _privileged(self, verb: str, timeout: float = 120) -> int:
        # `sudo -n`: fail at once instead of prompting; argv matches the sudoers line exactly
        argv = [self.sudo, "-n", self.systemctl, verb, self.unit]
        proc = run(argv, timeout=timeout)
        # a failed start is reported by the health check with its journal; only a
        # refused sudo is an error of its own
        refused = "password is required" in proc.stderr or "not allowed" in proc.stderr
        if proc.returncode != 0 and refused:
            raise HostError(
                f"sudo refused `systemctl {verb} {self.unit}`: run "
                "`deployer host setup` to install the sudoers drop-in"
            )
        return proc.returncode

    def restart(self) -> None:
        if self.show().get("Result") == "start-limit-hit":
            self._privileged("reset-failed")  # else systemd refuses the start outright
        if self._privileged("restart") != 0:
            props = self.show()
            if props.get("Result") == "timeout" and props.get("Type") == "notify":
                raise HealthError(
                    f"{self.name} never said it was ready: it is Type=notify, so systemd waits for "
                    "READY=1 (sd_notify) until TimeoutStartSec; if the service does not send it, set "
                    '[service] type = "exec" in deploy.toml and run `deployer host setup`'
                )

    def stop(self) -> None:
        self._privileged("stop")

    def show(self) -> Dict[str, str]:
        proc = run([self.systemctl, "show", "-p", ",".join(SHOW_PROPS), self.name], timeout=30)
        props = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            props[key] = value
        return props

    def needed_rights(self) -> List[str]:
        return [f"{self.systemctl} {verb} {self.unit}" for verb in SUDO_VERBS]

    def problems(self) -> List[str]:
        """The unit must be installed and ``sudo -n -l`` must list our exact command lines."""
        if not unit_installed(self.unit):
            return [f"unit {self.name} is not installed: run `deployer host setup` first"]
        proc = run([self.sudo, "-n", "-l"], timeout=30)
        allowed = proc.stdout if proc.returncode == 0 else ""
        missing = [r for r in self.needed_rights() if r not in allowed]
        if missing:
            return [f"sudo does not allow `{missing[0]}` for this user: run `deployer host setup`"]
        return []

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


def unit_installed(unit: str, path: Optional[str] = None) -> bool:
    from pathlib import Path

    name = unit if unit.endswith(".service") else unit + ".service"
    return Path(path or f"/etc/systemd/system/{name}").is_file()
