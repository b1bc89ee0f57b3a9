"""Thin uploads: the manifest plus only the members the host's cache lacks."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Iterable

from deployer.host.artifact import MANIFEST, iter_verified


def write_thin(artifact: Path, members: Iterable[str], dest: Path) -> Path:
    """A tar with ``manifest.json`` first and the named members, copied byte for byte.

    Each member's hash is checked against the manifest as it is copied: a damaged
    artifact is refused here, before anything is sent.
    """
    wanted = set(members)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        with tarfile.open(artifact) as src:
            first = src.next()
            assert first is not None and first.name == MANIFEST  # checked by verify_artifact
            out.addfile(first, src.extractfile(first))
        for member, reader, _ in iter_verified(str(artifact),
                                               hashed=lambda name, m: name in wanted):
            out.addfile(member, reader)
    return dest
