"""The artifact's bytecode layers, written beside the installed sources (stdlib only).

The build byte-compiles each wheel once for the target's Python
(``deployer/builder/bytecode.py``). Here every ``.pyc`` gets the header Python itself would
write for the installed source: its magic number, flags 0, the source's mtime and size.
The result is an ordinary timestamp ``.pyc``: used while the source is unchanged,
recompiled by Python on import if anyone edits the source. Only the code object comes
from the build, and Python names the real source file when it loads it.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Dict, NamedTuple, Optional

from deployer.errors import HostError
from deployer.host.artifact import check_member_name
from deployer.host.proc import run

HEADER = 16  # magic, flags, source mtime, source size


class Interpreter(NamedTuple):
    """What a venv's Python needs from a ``.pyc``: magic, cache tag, and where site-packages is."""

    magic: bytes
    tag: str
    site: Path


def interpreter(python: Path) -> Optional[Interpreter]:
    """Ask the venv's Python; None if it cannot tell (then the host compiles as before)."""
    code = (
        "import importlib.util, json, sys, sysconfig; print(json.dumps(["
        "importlib.util.MAGIC_NUMBER.hex(), sys.implementation.cache_tag, "
        "sysconfig.get_path('purelib')]))"
    )
    try:
        proc = run([str(python), "-I", "-c", code], timeout=60, env={})
        magic, tag, site = json.loads(proc.stdout)
        return Interpreter(bytes.fromhex(magic), tag, Path(site))
    except (HostError, ValueError, TypeError):
        return None


def layers(manifest: dict) -> Dict[str, str]:
    """Wheel member -> its bytecode layer member (none in older or pex artifacts)."""
    return (manifest.get("bytecode") or {}).get("layers", {})


def fitting(manifest: dict, python: Path) -> Optional[Interpreter]:
    """The venv's Python if the artifact's layers were compiled for it, else None."""
    meta = manifest.get("bytecode") or {}
    if not meta.get("layers"):
        return None
    py = interpreter(python)
    if py is None or (py.tag, py.magic.hex()) != (meta.get("tag"), meta.get("magic")):
        return None
    return py


def apply_layer(layer: Path, py: Interpreter) -> int:
    """Write ``layer``'s ``.pyc`` for the sources installed under site-packages.

    A source that is not installed (or not a regular file) is skipped, and so is a
    ``.pyc`` of another Python (which ``fitting`` has ruled out). Returns how many it wrote.
    """
    suffix = f".{py.tag}.pyc"
    written = 0
    made = set()
    with zipfile.ZipFile(layer) as z:
        for info in z.infolist():
            check_member_name(info.filename)
            source = py.site / info.filename
            try:
                st = os.lstat(source)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            data = z.read(info)
            if data[:4] != py.magic:
                continue
            cache = source.parent / "__pycache__"
            if cache not in made:
                cache.mkdir(exist_ok=True)
                made.add(cache)
            _write(cache / (source.stem + suffix), _header(py.magic, st) + data[HEADER:])
            written += 1
    return written


def _header(magic: bytes, st: os.stat_result) -> bytes:
    # what importlib's _code_to_timestamp_pyc writes for this source
    return (
        magic
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )


def _write(path: Path, data: bytes) -> None:
    """Always a new inode: a ``.pyc`` of a cloned venv is a hardlink the live venv shares.

    The venv is not live yet, so nothing imports from it between unlink and create.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
