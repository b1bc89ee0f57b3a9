"""A wheel-only wheelhouse for the target: resolve with uv, fetch with pip, build sdists.

The lock is resolved for the *target* (its Python and manylinux level), not for the
machine that builds; wheels are fetched with ``--only-binary :all:`` and target tags;
a dependency published only as an sdist is built into a wheel with an interpreter of
the target's Python version and cached, so the next build reuses the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from packaging.utils import canonicalize_version

from deployer.builder.cache import keep, link, used
from deployer.builder.target import abi_tag, pip_target_args, uv_platform
from deployer.config import Platform
from deployer.errors import BuildError, WheelUnavailableError
from deployer.host.wheeltags import normalize, wheel_tags

_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)(?:.*#\s*via\s+(.*))?")
_MISSING_RE = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)==(\S+)")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    #: what asked for it, as the resolver says (``-r <file>``: the service itself)
    via: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def direct(self) -> bool:
        """One of the service's own requirements (not only a dependency's)."""
        return any(v.startswith("-r ") for v in self.via)

    @property
    def required_by(self) -> tuple[str, ...]:
        """The (normalized) names of the dependencies that require it."""
        return tuple(normalize(v) for v in self.via if not v.startswith("-"))


def parse_pins(text: str) -> list[Pin]:
    """``name==version  # via a, b`` lines (uv's line-style annotations) -> pins."""
    pins = []
    for line in text.splitlines():
        m = _PIN_RE.match(line.strip())
        if m:
            via = tuple(v.strip() for v in (m.group(3) or "").split(",") if v.strip())
            pins.append(Pin(normalize(m.group(1)), m.group(2), via))
    return pins


def _run(argv: list[str], what: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise BuildError(f"{what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: timed out after {timeout:.0f}s") from None


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if not ln.startswith("WARNING: Location")]
    return " | ".join(lines[-n:])


def uv_bin() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise BuildError("uv is not installed (pip install uv)") from None
        return found


#: the environment naming where uv resolves from (indexes, its config file): part of what a
#: cached lock was resolved against
UV_INDEX_ENV = (
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX_STRATEGY",
    "UV_CONFIG_FILE",
)


def lock_key(requirements: list[str], target: Platform, exclude_newer: str, environ: dict) -> str:
    """What a resolution depends on, hashed (pure): the same key resolves to the same pins."""
    from importlib.metadata import version

    facts = {
        "requirements": requirements,
        "python": target.python_version,
        "platform": uv_platform(target),
        "exclude_newer": exclude_newer,
        "uv": version("uv"),
        "index": {k: environ.get(k) for k in UV_INDEX_ENV},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def resolve_lock(
    requirements: list[str], target: Platform, work: Path, as_of: int, cache: Path | None = None
) -> tuple[list[Pin], bool]:
    """Pin every dependency for the target, as the index was at ``as_of``; the pins and
    whether ``cache`` (a directory of locks by :func:`lock_key`) already had them."""
    if not requirements:
        return [], False
    exclude_newer = datetime.fromtimestamp(as_of + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cached = (
        cache / f"{lock_key(requirements, target, exclude_newer, dict(os.environ))}.pins" if cache else None
    )
    if cached is not None and cached.is_file():
        return parse_pins(used(cached).read_text(encoding="utf-8")), True
    req_in, out = work / "requirements.in", work / "requirements.pins"
    req_in.write_text("".join(r + "\n" for r in requirements), encoding="utf-8")
    proc = _run(
        [
            uv_bin(),
            "pip",
            "compile",
            str(req_in),
            "-o",
            str(out),
            "--quiet",
            "--no-header",
            "--annotation-style",
            "line",
            "--python-version",
            target.python_version,
            "--python-platform",
            uv_platform(target),
            "--exclude-newer",
            exclude_newer,
        ],
        "resolving the lock",
    )
    if proc.returncode != 0:
        raise BuildError(
            f"resolving the lock for Python {target.python_version} "
            f"{uv_platform(target)} failed: {_tail(proc.stderr)}"
        )
    if cached is not None:
        keep(out, cached)
    return parse_pins(out.read_text(encoding="utf-8")), False


def wheel_cache(cache: Path, target: Platform) -> Path:
    """The directory of wheels fetched for ``target``: one per pinned release, as pip chose it."""
    return cache / f"{abi_tag(target)}-{target.platform}-glibc{target.glibc}"


def fetch_wheels(
    pins: list[Pin],
    target: Platform,
    dest: Path,
    cache: Path,
    built_cache: Path | None,
    build_python: str | None,
) -> tuple[list[Path], int]:
    """Wheels for every pin, for the target, into ``dest``; how many came from ``cache``.

    A pin whose wheel the cache has (same name and version, fetched for the same target)
    is linked from it without asking the index; the others are downloaded (sdist-only
    ones built and cached in ``built_cache``; refused when it is None) and then kept in
    the cache."""
    dest.mkdir(parents=True, exist_ok=True)
    have = wheel_cache(cache, target)
    cached = _cached_wheels(have)
    keys = {p: (p.name, canonicalize_version(p.version)) for p in pins}
    remaining = [p for p in pins if keys[p] not in cached]
    hits = len(pins) - len(remaining)
    for p in pins:
        if keys[p] in cached:
            link(used(cached[keys[p]]), dest / cached[keys[p]].name)
    fetched = dest.parent / f"fetch-{dest.name}"
    fetched.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    while remaining:
        reqs = fetched / "pins.txt"
        reqs.write_text("".join(p.spec + "\n" for p in remaining), encoding="utf-8")
        proc = _run(
            pip_download(target, fetched, "-r", str(reqs)),
            "downloading wheels",
        )
        if proc.returncode == 0:
            break
        missing = _MISSING_RE.search(proc.stderr)
        if not missing:
            raise BuildError(f"downloading wheels failed: {_tail(proc.stderr)}")
        pin = Pin(normalize(missing.group(1)), missing.group(2))
        if built_cache is None:
            raise WheelUnavailableError(f"{pin.spec}: no wheel for {target.platform}: {_tail(proc.stderr)}")
        built.append(build_sdist_wheel(pin, target, built_cache, build_python))
        remaining = [p for p in remaining if p != pin]
    for wheel in [*sorted(fetched.glob("*.whl")), *built]:
        keep(wheel, have / wheel.name)
        link(have / wheel.name, dest / wheel.name)
    shutil.rmtree(fetched, ignore_errors=True)
    return sorted(dest.glob("*.whl")), hits


def _cached_wheels(directory: Path) -> dict[tuple[str, str], Path]:
    """(normalized name, version) -> the cached wheel; files that are not wheels are skipped."""
    found: dict[tuple[str, str], Path] = {}
    for wheel in sorted(directory.glob("*.whl")) if directory.is_dir() else []:
        try:
            name, version = wheel_tags(wheel.name)[:2]
        except ValueError:
            continue
        found.setdefault((normalize(name), canonicalize_version(version)), wheel)
    return found


def find_build_python(target: Platform, configured: str | None) -> str:
    """An interpreter of the target's Python version: builds sdist-only dependencies and
    the bytecode layers."""
    candidates = [configured] if configured else [f"python{target.python_version}"]
    for c in candidates:
        path = shutil.which(c) if c else None
        if path:
            # print the real executable: a version-manager shim is not an interpreter
            proc = _run(
                [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
                "checking the build interpreter",
                timeout=30,
            )
            found = proc.stdout.split()
            if proc.returncode == 0 and len(found) == 2 and found[0] == target.python_version:
                return found[1]
            raise BuildError(
                f"artifact.build_python: {c} is not a working Python "
                f"{target.python_version} ({_tail(proc.stderr or proc.stdout, 1)})"
            )
    raise BuildError(
        f"no python{target.python_version} here to build sdist-only dependencies "
        "or bytecode with (install it or set artifact.build_python)"
    )


def build_sdist_wheel(pin: Pin, target: Platform, cache: Path, build_python: str | None) -> Path:
    """Build (once) a wheel for a dependency that is published only as an sdist."""
    key_dir = cache / f"cp{target.python_version.replace('.', '')}-{target.platform}"
    for wheel in sorted(key_dir.glob("*.whl")) if key_dir.is_dir() else []:
        name, version = wheel_tags(wheel.name)[:2]
        if normalize(name) == pin.name and version == pin.version:
            return used(wheel)
    python = find_build_python(target, build_python)
    work = key_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    proc = _run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-binary",
            pin.name,
            "--progress-bar",
            "off",
            "-w",
            str(work),
            pin.spec,
        ],
        f"building {pin.spec}",
    )
    wheels = list(work.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        shutil.rmtree(work, ignore_errors=True)
        raise WheelUnavailableError(
            f"{pin.spec}: no wheel for Python {target.python_version} {target.platform} "
            f"(glibc {target.glibc}) and building one from source failed: {_tail(proc.stderr)}"
        )
    final = key_dir / wheels[0].name
    os.replace(wheels[0], final)
    shutil.rmtree(work, ignore_errors=True)
    return final


def pip_download(target: Platform, dest: Path, *what: str) -> list[str]:
    """``pip download`` of ``what`` into ``dest``: wheels only, for the target's tags (pure)."""
    return [
        sys.executable,
        *("-m", "pip", "download", "--no-deps", "--progress-bar", "off", "-d", str(dest)),
        *pip_target_args(target),
        *what,
    ]


def fetch_uv_wheel(target: Platform, dest: Path, cache: Path) -> Path:
    """The uv wheel for the target, so the host can install fast without an index."""
    from importlib.metadata import version

    wheels, _ = fetch_wheels([Pin("uv", version("uv"))], target, dest, cache, None, None)
    return wheels[0]
