"""systemd socket activation: the listening socket systemd passes as fd 3.

When the unit has a ``.socket`` (deployer's ``[service] socket``), systemd listens on the
port itself and holds it across restarts: connections that arrive while the service
restarts wait in the kernel's queue, and the next process answers them. It tells the
process with ``LISTEN_PID`` (this process) and ``LISTEN_FDS`` (how many, from fd 3).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["LISTEN_FDS_START", "systemd_socket"]

#: the first descriptor systemd passes (SD_LISTEN_FDS_START)
LISTEN_FDS_START = 3


def systemd_socket(environ: Mapping[str, str] | None = None, pid: int | None = None) -> socket.socket | None:
    """The listening TCP socket systemd passed to this process, or None when it passed none
    (then the service binds ``HOST``:``PORT`` itself)."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid() if pid is None else pid):
        return None  # meant for another process (or none at all)
    if env.get("LISTEN_FDS", "0").strip() != "1":
        return None
    return socket.socket(fileno=LISTEN_FDS_START)
