"""Dependencies byte-compiled once, at build time, for the target's Python.

A host installing from an empty cache would otherwise byte-compile every module of every
dependency before the switch (about 4,600 files and 3 s on two cores for the example).
Each wheel gets a *bytecode layer*: a zip of the ``.pyc`` of its ``.py`` files, named by
the source's path in site-packages. The host engine writes them beside the installed
sources with the header Python itself would write for those sources
(``deployer/host/bytecode.py``), so they are ordinary timestamp ``.pyc``.

Layers are cached by the wheel's sha256 and the interpreter's cache tag, so a build
compiles only wheels it has not seen before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from deployer.builder.archive import zip_bytes
from deployer.builder.cache import link, used
from deployer.builder.manifest import sha256_file
from deployer.builder.wheelhouse import find_build_python
from deployer.config import Platform
from deployer.errors import ArtifactError, BuildError
from deployer.host.artifact import check_member_name

#: in the cache key: layers compiled before it named their sources by position (not by content)
LAYER_FORMAT = "v2"
# wheel directories whose files land in site-packages (both are site-packages in a venv)
_SITE_DATA = ("purelib", "platlib")


def build_python(target: Platform, configured: str | None) -> str | None:
    """An interpreter of the target's version to compile with; None if this machine has none."""
    if not configured and "{}.{}".format(*sys.version_info[:2]) == target.python_version:
        return sys.executable
    try:
        return find_build_python(target, configured)
    except BuildError:
        if configured:
            raise
        return None


def interpreter_tag(python: str) -> tuple[str, str]:
    """``python``'s bytecode cache tag and magic number: (``cpython-311``, ``a70d0d0a``)."""
    if python == sys.executable:
        import importlib.util

        return sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex()
    proc = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util, sys; print("
            "sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = proc.stdout.split()
    if proc.returncode != 0 or len(found) != 2:
        raise BuildError(f"{python} cannot report its bytecode tag: {proc.stderr.strip()}")
    return found[0], found[1]


def layer_name(wheel: Path, tag: str) -> str:
    return f"{wheel.name}.{tag}.zip"


def build_layers(
    wheels: list[Path] | dict[Path, str], python: str, cache: Path, dest: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """A bytecode layer per wheel that has Python sources: (wheel file name -> layer path,
    the interpreter's ``tag`` and ``magic`` for the manifest). ``wheels``: the wheels, or
    each wheel's sha256 when the caller has it already."""
    tag, magic = interpreter_tag(python)
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    digests = wheels if isinstance(wheels, dict) else {w: sha256_file(w) for w in wheels}
    cached = {w: cache / f"{digests[w]}-{tag}-{LAYER_FORMAT}.zip" for w in wheels}
    todo = {w: digests[w] for w, layer in cached.items() if not layer.is_file()}
    if todo:
        _compile_into_cache(todo, cached, python, tag)
    layers = {}
    for wheel, layer in cached.items():
        if layer.stat().st_size > 22:  # an empty zip: nothing to compile in this wheel
            layers[wheel.name] = link(used(layer), dest / layer_name(wheel, tag))
    return layers, {"tag": tag, "magic": magic}


def _compile_into_cache(wheels: dict[Path, str], cached: dict[Path, Path], python: str, tag: str) -> None:
    """Compile ``wheels`` (path -> sha256), each into its cache entry."""
    with tempfile.TemporaryDirectory(prefix="deployer-bytecode-") as tmp:
        work = Path(tmp)
        roots = {w: digest[:16] for w, digest in wheels.items()}
        sources = {w: _extract_sources(w, work / roots[w]) for w in wheels}
        # relative paths named by the wheel's content (cwd=work): no temporary path, and
        # nothing of which other wheels were compiled with it, ends up in the bytecode, so
        # the same wheel gives the same bytes; Python names the real source when it loads it
        proc = subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", *sorted(set(roots.values()))],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode not in (0, 1):  # 1: some file did not compile; Python will at import
            raise BuildError(f"byte-compiling the dependencies failed: {proc.stderr.strip()[-400:]}")
        for wheel in wheels:
            root = work / roots[wheel]
            entries = {}
            for rel in sources[wheel]:
                src = root / rel
                pyc = src.parent / "__pycache__" / f"{src.stem}.{tag}.pyc"
                if pyc.is_file():
                    data = pyc.read_bytes()
                    # the header is the host's to write: keep the magic, drop this mtime
                    entries[rel] = data[:4] + bytes(12) + data[16:]
            _write_zip(cached[wheel], entries)


def _extract_sources(wheel: Path, root: Path) -> list[str]:
    """The wheel's ``.py`` files as laid out in site-packages; their relative paths."""
    found = []
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            rel = _site_path(name)
            if rel is None or not rel.endswith(".py"):
                continue
            try:
                check_member_name(rel)  # what the host accepts in a layer
            except ArtifactError:
                continue  # left to Python to compile at import
            target = root.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
            found.append(rel)
    return sorted(found)


def _site_path(name: str) -> str | None:
    """Where a wheel member lands relative to site-packages; None if elsewhere."""
    first, _, rest = name.partition("/")
    if first.endswith(".data"):
        kind, _, inner = rest.partition("/")
        return inner if kind in _SITE_DATA and inner else None
    return name


def _write_zip(dest: Path, entries: dict[str, bytes]) -> None:
    partial = dest.with_name(f".{dest.name}.partial")
    partial.write_bytes(zip_bytes(entries))
    os.replace(partial, dest)
