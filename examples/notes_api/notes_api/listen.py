"""How the service listens: on the socket systemd passes as fd 3, and how it stops.

When the unit has a ``.socket`` (deployer's ``[service] socket``), systemd listens on the
port itself and holds it across restarts: connections that arrive while the service
restarts wait in the kernel's queue, and the next process answers them. It tells the
process with ``LISTEN_PID`` (this process) and ``LISTEN_FDS`` (how many, from fd 3).

Stopping, the service must not drop a connection it has already accepted: ``Server``
stops accepting first, then gives those connections a moment to send their request
before uvicorn closes the idle ones (uvicorn closes a connection whose request it has
not read yet, and the client sees a reset).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import uvicorn

__all__ = ["ACCEPTED_GRACE", "LISTEN_FDS_START", "Server", "systemd_socket"]

#: the first descriptor systemd passes (SD_LISTEN_FDS_START)
LISTEN_FDS_START = 3
#: seconds a connection accepted just before the stop has to send its request
ACCEPTED_GRACE = 0.05


def systemd_socket(environ: Mapping[str, str] | None = None, pid: int | None = None) -> socket.socket | None:
    """The listening TCP socket systemd passed to this process, or None when it passed none
    (then the service binds ``HOST``:``PORT`` itself)."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid() if pid is None else pid):
        return None  # meant for another process (or none at all)
    if env.get("LISTEN_FDS", "0").strip() != "1":
        return None
    return socket.socket(fileno=LISTEN_FDS_START)


class Server(uvicorn.Server):
    """uvicorn's server, which stops accepting before it closes idle connections."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # the next connections wait in the kernel's queue for the next process
        await asyncio.sleep(ACCEPTED_GRACE)
        await super().shutdown(sockets=sockets)
