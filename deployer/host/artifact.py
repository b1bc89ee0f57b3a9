"""The release artifact as the host sees it: manifest, hashes, safe members (stdlib only).

An artifact is an uncompressed tar (wheels are already compressed)::

    manifest.json          first member: app, version, release id, target, files
    manifest.json.sig      optional, second: its signature (ssh-keygen -Y sign)
    engine.pyz             this engine, as a zipapp: the artifact installs itself
    requirements.lock      every wheel pinned by the sha256 of its bytes
    wheels/*.whl           the app wheel and every dependency, for the target only
    bytecode/*.zip         optional: per wheel, its .pyc for the target's Python
    tools/uv-*.whl         optional: uv for fast offline installs
    app.pex                optional (format "pex"): the service as a --venv pex
    sbom.cdx.json          the CycloneDX SBOM of exactly the shipped wheels

Nothing here trusts the tar: every member must be a regular file listed in the
manifest with a safe relative name, and its bytes must match the listed hash. The
signature is the one member the manifest cannot list; it signs the manifest's bytes,
whose hashes bind every other member (``signature.py`` checks it).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from typing import IO, Callable, Dict, Iterator, List, Optional, Set, Tuple

from deployer.errors import ArtifactError
from deployer.host.contract import SIGNATURE_MEMBER
from deployer.host.patterns import RELEASE_ID

MANIFEST = "manifest.json"
ENGINE = "engine.pyz"
LOCK = "requirements.lock"
SBOM = "sbom.cdx.json"
MANIFEST_SCHEMA = 1
_CHUNK = 1 << 20
#: a signature is a few hundred bytes; anything much larger is not one
MAX_SIGNATURE = 64 << 10
_HASH_RE = re.compile(r"--hash=sha256:([0-9a-f]{64})")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$")
_REQUIRED_KEYS = (
    "schema",
    "app",
    "version",
    "release_id",
    "format",
    "target",
    "files",
    "lock",
    "engine",
    "app_wheel",
)


def check_member_name(name: str) -> None:
    """Refuse absolute paths, ``..``, empty parts and odd characters in a member name."""
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "." in parts or "" in parts or not _SAFE_NAME.match(name):
        raise ArtifactError(f"unsafe member name in artifact: {name!r}")


def check_member(member: tarfile.TarInfo) -> None:
    """Only plain files with safe names: no links, devices, fifos or directories."""
    check_member_name(member.name)
    if not member.isreg():
        kind = "link" if (member.issym() or member.islnk()) else "non-regular member"
        raise ArtifactError(f"refusing {kind} in artifact: {member.name!r}")


def _open(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such artifact") from None
    except (tarfile.TarError, OSError) as e:
        raise ArtifactError(f"{path}: not a readable artifact tar ({e})") from None


@dataclass(frozen=True)
class SignedManifest:
    """The manifest, its exact bytes (what a signature signs) and its signature, if any."""

    manifest: dict
    text: bytes
    signature: Optional[bytes]


def read_manifest(path: str) -> dict:
    """The manifest of an artifact (its first member), checked for shape only."""
    return read_signed(path).manifest


def read_signed(path: str) -> SignedManifest:
    """The manifest (checked for shape only), its bytes, and the signature that follows it."""
    with _open(path) as tar:
        try:
            first = tar.next()
        except tarfile.TarError as e:
            raise ArtifactError(f"{path}: damaged tar ({e})") from None
        if first is None or first.name != MANIFEST:
            raise ArtifactError(f"{path}: first member is not {MANIFEST}")
        text = _member_bytes(path, tar, first)
        try:
            manifest = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON ({e})") from None
        signature = None
        try:
            second = tar.next()
        except tarfile.TarError as e:
            raise ArtifactError(f"{path}: damaged tar ({e})") from None
        if second is not None and second.name == SIGNATURE_MEMBER:
            if second.size > MAX_SIGNATURE:
                raise ArtifactError(f"{path}: {SIGNATURE_MEMBER} is {second.size} bytes: not a signature")
            signature = _member_bytes(path, tar, second)
    return SignedManifest(validate_manifest_shape(manifest, path), text, signature)


def _member_bytes(path: str, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    check_member(member)
    f = tar.extractfile(member)
    if f is None:
        raise ArtifactError(f"{path}: {member.name} is not a file")
    try:
        return f.read()
    except (tarfile.TarError, OSError) as e:
        raise ArtifactError(f"{path}: {member.name} cannot be read ({e})") from None


def validate_manifest_shape(manifest: object, where: str) -> dict:
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{where}: {MANIFEST} is not an object")
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ArtifactError(f"{where}: {MANIFEST} lacks {', '.join(missing)}")
    if manifest["schema"] != MANIFEST_SCHEMA:
        raise ArtifactError(
            f"{where}: manifest schema {manifest['schema']} is not supported "
            f"(this engine reads {MANIFEST_SCHEMA})"
        )
    if not isinstance(manifest["release_id"], str) or not RELEASE_ID.match(manifest["release_id"]):
        raise ArtifactError(f"{where}: {MANIFEST} has a malformed release id {manifest['release_id']!r}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{where}: {MANIFEST} has no files")
    for name, meta in files.items():
        check_member_name(name)
        if name in (MANIFEST, SIGNATURE_MEMBER):
            raise ArtifactError(f"{where}: {MANIFEST} lists {name} among its files")
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("size"), int)
            and re.fullmatch(r"[0-9a-f]{64}", str(meta.get("sha256", "")))
        ):
            raise ArtifactError(f"{where}: {MANIFEST} entry {name!r} needs size and sha256")
    for key in ("lock", "engine", "app_wheel"):
        if manifest[key] not in files:
            raise ArtifactError(
                f"{where}: {MANIFEST} names {key} {manifest[key]!r}, which is not among its files"
            )
    return manifest


def iter_verified(
    path: str,
    may_lack: Optional[Callable[[str, dict], bool]] = None,
    hashed: Optional[Callable[[str, dict], bool]] = None,
) -> Iterator[Tuple[tarfile.TarInfo, _HashingReader, dict]]:
    """Walk the artifact, yielding (member, reader, manifest) for each listed file.

    The reader is positioned at the member's data; callers may copy it out. Its hash
    is checked after the caller is done, so a tampered member is refused before the
    walk ends - callers must not *use* what they copied until the walk finishes.
    ``may_lack(name, meta)`` says which listed files a thin upload may leave out
    (because the host already holds them, verified, in its cache). ``hashed(name,
    manifest)``: which members to yield and hash; the others are only checked for being
    listed, present once and of the right size (the default: all are hashed).
    """
    manifest = read_manifest(path)
    expected: Dict[str, dict] = manifest["files"]
    seen: Set[str] = set()
    with _open(path) as tar:
        try:
            for member in tar:
                meta = _listed_entry(path, member, expected, seen)
                if meta is None or (hashed is not None and not hashed(member.name, manifest)):
                    continue
                reader = _HashingReader(tar.extractfile(member))
                yield member, reader, manifest
                reader.drain()
                if reader.hexdigest() != meta["sha256"]:
                    raise ArtifactError(
                        f"{path}: {member.name}: sha256 does not match the manifest (tampered or damaged)"
                    )
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ArtifactError(f"{path}: truncated or damaged ({e})") from None
    _check_complete(path, expected, seen, may_lack)


def _listed_entry(
    path: str, member: tarfile.TarInfo, expected: Dict[str, dict], seen: Set[str]
) -> Optional[dict]:
    """The manifest entry of ``member``: a safe file, listed, seen once, of the listed size.

    None for the manifest itself, which may appear once, and for its signature, which
    may follow it once. ``seen`` gets the member's name.
    """
    check_member(member)
    if member.name == MANIFEST:
        if seen:
            raise ArtifactError(f"{path}: {MANIFEST} appears twice")
        seen.add(MANIFEST)
        return None
    if member.name == SIGNATURE_MEMBER:
        if seen != {MANIFEST}:
            raise ArtifactError(f"{path}: {SIGNATURE_MEMBER} may only follow {MANIFEST}, once")
        seen.add(SIGNATURE_MEMBER)
        return None
    meta = expected.get(member.name)
    if meta is None:
        raise ArtifactError(f"{path}: member {member.name!r} is not in the manifest")
    if member.name in seen:
        raise ArtifactError(f"{path}: member {member.name!r} appears twice")
    seen.add(member.name)
    if member.size != meta["size"]:
        raise ArtifactError(f"{path}: {member.name}: size {member.size}, manifest says {meta['size']}")
    return meta


def _check_complete(
    path: str, expected: Dict[str, dict], seen: Set[str], may_lack: Optional[Callable[[str, dict], bool]]
) -> None:
    """Every listed file was in the tar, except those a thin upload ``may_lack``."""
    missing = sorted(n for n in set(expected) - seen if may_lack is None or not may_lack(n, expected[n]))
    if missing:
        raise ArtifactError(
            f"{path}: truncated: missing {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )


class _HashingReader:
    def __init__(self, f: Optional[IO[bytes]]):
        if f is None:
            raise ArtifactError("an artifact member is not a regular file")
        self._f = f
        self._h = hashlib.sha256()
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        self.read_bytes += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def lock_hashes(lock_text: str) -> List[str]:
    return _HASH_RE.findall(lock_text)


def verify_artifact(path: str, hash_all: bool = True) -> dict:
    """Check the manifest, every member's hash, and that the lock pins exactly the wheels.

    ``hash_all=False`` hashes only the lock and checks the other members' presence and
    sizes: a deploy's first check, at once, while the full one runs as the hosts connect.
    Returns the manifest; raises ArtifactError with one clear line otherwise.
    """
    lock_text = None
    only_lock = None if hash_all else (lambda name, m: name == m["lock"])
    for member, reader, manifest in iter_verified(path, hashed=only_lock):
        if member.name == manifest["lock"]:
            lock_text = reader.read().decode("utf-8", errors="replace")
    wheel_hashes = {meta["sha256"] for name, meta in manifest["files"].items() if name.startswith("wheels/")}
    locked = set(lock_hashes(lock_text or ""))
    if locked != wheel_hashes:
        raise ArtifactError(
            f"{path}: {manifest['lock']} does not pin exactly the shipped wheels "
            f"({len(locked)} hashes, {len(wheel_hashes)} wheels)"
        )
    return manifest
