"""``artifact.format = "pex"``: the service as one ``--venv`` pex built from the wheelhouse.

Built offline from the very wheels the lock pins (``--no-pypi -f wheels --intransitive``)
with an interpreter of the target's version, so the pex and the wheelhouse can never
disagree. On the host ``PEX_TOOLS=1 python app.pex venv`` turns it into the release's
``venv/``, the same layout a wheelhouse install gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from deployer.builder.wheelhouse import find_build_python
from deployer.config import Platform
from deployer.errors import BuildError


def pex_bin() -> str:
    candidate = Path(sys.executable).with_name("pex")
    found = str(candidate) if candidate.exists() else shutil.which("pex")
    if not found:
        raise BuildError("pex is not installed (pip install pex)")
    return found


def build_pex(
    work: Path, wheels: Path, lock: Path, target: Platform, epoch: int, build_python: str | None = None
) -> Path:
    """No entry point: the host never runs the pex itself, it runs ``venv/bin/python -m``."""
    dest = work / "app.pex"
    python = find_build_python(target, build_python)
    argv = [
        pex_bin(),
        "--venv",
        "--no-pypi",
        "--find-links",
        str(wheels),
        "--intransitive",
        "--requirement",
        str(lock),
        "--python",
        python,
        "--python-shebang",
        target.interpreter,
        "--output-file",
        str(dest),
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise BuildError(f"building app.pex failed: {tail}")
    return dest
