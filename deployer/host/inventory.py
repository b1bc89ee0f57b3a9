"""What a release is made of, as data a diff can compare (stdlib only).

The controller takes the inventory of an artifact (from its tar), the engine that of a
release it keeps (from ``releases/<id>/`` and its member cache); ``deployer diff``
compares two. It names, never runs or imports anything:

- every wheel: its name, version, file, sha256 and the ``.pth`` files it installs into
  site-packages (each runs at every interpreter start), with their sha256;
- the service's own files (its wheel's, outside ``*.dist-info/``), each with its sha256;
- the templates it carries (``packaging/*``), as text: the unit and the launcher;
- the host config it carries, and the ``.env`` keys it names (``[env] required`` and
  ``public``); the engine adds the keys of the ``.env`` the release ran with. Names only:
  no value of a ``.env`` is ever read into an inventory.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import zipfile
from contextlib import contextmanager
from typing import IO, Callable, ContextManager, Dict, Iterator, Optional

from deployer.errors import ArtifactError, HostError
from deployer.host.envfile import env_keys, env_text, release_env_sha
from deployer.host.layout import Layout
from deployer.host.state import release_manifest
from deployer.host.unpack import cache_entry_ok, is_cache_only
from deployer.host.wheeltags import normalize, wheel_tags

#: opens an artifact member by name, as a seekable binary file
Opener = Callable[[str], ContextManager[IO[bytes]]]

#: a wheel's folders whose contents install into site-packages itself
_ROOT_DATA = re.compile(r"^[^/]+\.data/(purelib|platlib)/")
_CHUNK = 1 << 20


def _sha256(f: IO[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def site_path(entry: str) -> str:
    """Where a wheel entry lands relative to site-packages (``x.data/purelib/a`` -> ``a``)."""
    return _ROOT_DATA.sub("", entry)


def read_wheel(f: IO[bytes], where: str, with_files: bool = False) -> dict:
    """The ``.pth`` files of one wheel (and, ``with_files``, all its files but the
    dist-info), each with its sha256."""
    try:
        with zipfile.ZipFile(f) as z:
            entries = [i for i in z.infolist() if not i.is_dir()]
            pth = {}
            files = {}
            for info in entries:
                path = site_path(info.filename)
                is_pth = "/" not in path and path.endswith(".pth")
                own = with_files and not path.split("/", 1)[0].endswith(".dist-info")
                if is_pth or own:
                    with z.open(info) as data:
                        digest = _sha256(data)
                    if is_pth:
                        pth[path] = digest
                    if own:
                        files[path] = digest
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ArtifactError(f"{where}: not a readable wheel ({e})") from None
    return {"pth": pth, "files": files} if with_files else {"pth": pth}


def inventory(manifest: dict, open_member: Opener) -> dict:
    """The inventory of a release (see the module's docstring) from its manifest and its
    members, opened by ``open_member``."""
    files: Dict[str, dict] = manifest["files"]
    config = dict(manifest.get("config") or {})
    wheels: Dict[str, dict] = {}
    app: Optional[dict] = None
    for member in sorted(n for n in files if n.startswith("wheels/")):
        filename = posixpath.basename(member)
        name, version = wheel_tags(filename)[:2]
        is_app = member == manifest["app_wheel"]
        with open_member(member) as f:
            found = read_wheel(f, member, with_files=is_app)
        entry = {
            "name": normalize(name),
            "version": version,
            "file": filename,
            "sha256": files[member]["sha256"],
            **found,
        }
        if is_app:
            app = entry
        else:
            wheels[entry["name"]] = entry
    templates = {}
    for member in sorted(n for n in files if n.startswith("packaging/")):
        with open_member(member) as f:
            templates[member] = f.read().decode("utf-8", errors="replace")
    return {
        "app": manifest["app"],
        "version": manifest["version"],
        "release_id": manifest["release_id"],
        "format": manifest["format"],
        "git": manifest.get("git") or {},
        "app_wheel": app,
        "dependencies": wheels,
        "templates": templates,
        "env": {
            "required": sorted(config.pop("env_required", None) or []),
            "public": sorted(config.pop("env_public", None) or []),
            "keys": None,  # the keys of the .env the release ran with: known on a host only
        },
        "config": config,
    }


def tar_opener(tar) -> Opener:
    """``open_member`` over an open ``tarfile.TarFile``."""

    @contextmanager
    def open_member(name: str) -> Iterator[IO[bytes]]:
        f = tar.extractfile(name)
        if f is None:
            raise ArtifactError(f"{name} is not a file")
        with f:
            yield f

    return open_member


def release_inventory(layout: Layout, rid: str) -> dict:
    """The inventory of release ``rid`` on this host: its manifest, the members its
    release folder and the member cache hold (each checked against its sha256), and the
    keys of the ``.env`` it last ran with (None when it never ran or that .env is gone)."""
    release = layout.release(rid)
    manifest = release_manifest(release)
    if not manifest.get("files"):
        raise HostError(f"release {rid} is not on this host")
    files = manifest["files"]

    @contextmanager
    def open_member(name: str) -> Iterator[IO[bytes]]:
        path = layout.cached(name, files[name]) if is_cache_only(name) else release / name
        if not cache_entry_ok(path, files[name]):
            raise HostError(f"release {rid}: {name} is no longer on this host (pruned or damaged)")
        with open(path, "rb") as f:
            yield f

    found = inventory(manifest, open_member)
    text = env_text(layout, release_env_sha(release))
    found["env"]["keys"] = sorted(set(env_keys(text))) if text is not None else None
    return found
