"""The systemd notification protocol (``sd_notify``), standard library only."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["sd_notify"]

log = logging.getLogger(__name__)


def sd_notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the socket named by ``NOTIFY_SOCKET``.

    A leading ``@`` names a socket in the abstract namespace. Returns True when
    the message was sent; False when ``NOTIFY_SOCKET`` is unset (not run by a
    ``Type=notify`` unit) or sending failed, which is logged, never raised.
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify failed (%s): %s", state.split("\n", 1)[0], exc)
        return False
    return True
