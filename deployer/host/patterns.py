"""What may go into a root-owned file or name a path root acts on: strict patterns.

``HostConfig.problems`` checks every value setup renders into the unit, the launcher and
the sudoers drop-in against these; ``check_release_id`` guards every path built from a
release id (``Layout`` calls it). Standard library only (shipped in the engine).
"""

from __future__ import annotations

import re
from typing import Any, List

from deployer.errors import UsageError

#: root-owned; setup makes ``<app>/env`` in it for the deploy user to write
ENV_ROOT = "/etc/deployer"

#: names rendered into root-owned files and paths: strict, no whitespace or newline
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
ABS_PATH = re.compile(r"^(/[A-Za-z0-9_.+-]+)+\Z")
SHARED_DIR = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")
#: a TCP address systemd listens on for the service (``[service] socket``, rendered into
#: ``ListenStream=``): a port, ``IPv4:port`` or ``[IPv6]:port``
LISTEN = re.compile(r"^(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}:|\[[0-9A-Fa-f:]{2,39}\]:)?([0-9]{1,5})\Z")


def listen_problems(value: str) -> List[str]:
    """Why ``value`` cannot be a ``ListenStream=`` address (empty when it can)."""
    m = LISTEN.match(value)
    if not m:
        return [f"{value!r} is not a TCP address: a port, IPv4:port or [IPv6]:port, e.g. 127.0.0.1:8000"]
    if not 0 < int(m.group(1)) < 65536:
        return [f"{value!r}: the port must be 1..65535"]
    if value[0].isdigit() and ":" in value and any(int(b) > 255 for b in value.split(":")[0].split(".")):
        return [f"{value!r} is not an IPv4 address"]
    return []


#: top-level folders a base path may not be in: the system's own
SYSTEM_DIRS = (
    "bin",
    "boot",
    "dev",
    "etc",
    "lib",
    "lib32",
    "lib64",
    "proc",
    "root",
    "run",
    "sbin",
    "sys",
    "usr",
)


def base_path_problems(path: str) -> List[str]:
    """Why ``path`` cannot be an app's base path (empty when it can)."""
    if not ABS_PATH.match(path) or any(p in (".", "..") for p in path.split("/")[1:]):
        return [f"{path!r} must be an absolute path of plain names (no '..', spaces or newlines)"]
    parts = path.split("/")[1:]
    if len(parts) < 2 or parts[0] in SYSTEM_DIRS:
        return [f"{path!r} must be a folder of its own below e.g. /opt or /srv, not a system folder"]
    return []


#: one release id pattern, checked at every entry (the controller's and the engine's)
RELEASE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}\Z")


def check_release_id(rid: Any, where: str) -> str:
    """``rid`` when it is a release id; else ``UsageError`` naming ``where`` it came from.

    Every path built from an id goes through ``Layout``, which calls this: no id (from a
    command line, a manifest or the history) can point outside ``releases/``."""
    if not isinstance(rid, str) or not RELEASE_ID.match(rid):
        raise UsageError(f"{where}: {rid!r} is not a release id (like 20261126T101500Z-3f2a9c1)")
    return rid
