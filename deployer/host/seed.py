"""A seed for a release's venv: the live release's venv, copied by hardlinks, and what the
new release changes in it (the wheels whose bytes differ, the sources they installed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List

from deployer.host.wheeltags import normalize


def clone_venv(seed: Path, dest: Path, interpreter: str) -> bool:
    """A hardlinked copy of the live release's venv at ``dest``; False if it cannot serve.

    Only ``bin/`` names the venv's own path (script shebangs, activate): those files are
    copied with the path changed; everything else, byte-compiled files included, is
    hardlinked, so an unchanged dependency costs neither space nor a recompile. Installers
    replace files rather than write into them, so the live venv is never touched.
    """
    python = seed / "bin" / "python"
    if (
        not (seed / "pyvenv.cfg").is_file()
        or not python.exists()
        or os.path.realpath(python) != os.path.realpath(interpreter)
    ):
        return False
    old, new = str(seed).encode(), str(dest).encode()
    for root, dirs, files in os.walk(seed):
        rel = Path(root).relative_to(seed)
        (dest / rel).mkdir(exist_ok=True)
        for name in dirs + files:
            src, dst = Path(root) / name, dest / rel / name
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
                if name in dirs:
                    dirs.remove(name)  # never walk into a linked directory
            elif name in dirs:
                continue
            elif rel.parts[:1] == ("bin",) or rel == Path("."):
                data = src.read_bytes()
                if old in data or rel == Path("."):  # pyvenv.cfg & co.: always a copy
                    dst.write_bytes(data.replace(old, new))
                    shutil.copymode(src, dst)
                else:
                    os.link(src, dst)
            else:
                os.link(src, dst)
    return True


#: a release's venv, in its dir
VENV = "venv"
#: in the live release's dir: a hardlinked copy of its venv, made once it is live (off the
#: way to healthy), that the next release takes as its own venv instead of copying then
SPARE = "venv-next"
_SPARE_READY = ".ready"


def make_spare(release_dir: Path, interpreter: str) -> bool:
    """The spare copy of ``release_dir``'s venv, unless it has one; False if it cannot."""
    venv, spare = release_dir / VENV, release_dir / SPARE
    if (spare / _SPARE_READY).is_file():
        return True
    shutil.rmtree(spare, ignore_errors=True)
    try:
        if not clone_venv(venv, spare, interpreter):
            return False
    except OSError:
        shutil.rmtree(spare, ignore_errors=True)
        return False
    (spare / _SPARE_READY).write_bytes(b"")
    return True


def drop_spares(releases: List[Path]) -> None:
    """The spares of releases that are not live: the next release never starts from them."""
    for release_dir in releases:
        shutil.rmtree(release_dir / SPARE, ignore_errors=True)


def take_spare(seed: Path, dest: Path) -> bool:
    """Move the spare copy of the venv ``seed`` to ``dest``, naming ``dest`` where it named
    itself (``bin/`` and ``pyvenv.cfg``); False if there is no whole spare."""
    spare = seed.parent / SPARE
    if not (spare / _SPARE_READY).is_file() or dest.exists():
        return False
    try:
        (spare / _SPARE_READY).unlink()
        os.rename(spare, dest)
    except OSError:
        shutil.rmtree(spare, ignore_errors=True)
        return False
    old, new = str(spare).encode(), str(dest).encode()
    try:
        for path in [*(dest / "bin").iterdir(), *(p for p in dest.iterdir() if p.is_file())]:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if old in data:  # a copy of its own (clone_venv copies what names the venv): rewritten whole
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_bytes(data.replace(old, new))
                shutil.copymode(path, tmp)
                os.replace(tmp, path)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)  # the caller makes the venv another way
        return False
    return True


def changed_wheels(seed_manifest: Path, manifest: dict) -> List[str]:
    """Wheel members whose bytes differ from the seed release's (or that it lacks)."""
    try:
        before = json.loads(seed_manifest.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError):
        before = {}
    old = {(n, m.get("sha256")) for n, m in before.items()}
    return sorted(
        n for n, m in manifest["files"].items() if n.startswith("wheels/") and (n, m["sha256"]) not in old
    )


def dist_name(wheel: str) -> str:
    """The distribution a wheel member installs (``wheels/aiohttp-3.9-...whl`` -> ``aiohttp``)."""
    return Path(wheel).name.split("-")[0]


def changed_sources(venv: Path, names: List[str]) -> List[str]:
    """The .py files the distributions ``names`` installed into ``venv`` (from RECORD)."""
    wanted = {normalize(n) for n in names}
    files = []
    for info in venv.glob("lib/python3*/site-packages/*.dist-info"):
        if normalize(info.name[: -len(".dist-info")].rsplit("-", 1)[0]) not in wanted:
            continue
        try:
            record = (info / "RECORD").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in record.splitlines():
            path = line.split(",", 1)[0]
            if path.endswith(".py") and not path.startswith(".."):
                files.append(str(info.parent / path))
    return sorted(files)
