"""The link under an SSH connection: a socket that notices a dead peer, a fast cipher first.

A dead link must fail in seconds: the socket has TCP keepalive and ``TCP_USER_TIMEOUT``
(paramiko's own keepalive never waits for a reply).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import paramiko

from deployer.errors import RemoteError

if TYPE_CHECKING:
    from deployer.remote.ssh import Endpoint

USER_TIMEOUT_MS = 5000


def open_socket(t: Endpoint, timeout: float) -> socket.socket:
    try:
        s = socket.create_connection((t.address, t.port), timeout=timeout)
    except TimeoutError:
        raise RemoteError(
            host=t.label, message=f"no answer from {t.address}:{t.port} in {timeout:.0f}s"
        ) from None
    except OSError as e:
        raise RemoteError(
            host=t.label, message=f"cannot reach {t.address}:{t.port}: {e.strerror or e}"
        ) from None
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # SSH sends a request as several small packets (channel open, exec, window adjust):
    # with Nagle's algorithm each waits for the peer's delayed ACK (40 ms on Linux)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt, value in (
        ("TCP_KEEPIDLE", 1),
        ("TCP_KEEPINTVL", 1),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, opt):
            s.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    return s


def gcm_first(sock, **kwargs) -> paramiko.Transport:
    """paramiko's transport, offering AES-GCM before its other ciphers.

    An AEAD cipher needs no separate MAC pass: through paramiko it moves about 40 % more
    bytes per second than the default aes128-ctr + hmac-sha2-256 (measured on the
    staging host). The other ciphers stay, in paramiko's order, for servers without it.
    """
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    gcm = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = gcm + tuple(c for c in options.ciphers if c not in gcm)
    return transport
