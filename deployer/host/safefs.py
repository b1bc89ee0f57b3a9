"""Root acting inside a tree another user controls, never through a link they planted.

The deploy user owns the app's base path and its home; anything it can write may be a
symlink, a FIFO or a hard link to a root-owned file by the time root gets there. So root
opens every path component with ``O_NOFOLLOW`` relative to the directory it already
holds open, refuses anything that is not what it expects, and then acts through the
file descriptor (``fchown``, ``fchmod``, ``os.replace`` with ``dir_fd``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import List, Optional, Tuple

from deployer.errors import HostError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(path: Path, what: str) -> HostError:
    return HostError(f"{path} is {what}: root does not follow or change it; remove it and run setup again")


def open_dir_at(dir_fd: int, name: str, path: Path, create: Optional[int] = None) -> Tuple[int, bool]:
    """Open directory ``name`` below ``dir_fd`` without following a link; (fd, created).

    ``create``: the mode to make it with when it is missing (else FileNotFoundError)."""
    created = False
    try:
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        if create is None:
            raise
        os.mkdir(name, create, dir_fd=dir_fd)
        fd, created = os.open(name, _DIR, dir_fd=dir_fd), True
    except OSError as e:  # ELOOP: a symlink; ENOTDIR: a file, FIFO, ...
        kind = "a symbolic link" if os.path.islink(path) else "not a directory"
        raise _refuse(path, kind) from e
    return fd, created


def open_root_owned_path(path: Path, create: Optional[int] = None) -> Tuple[int, bool]:
    """Open absolute directory ``path``: every folder above it must be root's and not
    writable by others (else whoever can write there can swap ``path``)."""
    fd = os.open("/", _DIR)
    current = Path("/")
    parts = path.parts[1:]
    try:
        for i, part in enumerate(parts):
            st = os.fstat(fd)
            if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
                raise HostError(
                    f"{current} is not root's alone (owner uid {st.st_uid}): {path} cannot live below it"
                )
            current = current / part
            last = i == len(parts) - 1
            nfd, created = open_dir_at(fd, part, current, create if last else 0o755)
            os.close(fd)
            fd = nfd
        return fd, bool(parts) and created
    except BaseException:
        os.close(fd)
        raise


def ensure_tree(base_fd: int, base: Path, rel: str, mode: int) -> Tuple[int, List[Path]]:
    """``mkdir -p base/rel`` below an open ``base``, link-safe; (fd of the last, created)."""
    fd, path, made = os.dup(base_fd), base, []
    try:
        for part in rel.split("/"):
            path = path / part
            nfd, created = open_dir_at(fd, part, path, mode)
            os.close(fd)
            fd = nfd
            if created:
                made.append(path)
        return fd, made
    except BaseException:
        os.close(fd)
        raise


def give(fd: int, uid: int, gid: int, mode: Optional[int] = None) -> bool:
    """Make the open file ``uid:gid`` (and ``mode``); True when that changed anything."""
    st = os.fstat(fd)
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
        changed = True
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
        changed = True
    return changed


def read_private(dir_fd: int, name: str, path: Path, owner: int) -> Optional[str]:
    """The text of regular file ``name`` (None if missing), refusing links, FIFOs and
    hard links to anything else (a second name of ``/etc/shadow`` reads as root's)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _refuse(path, "a symbolic link") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "not a regular file")
        if st.st_nlink != 1 or st.st_uid not in (0, owner):
            raise _refuse(path, f"a hard link or someone else's file (links {st.st_nlink}, uid {st.st_uid})")
        return f.read().decode("utf-8", errors="replace")


def write_private(dir_fd: int, name: str, text: str, uid: int, gid: int, mode: int) -> None:
    """Replace ``name`` below ``dir_fd`` atomically with ``text``: a fresh file of a random
    name made with ``O_EXCL|O_NOFOLLOW``, owned and moded through its descriptor."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
