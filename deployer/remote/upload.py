"""Thin uploads: the manifest plus only the members the host's cache lacks."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path

from deployer.host.artifact import MANIFEST


def write_thin(artifact: Path, members: Iterable[str], dest: Path) -> Path:
    """A tar with ``manifest.json`` first and the named members, copied byte for byte."""
    wanted = set(members)
    with tarfile.open(artifact) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for info in src:
            if info.name == MANIFEST or info.name in wanted:
                out.addfile(info, src.extractfile(info))
    return dest
