"""Wheel file names, distribution names and platform tags (stdlib only: the build and
the host share it)."""

from __future__ import annotations

import re
from typing import Optional, Tuple

# legacy manylinux aliases -> the glibc they stand for (PEP 600)
_LEGACY = {"1": (2, 5), "2010": (2, 12), "2014": (2, 17)}
_MANYLINUX = re.compile(r"^manylinux(?:_(\d+)_(\d+)|(1|2010|2014))_(\w+)$")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_tags(filename: str) -> Tuple[str, str, str, str, str]:
    """(name, version, python tag, abi tag, platform tag) of a wheel file name."""
    stem = filename[: -len(".whl")] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {filename}")
    name, version = parts[0], parts[1]
    py, abi, plat = parts[-3:]
    return name, version, py, abi, plat


def manylinux(plat: str) -> Optional[Tuple[str, Tuple[int, int]]]:
    """(architecture, glibc it needs) of a manylinux platform tag; None for other tags."""
    m = _MANYLINUX.match(plat)
    if not m:
        return None
    glibc = _LEGACY[m.group(3)] if m.group(3) else (int(m.group(1)), int(m.group(2)))
    return m.group(4), glibc
