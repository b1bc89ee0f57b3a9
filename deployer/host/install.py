"""The release's venv: created at its final path, installed offline, checked, smoke-tested.

uv when the artifact carries it (its cache under the base path so hardlinks work),
pip otherwise; a pex artifact becomes the same ``venv/`` through ``PEX_TOOLS``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from deployer.errors import InstallError
from deployer.host import bytecode
from deployer.host.layout import Layout
from deployer.host.proc import log_line, run_logged
from deployer.host.unpack import link_wheelhouse

VENV = "venv"


def venv_python(release_dir: Path) -> Path:
    return release_dir / VENV / "bin" / "python"


def base_env(layout: Layout) -> Dict[str, str]:
    """A minimal, predictable environment for installers: no user config, no index."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(layout.base)),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_CACHE_DIR": str(layout.uv_cache),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "UV_OFFLINE": "1",
        "UV_LINK_MODE": "hardlink",
        "UV_NO_CONFIG": "1",
        "PEX_ROOT": str(layout.pex_root),
    }


def uv_binary(layout: Layout, manifest: dict) -> Optional[Path]:
    """Extract uv from its wheel in the cache (once per version); None if not shipped."""
    name = manifest.get("uv_wheel")
    if not name:
        return None
    meta = manifest["files"][name]
    wheel = layout.cached(name, meta)
    dest_dir = layout.tool_dir(meta["sha256"])
    uv = dest_dir / "uv"
    if uv.is_file() and os.access(uv, os.X_OK):
        return uv
    dest_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        member = next((n for n in z.namelist() if n.endswith(".data/scripts/uv")), None)
        if member is None:
            return None
        tmp = dest_dir / ".uv.tmp"
        with z.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o755)  # zipfile does not restore the exec bit
        os.replace(tmp, uv)
    return uv


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


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def changed_sources(venv: Path, names: List[str]) -> List[str]:
    """The .py files the distributions ``names`` installed into ``venv`` (from RECORD)."""
    wanted = {_normalize(n) for n in names}
    files = []
    for info in venv.glob("lib/python3*/site-packages/*.dist-info"):
        if _normalize(info.name[: -len(".dist-info")].rsplit("-", 1)[0]) not in wanted:
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


def _try_clone(seed: Path, venv: Path, interpreter: str) -> bool:
    try:
        return clone_venv(seed, venv, interpreter)
    except OSError:  # e.g. another filesystem: build from scratch instead
        shutil.rmtree(venv, ignore_errors=True)
        return False


def build_venv(
    layout: Layout,
    release_dir: Path,
    manifest: dict,
    interpreter: str,
    log: Path,
    abort: Optional[threading.Event] = None,
    seed: Optional[Path] = None,
) -> str:
    """Create ``venv/`` and install the release into it; returns how.

    ``seed``: the live release's venv. With uv, the new venv starts as its hardlinked
    copy and ``uv pip sync`` changes only what the lock changes.
    """
    venv = release_dir / VENV
    if venv.exists():
        shutil.rmtree(venv)
    env = base_env(layout)
    lock = str(release_dir / manifest["lock"])
    run = _runner(log, env, release_dir, abort)
    if manifest.get("format") == "pex" and manifest.get("pex"):
        run(
            [interpreter, str(release_dir / manifest["pex"]), "venv", "--compile", str(venv)],
            "turning app.pex into the venv",
            {"PEX_TOOLS": "1"},
        )
        return "pex"
    house = str(link_wheelhouse(layout, manifest))
    uv = uv_binary(layout, manifest)
    python = venv_python(release_dir)
    t0 = time.monotonic()
    if uv is not None and seed is not None and _try_clone(seed, venv, interpreter):
        log_line(log, f"# hardlinked copy of {seed} in {time.monotonic() - t0:.2f}s")
        # installed distributions are trusted by version: make uv replace every one whose
        # wheel is not byte for byte what the live release installed
        changed = changed_wheels(seed.parent / "manifest.json", manifest)
        reinstall = [arg for w in changed for arg in ("--reinstall-package", dist_name(w))]
        run(
            [
                str(uv),
                "pip",
                "sync",
                "--python",
                str(python),
                "--offline",
                "--no-index",
                "--find-links",
                house,
                "--require-hashes",
                *reinstall,
                lock,
            ],
            "installing dependencies",
        )
        # the hardlinked .pyc of everything else are valid already
        return "uv, from a hardlinked copy of the live venv" + _byte_compile(
            layout, manifest, python, changed, run, bytecode.fitting(manifest, python), log
        )
    if uv is not None:
        run([str(uv), "venv", "--quiet", "--python", interpreter, str(venv)], "creating the venv")
        py = bytecode.fitting(manifest, python)
        run(
            [
                str(uv),
                "pip",
                "install",
                "--python",
                str(python),
                "--offline",
                "--no-index",
                "--find-links",
                house,
                "--require-hashes",
                "--no-deps",
                *([] if py else ["--compile-bytecode"]),
                "-r",
                lock,
            ],
            "installing dependencies",
        )
        wheels = [n for n in manifest["files"] if n.startswith("wheels/")]
        return "uv" + (_byte_compile(layout, manifest, python, wheels, run, py, log) if py else "")
    run([interpreter, "-m", "venv", str(venv)], "creating the venv")
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            house,
            "--require-hashes",
            "--no-deps",
            "-r",
            lock,
        ],
        "installing dependencies",
    )
    return "pip"


def _byte_compile(
    layout: Layout,
    manifest: dict,
    python: Path,
    wheels: List[str],
    run,
    py: Optional[bytecode.Interpreter],
    log: Path,
) -> str:
    """``.pyc`` for what ``wheels`` installed: the artifact's bytecode layers when they fit
    the venv's Python (``py``), ``compileall`` for the rest. Says how many layers served."""
    layers = bytecode.layers(manifest) if py else {}
    left, written, t0 = [], 0, time.monotonic()
    for wheel in wheels:
        layer = layers.get(wheel)
        meta = manifest["files"].get(layer) if layer else None
        n = 0
        if layer is not None and meta is not None and py is not None:
            n = bytecode.apply_layer(layout.cached(layer, meta), py)
        if n == 0:  # no layer, or its sources are not where this Python looks: compile here
            left.append(wheel)
        written += n
    if written:
        log_line(
            log,
            f"# {written} .pyc from {len(wheels) - len(left)} bytecode layers "
            f"in {time.monotonic() - t0:.2f}s",
        )
    files = changed_sources(python.parent.parent, [dist_name(w) for w in left])
    if files:
        run([str(python), "-m", "compileall", "-q", *files], "byte-compiling")
    served = len(wheels) - len(left)
    return f", bytecode of {served} wheels from the artifact" if served else ""


def check_venv(
    layout: Layout,
    release_dir: Path,
    manifest: dict,
    installer: str,
    log: Path,
    abort: Optional[threading.Event] = None,
) -> None:
    """``pip check``: every installed distribution has what it requires."""
    env = base_env(layout)
    run = _runner(log, env, release_dir, abort)
    python = str(venv_python(release_dir))
    uv = uv_binary(layout, manifest) if installer.startswith("uv") else None
    if uv is not None:
        run([str(uv), "pip", "check", "--python", python], "pip check")
    elif _has_pip(release_dir):
        run([python, "-m", "pip", "check"], "pip check")


def _has_pip(release_dir: Path) -> bool:
    return any((release_dir / VENV / "lib").glob("python3*/site-packages/pip"))


def smoke(
    release_dir: Path, command: List[str], timeout: float, log: Path, abort: Optional[threading.Event] = None
) -> None:
    """The smoke command with an EMPTY environment: never the production .env."""
    python = str(venv_python(release_dir))
    argv = [python if part == "{python}" else part.replace("{python}", python) for part in command]
    run_logged(
        argv,
        log,
        what="smoke test",
        env={},
        cwd=release_dir,
        timeout=timeout,
        abort=abort,
        error=InstallError,
    )


def _runner(log: Path, env: Dict[str, str], cwd: Path, abort):
    def run(argv: List[str], what: str, extra: Optional[Dict[str, str]] = None) -> None:
        run_logged(
            argv, log, what=what, env={**env, **(extra or {})}, cwd=cwd, abort=abort, error=InstallError
        )

    return run
