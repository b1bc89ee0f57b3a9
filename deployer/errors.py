"""The one exception tree of deployer.

Every error a user can cause or meet is a ``DeployerError``; the CLI turns it into one
line on stderr and its ``exit_code``. An error carries its facts as fields (``host``,
``step``) and renders them in one place (``__str__``): ``<host>: <step>: <message>``.
Library exceptions are converted at the boundary with ``raise ... from``::

    DeployerError                   exit 1 unless said otherwise
    ├── UsageError                  exit 2: bad command-line input
    │   └── ConfigError             exit 2: deploy.toml invalid; names the key path
    ├── BuildError                  building the artifact failed
    │   ├── WheelUnavailableError   a dependency has no wheel (nor sdist) for the target
    │   └── CooldownError           a dependency is younger than artifact.min_age_days (which, when)
    ├── ArtifactError               artifact missing, truncated, tampered or unsafe
    │   └── SignatureError          unsigned, or not signed by a key the host trusts (fingerprint)
    ├── HostError                   the host engine refused or failed a step
    │   ├── PreflightError          the host cannot take the release (python, glibc, disk)
    │   ├── LockHeldError           another deploy holds the host's lock
    │   ├── InstallError            venv / dependency install / smoke test failed
    │   ├── HealthError             the service did not come back healthy (reverted)
    │   │   └── RevertFailedError       ... and the release switched back to is not healthy either
    │   └── AbortedError            the controller went away before the switch
    └── RemoteError                 SSH: connect, auth, host key, transfer, lost link
        ├── CommandError            a command on the host exited non-zero (argv, exit code, output)
        └── HostKeyError            exit 2: unknown or mismatching host key

This module ships inside the host engine too: standard library only, Python >= 3.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Optional


class DeployerError(Exception):
    """Root of every error deployer reports to a user."""

    exit_code = 1

    def __init__(self, message: str = "", *, host: Optional[str] = None, step: Optional[str] = None):
        super().__init__(message)
        self.message, self.host, self.step = message, host, step

    def __str__(self) -> str:
        return ": ".join(p for p in (self.host, self.step, self.message) if p)


class UsageError(DeployerError):
    exit_code = 2


class ConfigError(UsageError):
    """deploy.toml (or an environment override) is invalid."""


class BuildError(DeployerError):
    pass


class WheelUnavailableError(BuildError):
    pass


class CooldownError(BuildError):
    """Dependencies younger than ``artifact.min_age_days`` (or of unknown age):
    ``packages`` as ``name==version``, ``uploaded`` their upload times (None: unknown)."""

    def __init__(
        self,
        message: str,
        *,
        packages: Sequence[str] = (),
        uploaded: Sequence[Optional[str]] = (),
        host: Optional[str] = None,
        step: Optional[str] = None,
    ):
        super().__init__(message, host=host, step=step)
        self.packages: List[str] = list(packages)
        self.uploaded: List[Optional[str]] = list(uploaded)


class ArtifactError(DeployerError):
    pass


class SignatureError(ArtifactError):
    """The host trusts only signed artifacts and this one's signature does not check out:
    ``fingerprint`` of the key that signed it (None: unsigned), ``trust`` the allowed-signers
    file it was checked against."""

    def __init__(
        self,
        message: str,
        *,
        fingerprint: Optional[str] = None,
        trust: Optional[str] = None,
        host: Optional[str] = None,
        step: Optional[str] = None,
    ):
        super().__init__(message, host=host, step=step)
        self.fingerprint, self.trust = fingerprint, trust


class HostError(DeployerError):
    pass


class PreflightError(HostError):
    pass


class LockHeldError(HostError):
    pass


class InstallError(HostError):
    pass


class HealthError(HostError):
    pass


class RevertFailedError(HealthError):
    pass


class AbortedError(HostError):
    pass


#: the engine's error names on the wire (``"error"`` of a failed event) -> their class
HOST_ERRORS = {
    cls.__name__: cls
    for cls in (
        HostError,
        PreflightError,
        LockHeldError,
        InstallError,
        HealthError,
        AbortedError,
        SignatureError,
        RevertFailedError,
    )
}


class RemoteError(DeployerError):
    pass


class CommandError(RemoteError):
    """A command run on a host failed: which, how, and the last lines it printed."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str],
        exit_code: Optional[int],
        output: Sequence[str] = (),
        host: Optional[str] = None,
        step: Optional[str] = None,
    ):
        super().__init__(message, host=host, step=step)
        self.argv: List[str] = list(argv)
        self.returncode = exit_code
        self.output: List[str] = list(output)


class HostKeyError(RemoteError):
    exit_code = 2
