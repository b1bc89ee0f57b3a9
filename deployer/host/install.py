"""The release's venv: created at its final path, installed offline, checked, smoke-tested.

uv when the artifact carries it (its cache under the base path so hardlinks work),
pip otherwise; a pex artifact becomes the same ``venv/`` through ``PEX_TOOLS``. With uv
and a live release, the venv starts as a hardlinked copy of the live one (``seed.py``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from deployer.errors import InstallError
from deployer.host import bytecode
from deployer.host.layout import Layout
from deployer.host.proc import log_line, run_logged
from deployer.host.seed import VENV, changed_sources, changed_wheels, clone_venv, dist_name, take_spare
from deployer.host.unpack import link_wheelhouse


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
    offline = _OfflineInstall(layout, manifest, venv_python(release_dir), house, lock, run, log)
    t0 = time.monotonic()
    if uv is not None and seed is not None and take_spare(seed, venv):
        log_line(log, f"# the spare hardlinked copy of {seed}, taken in {time.monotonic() - t0:.2f}s")
        return offline.uv_sync_seeded(uv, seed)
    if uv is not None and seed is not None and _try_clone(seed, venv, interpreter):
        log_line(log, f"# hardlinked copy of {seed} in {time.monotonic() - t0:.2f}s")
        return offline.uv_sync_seeded(uv, seed)
    if uv is not None:
        return offline.uv_install(uv, interpreter, venv)
    return offline.pip_install(interpreter, venv)


@dataclass(frozen=True)
class _OfflineInstall:
    """The release's wheels into its venv from the local wheelhouse, every hash checked."""

    layout: Layout
    manifest: dict
    python: Path  # the venv's interpreter
    house: str  # the wheelhouse: the release's wheels, linked from the cache
    lock: str
    run: Callable[..., None]
    log: Path

    def uv_sync_seeded(self, uv: Path, seed: Path) -> str:
        """``uv pip sync`` over the hardlinked copy of ``seed``: only what the lock changes."""
        # installed distributions are trusted by version: make uv replace every one whose
        # wheel is not byte for byte what the live release installed
        changed = changed_wheels(seed.parent / "manifest.json", self.manifest)
        reinstall = [arg for w in changed for arg in ("--reinstall-package", dist_name(w))]
        self.run(
            [
                str(uv),
                "pip",
                "sync",
                "--python",
                str(self.python),
                "--offline",
                "--no-index",
                "--find-links",
                self.house,
                "--require-hashes",
                *reinstall,
                self.lock,
            ],
            "installing dependencies",
        )
        # the hardlinked .pyc of everything else are valid already
        return "uv, from a hardlinked copy of the live venv" + self.byte_compile(
            changed, bytecode.fitting(self.manifest, self.python)
        )

    def uv_install(self, uv: Path, interpreter: str, venv: Path) -> str:
        """A new venv by uv, every wheel installed into it."""
        self.run([str(uv), "venv", "--quiet", "--python", interpreter, str(venv)], "creating the venv")
        py = bytecode.fitting(self.manifest, self.python)
        self.run(
            [
                str(uv),
                "pip",
                "install",
                "--python",
                str(self.python),
                "--offline",
                "--no-index",
                "--find-links",
                self.house,
                "--require-hashes",
                "--no-deps",
                *([] if py else ["--compile-bytecode"]),
                "-r",
                self.lock,
            ],
            "installing dependencies",
        )
        wheels = [n for n in self.manifest["files"] if n.startswith("wheels/")]
        return "uv" + (self.byte_compile(wheels, py) if py else "")

    def pip_install(self, interpreter: str, venv: Path) -> str:
        """A new venv by ``python -m venv``, every wheel installed into it by its pip."""
        self.run([interpreter, "-m", "venv", str(venv)], "creating the venv")
        self.run(
            [
                str(self.python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                self.house,
                "--require-hashes",
                "--no-deps",
                "-r",
                self.lock,
            ],
            "installing dependencies",
        )
        return "pip"

    def byte_compile(self, wheels: List[str], py: Optional[bytecode.Interpreter]) -> str:
        """``.pyc`` for what ``wheels`` installed: the artifact's bytecode layers when they fit
        the venv's Python (``py``), ``compileall`` for the rest. Says how many layers served."""
        layers = bytecode.layers(self.manifest) if py else {}
        left, written, t0 = [], 0, time.monotonic()
        for wheel in wheels:
            layer = layers.get(wheel)
            meta = self.manifest["files"].get(layer) if layer else None
            n = 0
            if layer is not None and meta is not None and py is not None:
                n = bytecode.apply_layer(self.layout.cached(layer, meta), py)
            if n == 0:  # no layer, or its sources are not where this Python looks: compile here
                left.append(wheel)
            written += n
        if written:
            log_line(
                self.log,
                f"# {written} .pyc from {len(wheels) - len(left)} bytecode layers "
                f"in {time.monotonic() - t0:.2f}s",
            )
        files = changed_sources(self.python.parent.parent, [dist_name(w) for w in left])
        if files:
            self.run([str(self.python), "-m", "compileall", "-q", *files], "byte-compiling")
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


def smoke_argv(release_dir: Path, command: List[str]) -> List[str]:
    """The smoke command with ``{python}`` replaced by the release's venv python (pure)."""
    python = str(venv_python(release_dir))
    return [python if part == "{python}" else part.replace("{python}", python) for part in command]


def smoke(
    release_dir: Path, command: List[str], timeout: float, log: Path, abort: Optional[threading.Event] = None
) -> None:
    """The smoke command with an EMPTY environment: never the production .env."""
    argv = smoke_argv(release_dir, command)
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
