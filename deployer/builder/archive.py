"""Byte-reproducible containers: the release tar and the engine zipapp."""

from __future__ import annotations

import io
import json
import marshal
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from deployer.errors import BuildError
from deployer.host.artifact import MANIFEST
from deployer.host.contract import SIGNATURE_MEMBER

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _tarinfo(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def manifest_bytes(manifest: dict) -> bytes:
    """``manifest.json`` as it is written into the tar: exactly the bytes a signature signs."""
    return (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()


def write_release_tar(
    dest: Path,
    manifest: dict,
    files: dict[str, Path],
    mtime: int,
    signer: Callable[[bytes], bytes] | None = None,
) -> Path:
    """manifest.json first, then its signature (``signer(manifest bytes)``, if given), then
    every file in name order; fixed owners, modes and mtimes.

    Written to ``dest.partial`` and renamed into place, so ``dest`` is always complete.
    """
    partial = dest.with_name(dest.name + ".partial")
    data = manifest_bytes(manifest)
    signature = signer(data) if signer is not None else None
    with open(partial, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(MANIFEST, len(data), 0o644, mtime), io.BytesIO(data))
        if signature is not None:
            tar.addfile(_tarinfo(SIGNATURE_MEMBER, len(signature), 0o644, mtime), io.BytesIO(signature))
        for name in sorted(files):
            path = files[name]
            mode = 0o755 if os.access(path, os.X_OK) and name.endswith(".pyz") else 0o644
            with open(path, "rb") as f:
                tar.addfile(_tarinfo(name, path.stat().st_size, mode, mtime), f)
    os.replace(partial, dest)
    return dest


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip of ``entries`` (name -> data): sorted, fixed timestamps and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, entries[name])
    return buf.getvalue()


def write_zipapp(dest: Path, root: Path, names: list[str], main: str, compiled: bool = False) -> Path:
    """A zipapp of the files ``names`` (paths under ``root``), deterministic.

    ``main`` is the text of ``__main__.py``. Timestamps are fixed and entries sorted,
    so the same source gives the same bytes. ``compiled``: each module's ``.pyc`` beside
    it, for this interpreter (see :func:`module_pycs`).
    """
    entries: dict[str, bytes] = {"__main__.py": main.encode()}
    sources = {name: (root / name).read_bytes() for name in names}
    entries.update(sources)
    if compiled:
        entries.update({name + "c": pyc for name, pyc in module_pycs(sources).items()})
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(b"#!/usr/bin/env python3\n" + zip_bytes(entries))
    partial.chmod(0o755)
    os.replace(partial, dest)
    return dest


#: what compiles ``module_pycs`` in a fresh interpreter: sources in, ``.pyc`` out (marshal)
_COMPILE_PYCS = """
import importlib.util, marshal, sys
sources = marshal.loads(sys.stdin.buffer.read())
pycs = {}
for name in sorted(sources):
    code = compile(sources[name], name, "exec", dont_inherit=True)
    flags = 0b11  # hash-based, checked
    pycs[name] = importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(
        sources[name]
    ) + marshal.dumps(code)
sys.stdout.buffer.write(marshal.dumps(pycs))
"""


def module_pycs(sources: dict[str, bytes]) -> dict[str, bytes]:
    """Each source (by name) compiled by this interpreter as a checked hash-based ``.pyc``
    (PEP 552).

    zipimport never writes bytecode, so a zipapp of sources is compiled again at every
    start; it takes ``name.pyc`` beside ``name.py`` when its magic number is the
    interpreter's, checks it against the source's hash, and compiles the source otherwise
    (another Python on the host costs time, never correctness). No timestamp, and compiled
    in a fresh interpreter (``-I -S``, ``PYTHONHASHSEED=0``): what marshal writes depends on
    the process it runs in (a one-character string another module interned is written as
    interned, a set's order follows the hash seed), so the same sources give the same bytes
    whatever the build did before."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _COMPILE_PYCS],
        input=marshal.dumps(sources),
        capture_output=True,
        env={"PYTHONHASHSEED": "0"},
        timeout=300,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BuildError(f"compiling the engine's modules failed: {tail[0]}")
    return marshal.loads(proc.stdout)


def module_pyc(source: bytes, name: str) -> bytes:
    """``source`` alone compiled as :func:`module_pycs` does."""
    return module_pycs({name: source})[name]
