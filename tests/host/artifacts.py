"""Damaged and unsafe artifacts for failure tests."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from deployer.builder.archive import write_release_tar
from deployer.builder.manifest import file_facts, hash_lock, release_id
from deployer.builder.sign import sign
from deployer.host.artifact import MANIFEST, read_manifest, read_signed
from deployer.host.contract import SIGNATURE_MEMBER
from tests.conftest import extract


@dataclass
class Artifact:
    path: Path
    manifest: dict


def rebuild(src: Path, dest: Path, mutate) -> Artifact:
    """Extract ``src``, let ``mutate(tree)`` change files, re-hash, re-lock, re-id, re-pack."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = extract(src, Path(tmp) / "tree")
        manifest = read_manifest(str(src))
        mutate(tree)
        members = {
            p.relative_to(tree).as_posix(): p
            for p in tree.rglob("*")
            if p.is_file() and p.name != "manifest.json"
        }
        wheels = {
            Path(n).name: file_facts(p)["sha256"] for n, p in members.items() if n.startswith("wheels/")
        }
        lock = hash_lock(wheels)
        (tree / manifest["lock"]).write_text(lock)
        manifest["release_id"] = release_id(1764159300, lock, wheels)
        manifest["files"] = {n: file_facts(p) for n, p in sorted(members.items())}
        path = write_release_tar(dest, manifest, members, 1764159300)
    return Artifact(path, manifest)


def with_signature(src: Path, dest: Path, signature: bytes | None) -> Path:
    """A copy of ``src`` whose signature is ``signature`` (None: unsigned), every other
    member byte for byte."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if member.name == SIGNATURE_MEMBER:
                continue
            tout.addfile(member, tin.extractfile(member))
            if member.name == MANIFEST and signature is not None:
                info = tarfile.TarInfo(SIGNATURE_MEMBER)
                info.size, info.mode, info.mtime = len(signature), 0o644, member.mtime
                tout.addfile(info, io.BytesIO(signature))
    return dest


def signed_by(src: Path, dest: Path, key: Path) -> Path:
    """``src`` signed with ``key``, exactly as `deployer build --sign KEY` signs it."""
    return with_signature(src, dest, sign(read_signed(str(src)).text, key))


def forged(src: Path, dest: Path, mutate) -> Artifact:
    """``src`` changed by ``mutate(tree)`` with every hash, the lock and the id made to
    match, and ``src``'s signature kept: whole by its hashes, not by its signature."""
    signature = read_signed(str(src)).signature
    with tempfile.TemporaryDirectory() as tmp:
        edited = rebuild(src, Path(tmp) / "edited.tar", mutate)
        path = with_signature(edited.path, dest, signature)
    return Artifact(path, edited.manifest)


def corrupt_wheel(src: Path, dest: Path, package: str) -> Artifact:
    """The named dependency's wheel replaced by a zip that is not a valid wheel."""

    def mutate(tree: Path) -> None:
        wheel = next((tree / "wheels").glob(f"{package}-*.whl"))
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr("junk.txt", "no metadata here")

    return rebuild(src, dest, mutate)


def with_member(src: Path, dest: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A copy of ``src`` with one more member at the end (after every real one)."""
    shutil.copyfile(src, dest)
    with tarfile.open(dest, "a") as tar:
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return dest


def tampered(src: Path, dest: Path, name: str) -> Path:
    """A copy of ``src`` with one byte of member ``name`` flipped: same size, other hash."""
    shutil.copyfile(src, dest)
    with tarfile.open(dest) as tar:
        offset = tar.getmember(name).offset_data
    with open(dest, "r+b") as f:
        f.seek(offset + 100)
        byte = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    return dest
