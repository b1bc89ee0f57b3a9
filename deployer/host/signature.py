"""Signed artifacts: the manifest's signature checked against the keys a host trusts.

An artifact may carry ``manifest.json.sig``: ``ssh-keygen -Y sign -n deployer-artifact@v1``
over the manifest's exact bytes. The manifest binds every other member by its sha256, so
a verified manifest and the hash checks of the unpack cover the whole artifact. The keys
a host trusts for an app are root's ``/etc/deployer/<app>/allowed_signers`` (written by
``host setup --trust-key``, rendered in ``rootfiles.py``); where there is none, an
artifact need not be signed. Checked offline with the ``ssh-keygen`` OpenSSH puts on
every host (>= 8.2); parsed here only to name the key (its SHA256 fingerprint).
Standard library only (shipped in the engine).
"""

from __future__ import annotations

import base64
import binascii
import glob
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from deployer.errors import SignatureError, UsageError
from deployer.host.artifact import MANIFEST, SignedManifest
from deployer.host.contract import ALLOWED_SIGNERS, SIGNATURE_NAMESPACE, HostConfig
from deployer.host.patterns import ENV_ROOT
from deployer.host.proc import run

#: the public key types ``ssh-keygen -Y`` signs with
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
#: the line of an allowed-signers file that names the base path it guards
BASE_PATH_NOTE = "# base_path: "
_ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
_MAGIC = b"SSHSIG"
#: ssh-keygen is looked up here only, whatever PATH the caller has
_PATH = "/usr/local/bin:/usr/bin:/bin"


def fingerprint(blob: bytes) -> str:
    """A public key's SHA256 fingerprint, as ``ssh-keygen -l`` prints it (pure)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class PublicKey:
    kind: str
    blob: bytes  # the key in SSH wire form (what a fingerprint hashes)
    comment: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def line(self) -> str:
        return f"{self.kind} {base64.b64encode(self.blob).decode()}"


@dataclass(frozen=True)
class Signature:
    """What an SSH signature says of itself (nothing here is verified)."""

    key: PublicKey
    namespace: str

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


def _strings(data: bytes, count: int, where: str) -> Tuple[List[bytes], bytes]:
    """``count`` SSH wire strings (uint32 length, bytes) off the front of ``data``."""
    out = []
    for _ in range(count):
        if len(data) < 4:
            raise SignatureError(f"{where}: not an SSH signature (truncated)")
        (n,) = struct.unpack(">I", data[:4])
        if len(data) < 4 + n:
            raise SignatureError(f"{where}: not an SSH signature (truncated)")
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out, data


def _key_kind(blob: bytes, where: str) -> str:
    try:
        kind = _strings(blob, 1, where)[0][0].decode("ascii")
    except (SignatureError, UnicodeDecodeError):
        raise SignatureError(f"{where}: not an SSH public key") from None
    return kind


def parse_signature(armored: bytes, where: str) -> Signature:
    """The key and namespace of an armored SSH signature (``-Y sign`` output) (pure)."""
    lines = armored.decode("ascii", errors="replace").strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _ARMOR[0] or lines[-1].strip() != _ARMOR[1]:
        raise SignatureError(f"{where}: its signature is not an SSH signature (ssh-keygen -Y sign)")
    try:
        data = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: its signature is not valid base64") from None
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise SignatureError(f"{where}: its signature is not an SSH signature (no SSHSIG header)")
    (version,) = struct.unpack(">I", data[len(_MAGIC) : len(_MAGIC) + 4])
    if version != 1:
        raise SignatureError(f"{where}: SSH signature version {version} is not supported")
    (blob, namespace), _ = _strings(data[len(_MAGIC) + 4 :], 2, where)
    key = PublicKey(_key_kind(blob, where), blob)
    return Signature(key, namespace.decode("utf-8", errors="replace"))


def parse_public_key(text: str, where: str) -> PublicKey:
    """The one public key of a ``.pub`` file's text: ``type base64 [comment]`` (pure).

    ``UsageError`` naming ``where`` for anything else (a private key, two keys, a key
    whose data is not of its type)."""
    if "PRIVATE KEY" in text:
        raise UsageError(f"{where}: a private key; give its public half (the .pub file)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(lines) != 1:
        raise UsageError(f"{where}: expected one public key line (type base64 [comment]), found {len(lines)}")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise UsageError(
            f"{where}: not a public key line of a type ssh-keygen signs with ({', '.join(KEY_TYPES)})"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{where}: the key's data is not base64") from None
    try:
        kind = _key_kind(blob, where)
    except SignatureError:
        kind = ""
    if kind != parts[0]:
        raise UsageError(f"{where}: the key's data is not a {parts[0]} key")
    return PublicKey(parts[0], blob, parts[2].strip() if len(parts) > 2 else "")


def signer_line(principal: str, key: PublicKey) -> str:
    """One allowed-signers line: ``key`` trusted as ``principal``, for deployer's namespace only."""
    return f'{principal} namespaces="{SIGNATURE_NAMESPACE}" {key.line}\n'


@dataclass(frozen=True)
class Trust:
    """The keys a host trusts to sign an app's artifacts: the allowed-signers text, where it
    came from, and the principal (the app) they are trusted as."""

    path: str
    principal: str
    text: str

    @property
    def base_path(self) -> Optional[str]:
        """The base path the file guards (its ``# base_path:`` line)."""
        for line in self.text.splitlines():
            if line.startswith(BASE_PATH_NOTE):
                return line[len(BASE_PATH_NOTE) :].strip()
        return None

    @classmethod
    def of_keys(cls, principal: str, keys: List[str], where: str) -> Trust:
        """Trust in exactly ``keys`` (texts of .pub files), as a host given them would have."""
        lines = [signer_line(principal, parse_public_key(k, f"{where} #{i}")) for i, k in enumerate(keys, 1)]
        return cls(where, principal, "".join(lines))


def host_trust(config: HostConfig, root: str = ENV_ROOT) -> Optional[Trust]:
    """The keys this host trusts for ``config``'s app, or None: unsigned artifacts pass.

    Also those of any other app whose file guards ``config.base_path``: an artifact that
    names another app (``install`` takes its config from the artifact) still meets the
    keys of the place it would install into. An unreadable file refuses, never passes.
    """
    own = os.path.join(root, config.app, ALLOWED_SIGNERS)
    others = sorted(p for p in glob.glob(os.path.join(glob.escape(root), "*", ALLOWED_SIGNERS)) if p != own)
    for path in [own, *others]:
        if not os.path.lexists(path):
            continue
        app = os.path.basename(os.path.dirname(path))
        trust = Trust(path, app, _read(path))
        if app == config.app or trust.base_path == config.base_path:
            return trust
    return None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise SignatureError(f"{path}: cannot read the keys it trusts ({reason})", trust=path) from None


def check(signed: SignedManifest, trust: Trust, where: str) -> Signature:
    """The signature of ``signed``, verified against ``trust``; else ``SignatureError``,
    one line naming the key's fingerprint and what to do."""
    if signed.signature is None:
        raise SignatureError(
            f"{where}: not signed, and this host takes {trust.principal}'s artifacts only signed by a "
            f"trusted key ({trust.path}): build it with `deployer build --sign KEY`",
            trust=trust.path,
        )
    sig = parse_signature(signed.signature, where)
    fp = sig.fingerprint
    if sig.namespace != SIGNATURE_NAMESPACE:
        raise SignatureError(
            f"{where}: signed by {fp} as {sig.namespace!r}, not as a deployer artifact "
            f"({SIGNATURE_NAMESPACE}): build it with `deployer build --sign KEY`",
            fingerprint=fp,
            trust=trust.path,
        )
    with tempfile.TemporaryDirectory(prefix="deployer-signature-") as tmp:
        manifest, armored, allowed = (Path(tmp) / n for n in (MANIFEST, "manifest.sig", ALLOWED_SIGNERS))
        manifest.write_bytes(signed.text)
        armored.write_bytes(signed.signature)
        allowed.write_text(trust.text, encoding="utf-8")
        ns = ["-n", SIGNATURE_NAMESPACE, "-s", str(armored)]
        verified = _ssh_keygen(["verify", "-f", str(allowed), "-I", trust.principal, *ns], manifest)
        if verified.returncode == 0:
            return sig
        intact = _ssh_keygen(["check-novalidate", *ns], manifest)
    if intact.returncode == 0:
        raise SignatureError(
            f"{where}: signed by {fp} ({sig.key.kind}), a key not trusted for {trust.principal} "
            f"({trust.path}): sign it with a trusted key, or trust this one with "
            "`deployer host setup --trust-key KEY.pub`",
            fingerprint=fp,
            trust=trust.path,
        )
    said = (intact.stderr.strip() or intact.stdout.strip()).splitlines()
    if said and "incorrect signature" not in said[-1] and "verification failed" not in said[-1]:
        raise SignatureError(
            f"{where}: cannot check its signature by {fp}: ssh-keygen: {said[-1]}",
            fingerprint=fp,
            trust=trust.path,
        )
    raise SignatureError(
        f"{where}: {MANIFEST} does not match its signature by {fp}: edited after it was signed, "
        "or damaged; refused",
        fingerprint=fp,
        trust=trust.path,
    )


def _ssh_keygen(args: List[str], stdin: Path):
    return run(
        ["ssh-keygen", "-Y", *args], timeout=30, env={"PATH": _PATH}, stdin=stdin, error=SignatureError
    )


def built_by(manifest: dict) -> str:
    """Where the manifest says it was built, in a few words (pure; what it claims is
    signed with it)."""
    prov = manifest.get("provenance")
    if not isinstance(prov, dict):
        return "no provenance recorded"
    words = [f"built by {prov.get('builder') or 'an unknown builder'}"]
    if prov.get("repository"):
        words.append(str(prov["repository"]))
    if prov.get("run_id"):
        words.append(f"run {prov['run_id']}" + (f".{prov['run_attempt']}" if prov.get("run_attempt") else ""))
    if prov.get("commit"):
        words.append(f"at {str(prov['commit'])[:12]}")
    return " ".join(words)
