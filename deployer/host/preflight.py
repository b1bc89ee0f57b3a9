"""Preflight: can this host take the release? Writes nothing.

Target interpreter and its version, platform and glibc against every wheel's tags, free
disk against what the release needs (upload + unpacked + venv + cache growth, with a
margin) BEFORE anything is written, the base path writable, and the service manager's
rights.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from deployer.errors import PreflightError
from deployer.host.layout import Layout
from deployer.host.proc import run
from deployer.host.unpack import cached_names, is_cache_only
from deployer.host.wheeltags import manylinux, wheel_tags

MIB = 1 << 20
MARGIN_BYTES = 32 * MIB
MARGIN_RATIO = 1.10
PYC_RATIO = 0.3  # byte-compiled files written into the venv itself
_PROBE = (
    "import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
    "'libc': platform.libc_ver(), 'machine': platform.machine()}))"
)


def interpreter_facts() -> dict:
    """This interpreter's version, libc and machine: what ``_PROBE`` prints for another one."""
    import platform

    return {
        "version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "libc": list(platform.libc_ver()),
        "machine": platform.machine(),
    }


def probe_interpreter(interpreter: str) -> dict:
    if not os.path.exists(interpreter):
        raise PreflightError(f"target interpreter {interpreter} is not installed on this host")
    if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
        return interpreter_facts()  # the engine runs on it already: no second interpreter start
    proc = run([interpreter, "-c", _PROBE], timeout=30, env={"PATH": "/usr/bin:/bin"}, error=PreflightError)
    if proc.returncode != 0:
        raise PreflightError(f"target interpreter {interpreter} does not run: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def _tuple(v: str) -> tuple:
    return tuple(int(x) for x in v.split(".")[:2])


def wheel_problems(manifest: dict, machine: str, glibc: Optional[str]) -> List[str]:
    """Wheels this host cannot run: wrong architecture or a newer glibc than it has."""
    problems = []
    host_glibc = _tuple(glibc) if glibc else None
    for name in manifest["files"]:
        if not name.startswith("wheels/"):
            continue
        plats = wheel_tags(Path(name).name)[4].split(".")
        if plats == ["any"]:
            continue
        ok = False
        for plat in plats:
            tag = manylinux(plat)
            if tag:
                arch, need = tag
                ok = ok or (arch == machine and host_glibc is not None and need <= host_glibc)
            elif plat.startswith("linux_"):
                ok = ok or plat[len("linux_") :] == machine
        if not ok:
            problems.append(Path(name).name)
    return problems


def disk_needed(layout: Layout, manifest: dict, incoming: int, uv: bool) -> int:
    """Bytes this release needs on the base path's filesystem, margin included."""
    cached = cached_names(layout, manifest)
    files = manifest["files"]
    new_members = sum(m["size"] for n, m in files.items() if n not in cached)
    unpacked_all = sum(
        m.get("unpacked", m["size"] * 3)
        for n, m in files.items()
        if n.startswith("wheels/") or n.endswith(".pex")
    )
    unpacked_new = sum(
        m.get("unpacked", m["size"] * 3) for n, m in files.items() if is_cache_only(n) and n not in cached
    )
    # uv hardlinks the venv from its cache: only new wheels take space there, plus the .pyc
    # (a new bytecode layer's unpacked size is already in unpacked_new); pip and pex write
    # every file into the venv
    pyc = 0 if manifest.get("bytecode") else unpacked_all * PYC_RATIO
    venv = unpacked_new + pyc if uv else unpacked_all * (1 + PYC_RATIO)
    return int((incoming + new_members + venv) * MARGIN_RATIO) + MARGIN_BYTES


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def writable(path: Path) -> Optional[str]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def preflight(
    layout: Layout,
    manifest: dict,
    interpreter: str,
    incoming: int = 0,
    service_problems: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """All checks; PreflightError with one line for the first that fails."""
    target = manifest["target"]
    info = probe_interpreter(interpreter)
    if info["version"] != target["python_version"]:
        raise PreflightError(
            f"{interpreter} is Python {info['version']}, the release is built for {target['python_version']}"
        )
    lib, glibc = info["libc"]
    required = manifest.get("glibc_required")
    if required and (lib != "glibc" or _tuple(glibc) < _tuple(required)):
        raise PreflightError(
            f"the release needs glibc {required}, this host has "
            f"{glibc if lib == 'glibc' else lib or 'no glibc'}"
        )
    bad = wheel_problems(manifest, info["machine"], glibc if lib == "glibc" else None)
    if bad:
        raise PreflightError(
            f"{len(bad)} wheel(s) cannot run on this {info['machine']} host "
            f"(glibc {glibc}): {', '.join(bad[:3])}"
        )
    problem = writable(layout.base)
    if problem:
        raise PreflightError(problem)
    uv = bool(manifest.get("uv_wheel")) and manifest.get("format") != "pex"
    need, free = disk_needed(layout, manifest, incoming, uv), free_bytes(layout.base)
    if free < need:
        raise PreflightError(
            f"not enough disk on {layout.base}: needs {need / MIB:.0f} MiB, {free / MIB:.0f} MiB free"
        )
    if service_problems:
        raise PreflightError(service_problems[0])
    return {
        "python": info["version"],
        "glibc": glibc,
        "machine": info["machine"],
        "disk_needed": need,
        "disk_free": free,
    }
