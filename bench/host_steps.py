"""Runs ON the staging host, as the deploy user: the engine's `venv` and `smoke` steps
taken apart, with the host's own uv, wheel cache and current release.

Standard library only. Prints one JSON line per timed command:
``{"step": ..., "seconds": ..., "rc": ...}``. Everything it builds lives under
``<base>/bench-steps`` and is removed at the end.

    python3 host_steps.py BASE REPS
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path


def main() -> int:
    base, reps = sys.argv[1], int(sys.argv[2])
    uv = sorted(glob.glob(f"{base}/cache/tools/*/uv"))[-1]
    release = os.path.realpath(f"{base}/current")
    lock = f"{release}/requirements.lock"
    work = f"{base}/bench-steps"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": base,
        "LANG": "C.UTF-8",
        "UV_OFFLINE": "1",
        "UV_LINK_MODE": "hardlink",
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": f"{base}/cache/uv",
    }

    def timed(step: str, argv: list, extra: dict | None = None, plain_env: bool = False) -> None:
        t0 = time.monotonic()
        proc = subprocess.run(
            argv,
            env={} if plain_env else {**env, **(extra or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=work,
        )
        print(
            json.dumps(
                {"rep": rep, "step": step, "seconds": round(time.monotonic() - t0, 4), "rc": proc.returncode}
            ),
            flush=True,
        )

    def install(venv: str, *extra: str) -> list:
        return [
            uv,
            "pip",
            "install",
            "--python",
            f"{venv}/bin/python",
            "--offline",
            "--no-index",
            "--find-links",
            f"{base}/cache/wheelhouse",
            "--require-hashes",
            "--no-deps",
            *extra,
            "-r",
            lock,
        ]

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rep = 0
    try:
        for rep in range(1, reps + 1):
            d = f"{work}/{rep}"
            os.makedirs(d)
            timed("uv venv", [uv, "venv", "--quiet", "--python", "/usr/bin/python3", f"{d}/a"])
            timed("uv pip install, warm cache, no bytecode", install(f"{d}/a"))
            timed(
                "byte-compile that venv (compileall, all CPUs)",
                [f"{d}/a/bin/python", "-m", "compileall", "-q", "-j", "0", f"{d}/a/lib"],
            )
            timed(
                "compileall again (all .pyc fresh: the stat walk)",
                [f"{d}/a/bin/python", "-m", "compileall", "-q", "-j", "0", f"{d}/a/lib"],
            )
            subprocess.run(
                [uv, "venv", "--quiet", "--python", "/usr/bin/python3", f"{d}/b"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            timed(
                "uv pip install, warm cache, --compile-bytecode (no bytecode layers)",
                install(f"{d}/b", "--compile-bytecode"),
            )
            subprocess.run(
                [uv, "venv", "--quiet", "--python", "/usr/bin/python3", f"{d}/g"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(install(f"{d}/g"), env=env, check=True, stdout=subprocess.DEVNULL)
            t0 = time.monotonic()
            n = _apply_layers(base, release, f"{d}/g/bin/python")
            print(
                json.dumps(
                    {
                        "rep": rep,
                        "step": f"write the bytecode layers' {n} .pyc "
                        "(the engine's, after an install without bytecode)",
                        "seconds": round(time.monotonic() - t0, 4),
                        "rc": 0,
                    }
                ),
                flush=True,
            )
            t0 = time.monotonic()
            with zipfile.ZipFile(glob.glob(f"{base}/cache/members/*/uv-*.whl")[0]) as z:
                member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
                with z.open(member) as src, open(f"{d}/uv", "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            print(
                json.dumps(
                    {
                        "rep": rep,
                        "step": "extract uv from its wheel (first deploy only)",
                        "seconds": round(time.monotonic() - t0, 4),
                        "rc": 0,
                    }
                ),
                flush=True,
            )
            cold = {"UV_CACHE_DIR": f"{d}/uv-cache"}
            subprocess.run(
                [uv, "venv", "--quiet", "--python", "/usr/bin/python3", f"{d}/c"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            timed("uv pip install, EMPTY cache, no bytecode", install(f"{d}/c"), cold)
            os.rename(f"{d}/uv-cache", f"{d}/uv-cache.used")  # deleting would slow what follows
            subprocess.run(
                [uv, "venv", "--quiet", "--python", "/usr/bin/python3", f"{d}/e"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            timed(
                "uv pip install, EMPTY cache, --compile-bytecode (first deploy)",
                install(f"{d}/e", "--compile-bytecode"),
                cold,
            )
            timed(
                "cp -al of the live venv (hardlinked copy, .pyc included)",
                ["cp", "-al", f"{release}/venv", f"{d}/f"],
            )
            py = f"{release}/venv/bin/python"
            timed(
                "smoke: python -m <module> --selfcheck, empty env",
                [py, "-m", _module(release), "--selfcheck"],
                plain_env=True,
            )
            timed("python startup in the venv", [py, "-c", "pass"], plain_env=True)
            for mod in ("pyrogram", "aiohttp", "pydantic", "pytgcalls"):
                timed(f"import {mod}", [py, "-c", f"import {mod}"], plain_env=True)
    finally:  # only now: inodes freed in the last 30 s make new ones slow (see bench.py)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _apply_layers(base: str, release: str, python: str) -> int:
    """What the engine does after installing: each wheel's bytecode layer, stamped."""
    sys.path.insert(0, sorted(glob.glob(f"{base}/incoming/engine-*.pyz"))[-1])
    from deployer.host import bytecode

    with open(f"{release}/manifest.json", encoding="utf-8") as f:
        manifest = json.load(f)
    py = bytecode.fitting(manifest, Path(python))
    if py is None:
        return 0
    return sum(
        bytecode.apply_layer(
            Path(f"{base}/cache/members/{manifest['files'][layer]['sha256']}") / Path(layer).name, py
        )
        for layer in bytecode.layers(manifest).values()
    )


def _module(release: str) -> str:
    with open(f"{release}/manifest.json", encoding="utf-8") as f:
        return json.load(f)["module"]


if __name__ == "__main__":
    sys.exit(main())
