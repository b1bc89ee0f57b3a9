"""The one exception tree of deployer.

Every error a user can cause or meet is a ``DeployerError``; the CLI turns it into one
line on stderr and its ``exit_code``. Library exceptions are converted at the boundary
with ``raise ... from``::

    DeployerError                   exit 1 unless said otherwise
    ├── UsageError                  exit 2: bad command-line input
    │   └── ConfigError             exit 2: deploy.toml invalid; names the key path
    ├── BuildError                  building the artifact failed
    │   └── WheelUnavailableError   a dependency has no wheel (nor sdist) for the target
    ├── ArtifactError               artifact missing, truncated, tampered or unsafe
    ├── HostError                   the host engine refused or failed a step
    │   ├── PreflightError          the host cannot take the release (python, glibc, disk)
    │   ├── LockHeldError           another deploy holds the host's lock
    │   ├── InstallError            venv / dependency install / smoke test failed
    │   ├── HealthError             the service did not come back healthy (reverted)
    │   └── AbortedError            the controller went away before the switch
    └── RemoteError                 SSH: connect, auth, host key, transfer, lost link
        └── HostKeyError            exit 2: unknown or mismatching host key
"""

from __future__ import annotations


class DeployerError(Exception):
    """Root of every error deployer reports to a user."""

    exit_code = 1


class UsageError(DeployerError):
    exit_code = 2


class ConfigError(UsageError):
    """deploy.toml (or an environment override) is invalid."""


class BuildError(DeployerError):
    pass


class WheelUnavailableError(BuildError):
    pass


class ArtifactError(DeployerError):
    pass


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


class AbortedError(HostError):
    pass


class RemoteError(DeployerError):
    pass


class HostKeyError(RemoteError):
    exit_code = 2
