"""One SSH connection per host (paramiko), with pinned host keys and a fast dead-link check.

Host keys come from a known_hosts file or secret: an unknown key is refused, a
mismatch names the host and both fingerprints; trust-on-first-use only with
``accept_new`` (``keys.py``). A dead link must fail in seconds: the socket has TCP
keepalive and ``TCP_USER_TIMEOUT`` (``link.py``), and channels get read timeouts.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from deployer.errors import CommandError, HostKeyError, RemoteError

# the pipeline and the tests import these from here, next to Connection
from deployer.remote.keys import (
    PinnedKeyPolicy,
    fingerprint,
    host_key_name,
    load_host_keys,
    load_private_key,
)
from deployer.remote.link import gcm_first, open_socket

# paramiko logs socket errors to stderr through logging's last resort; we report them ourselves
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect (resolved from config + environment)."""

    label: str
    address: str
    port: int
    user: str


@dataclass(frozen=True)
class Credentials:
    key_file: str | None = None
    key_text: str | None = None  # a CI secret holding the private key itself
    passphrase: str | None = None
    known_hosts_file: str | None = None
    known_hosts_text: str | None = None
    accept_new: bool = False
    connect_timeout: float = 10.0
    agent_socket: str | None = None  # SSH_AUTH_SOCK: where paramiko finds an ssh-agent

    @classmethod
    def from_env(
        cls, key_file=None, known_hosts=None, accept_new=False, connect_timeout=10.0, environ=None
    ) -> Credentials:
        env = os.environ if environ is None else environ
        return cls(
            key_file=key_file,
            key_text=env.get("DEPLOYER_SSH_KEY") or None,
            passphrase=env.get("DEPLOYER_SSH_KEY_PASSPHRASE") or None,
            known_hosts_file=known_hosts,
            known_hosts_text=env.get("DEPLOYER_KNOWN_HOSTS") or None,
            accept_new=accept_new,
            connect_timeout=connect_timeout,
            agent_socket=env.get("SSH_AUTH_SOCK") or None,
        )


#: how many lines of a failed command's output a ``CommandError`` carries
TAIL_LINES = 12


@dataclass(frozen=True)
class Result:
    """What a command run on a host did."""

    host: str
    step: str | None
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last lines it printed (stderr, else stdout)."""
        return (self.stderr.strip() or self.stdout.strip()).splitlines()[-lines:]

    def check(self, redact: Callable[[str], str] = str) -> Result:
        """Itself when it exited 0; else ``CommandError`` (argv and output masked by ``redact``)."""
        if self.ok:
            return self
        tail = [redact(line) for line in self.tail()]
        argv = [redact(a) for a in self.argv]
        last = tail[-1] if tail else "no output"
        raise CommandError(
            f"{argv[0]} exited {self.exit_code}: {last}",
            argv=argv,
            exit_code=self.exit_code,
            output=tail,
            host=self.host,
            step=self.step,
        )


class Connection:
    """An authenticated SSH connection to one host: run commands, SFTP files."""

    def __init__(self, target: Endpoint, creds: Credentials):
        self.target = target
        self.client = paramiko.SSHClient()
        keys = load_host_keys(creds)
        name = host_key_name(target)
        for keytype, key in (keys.lookup(name) or {}).items():
            self.client.get_host_keys().add(name, keytype, key)
        policy = PinnedKeyPolicy(target, creds.accept_new)
        self.client.set_missing_host_key_policy(policy)
        self._authenticate(creds, load_private_key(creds))
        self.accepted_key = policy.accepted
        self._sftp: paramiko.SFTPClient | None = None

    def _authenticate(self, creds: Credentials, pkey: paramiko.PKey | None) -> None:
        """Open the socket and log in with ``pkey`` (None: the agent's keys).

        Every failure closes the socket and becomes one line: ``HostKeyError`` for a key
        that is not pinned or does not match, ``RemoteError`` for the rest."""
        target = self.target
        sock = open_socket(target, creds.connect_timeout)
        try:
            self.client.connect(
                target.address,
                target.port,
                username=target.user,
                pkey=pkey,
                sock=sock,
                allow_agent=pkey is None,
                look_for_keys=False,
                timeout=creds.connect_timeout,
                banner_timeout=creds.connect_timeout,
                auth_timeout=creds.connect_timeout,
                transport_factory=gcm_first,
            )
        except HostKeyError:
            sock.close()
            raise
        except paramiko.BadHostKeyException as e:
            sock.close()
            raise HostKeyError(
                f"{target.label} ({target.address}): HOST KEY MISMATCH - it offers "
                f"{fingerprint(e.key)}, known_hosts pins {fingerprint(e.expected_key)}; "
                "refusing to connect (possible man-in-the-middle)"
            ) from None
        except paramiko.AuthenticationException:
            sock.close()
            raise RemoteError(
                host=target.label,
                message=f"{target.user}@{target.address} refused our key (wrong user or key)",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            agent_empty = pkey is None and self._connected_unauthenticated()
            sock.close()
            if agent_empty:  # connected, but the agent had no key to offer
                raise RemoteError(
                    host=target.label,
                    message=f"{target.user}@{target.address}: the ssh-agent (SSH_AUTH_SOCK) offered no key",
                ) from None
            raise RemoteError(host=target.label, message=f"SSH failed: {e or type(e).__name__}") from None

    def _connected_unauthenticated(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active() and not transport.is_authenticated()

    # ------------------------------------------------------------------ commands
    def run(
        self, argv: list[str], timeout: float = 60, stdin: bytes | None = None, step: str | None = None
    ) -> Result:
        """Run argv (quoted in ONE place, here); its exit code and output, however it exited.

        ``Result.check()`` turns a non-zero exit into a ``CommandError`` with the facts."""
        try:
            chan = self._transport().open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.exec_command(shlex.join(argv))
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = _drain(chan)
            code = chan.recv_exit_status()
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise RemoteError(
                f"lost the connection running {argv[0]}: {e or type(e).__name__}",
                host=self.target.label,
                step=step,
            ) from None
        if code == -1:
            raise RemoteError(f"connection lost while running {argv[0]}", host=self.target.label, step=step)
        return Result(self.target.label, step, argv, code, out, err)

    def open_channel(self, argv: list[str], read_timeout: float) -> paramiko.Channel:
        chan = self._transport().open_session(timeout=read_timeout)
        chan.settimeout(read_timeout)
        chan.exec_command(shlex.join(argv))
        return chan

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError("the connection is closed", host=self.target.label)
        return transport

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
            channel = self._sftp.get_channel()
            if channel is not None:
                channel.settimeout(30)
        return self._sftp

    def upload(self, local: Path, remote: str, callback=None) -> None:
        tmp = remote + ".part"
        try:
            self.sftp.put(str(local), tmp, callback=callback, confirm=True)
            self.sftp.posix_rename(tmp, remote)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise RemoteError(
                host=self.target.label, message=f"upload of {local.name} failed: {e or type(e).__name__}"
            ) from None

    def read_text(self, remote: str) -> str | None:
        try:
            with self.sftp.open(remote, "r") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException) as e:
            raise RemoteError(host=self.target.label, message=f"cannot read {remote}: {e}") from None

    def exists(self, remote: str) -> bool:
        try:
            self.sftp.stat(remote)
            return True
        except FileNotFoundError:
            return False

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        finally:
            self.client.close()


def _drain(chan: paramiko.Channel) -> tuple[str, str]:
    """All of stdout, then all of stderr (paramiko buffers stderr meanwhile)."""
    out, err = bytearray(), bytearray()
    for buf, recv in ((out, chan.recv), (err, chan.recv_stderr)):
        while True:
            data = recv(65536)
            if not data:
                break
            buf += data
    return out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace")
