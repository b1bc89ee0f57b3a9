"""``deployer build``: source + lock + wheels + engine -> dist/<app>-<release-id>.tar."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import deployer
from deployer.builder import archive, bytecode, cache, manifest, sign, source, wheelhouse
from deployer.builder.cache import cache_dir, remembered_facts
from deployer.builder.engine import build_engine
from deployer.builder.target import glibc_str, wheel_glibc
from deployer.config import Config, resolve
from deployer.errors import BuildError
from deployer.host.artifact import ENGINE, LOCK, SBOM
from deployer.host.contract import SIGNATURE_NAMESPACE

Step = Callable[[str, str], None]


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: dict
    sha256: str
    seconds: float


def packaging_templates(config: Config, config_path: Path) -> dict[str, Path]:
    """The unit, launcher and sudoers templates: the repo's packaging/, else the defaults."""
    from deployer.host.rootfiles import TEMPLATES

    found = {}
    for directory in (resolve(config_path, config.app.packaging), default_packaging()):
        for name in TEMPLATES.values():
            if name not in found and (directory / name).is_file():
                found[name] = directory / name
    missing = sorted(set(TEMPLATES.values()) - set(found))
    if missing:
        raise BuildError(f"app.packaging: no template {missing[0]} (run `deployer init`)")
    return found


def default_packaging() -> Path:
    """deployer's own templates: packaged as deployer/templates, or packaging/ in a checkout."""
    here = Path(deployer.__file__).resolve().parent
    packaged = here / "templates"
    return packaged if packaged.is_dir() else here.parent / "packaging"


def requirements_of(config: Config, config_path: Path, src: Path, pyproject: dict) -> list[str]:
    """The service's dependencies: its requirements file plus its pyproject dependencies."""
    reqs = list(pyproject.get("project", {}).get("dependencies", []))
    if config.app.requirements:
        path = src / config.app.requirements
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.split(" #", 1)[0].strip()
                if line and not line.startswith("#"):
                    if line.startswith("-"):
                        raise BuildError(
                            f"{path}: option lines ({line.split()[0]}) are not "
                            "supported; list requirements only"
                        )
                    reqs.append(line)
    return reqs


def build_release(
    config: Config,
    config_path: str | os.PathLike,
    out_dir: Path,
    on_step: Step | None = None,
    sign_key: str | os.PathLike | None = None,
) -> BuildResult:
    """Build ONE offline artifact for ``config.target`` from the service's HEAD, its
    manifest signed with ``sign_key`` (default ``artifact.signing_key``) when there is one."""
    step = on_step or (lambda name, detail: None)
    started = time.monotonic()
    key = _signing_key(config, config_path, sign_key)  # a missing key fails before the build
    src = resolve(config_path, config.app.source)
    commit, pyproject, files, version = _read_source(config, src, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    with cache.in_use(), tempfile.TemporaryDirectory(prefix="deployer-build-") as tmp:
        work = Path(tmp)
        staged = source.stage_source(src, files, work / "src", version)
        _import_in_background("deployer.builder.sbom")  # the SBOM library loads while the app wheel builds
        app_wheel = source.build_app_wheel(staged, work / "app", commit.epoch)
        step("app wheel", app_wheel.name)

        requirements = requirements_of(config, Path(config_path), src, pyproject)
        as_of = _dependencies_epoch(config, src, commit)
        wheels_dir = work / "wheels"
        pins, deps, cached = _fetch_wheels(config, requirements, app_wheel, wheels_dir, work, as_of, step)
        build_glibc = _build_glibc()
        _check_glibc(deps, config.target, build_glibc)
        _cooldown(config, wheels_dir, app_wheel.name, commit.epoch, step)
        step("wheels", f"{len(deps) + 1} wheels, no sdists, {cached} of them from the cache")
        members = _members(config, Path(config_path), wheels_dir, work, commit.epoch, step)

        rid = manifest.release_id(commit.epoch, members.lock_text, members.wheel_hashes)
        _add_sbom(members, f"wheels/{app_wheel.name}", pins, rid, commit.epoch, work, step)
        doc = manifest.build_manifest(
            config=config,
            version=version,
            rid=rid,
            commit=commit,
            provenance=manifest.provenance(commit, os.environ, source.origin_url(src)),
            files=members.files,
            app_wheel=f"wheels/{app_wheel.name}",
            uv_wheel=members.uv_wheel,
            pex=members.pex,
            build_glibc=build_glibc,
            bytecode=members.bytecode,
        )
        doc["config"] = config.host_config().to_dict()
        dest = out_dir / f"{config.app.name}-{rid}.tar"
        archive.write_release_tar(dest, doc, members.paths, commit.epoch, _signer(key, step))
    digest = manifest.sha256_file(dest)
    step("artifact", f"{dest} ({dest.stat().st_size / 1e6:.1f} MB, sha256 {digest[:12]})")
    pruned = cache.maybe_prune()  # at most once a day: entries no build used for 30 days
    if pruned:
        step(
            "cache",
            f"{len(pruned)} entries unused for {cache.cache_days():g} days removed from {cache_dir()}",
        )
    return BuildResult(dest, doc, digest, time.monotonic() - started)


def _import_in_background(module: str) -> None:
    """Import ``module`` in a thread while this one waits on a subprocess: the import lock
    makes the later ``import`` here wait for it, or raise its error. What the two could
    import at the same moment is imported here first (the wheel build's own modules)."""
    import importlib

    import build.env  # noqa: F401  (build_app_wheel's imports)

    threading.Thread(target=importlib.import_module, args=(module,), daemon=True).start()


def _signing_key(
    config: Config, config_path: str | os.PathLike, given: str | os.PathLike | None
) -> Path | None:
    if given is not None:
        return sign.signing_key(given, "--sign")
    if config.artifact.signing_key:
        where = "artifact.signing_key (or DEPLOYER_SIGNING_KEY_FILE)"
        return sign.signing_key(resolve(config_path, config.artifact.signing_key), where)
    return None


def _signer(key: Path | None, step: Step) -> Callable[[bytes], bytes] | None:
    """Signs the manifest's bytes with ``key``, reporting the key's fingerprint."""
    if key is None:
        return None

    def signer(data: bytes) -> bytes:
        armored = sign.sign(data, key)
        step("sign", f"manifest signed by {sign.describe(armored).fingerprint} ({SIGNATURE_NAMESPACE})")
        return armored

    return signer


def _read_source(config: Config, src: Path, step: Step) -> tuple[source.Commit, dict, list[str], str]:
    """The service's commit, pyproject, files and the release version they make."""
    commit = source.read_commit(src)
    pyproject = source.load_pyproject(src)
    files = source.source_files(src)
    version = source.release_version(
        source.base_version(pyproject, src), commit, source.tree_hash(src, files)
    )
    step(
        "source",
        f"{config.app.name} {version} at {commit.short}" + (" (uncommitted changes)" if commit.dirty else ""),
    )
    return commit, pyproject, files, version


def _dependencies_epoch(config: Config, src: Path, commit: source.Commit) -> tuple[int, str]:
    """The time the lock is resolved as of: the last commit that changed the dependencies."""
    paths = ["pyproject.toml", *([config.app.requirements] if config.app.requirements else [])]
    return source.dependencies_epoch(src, [p for p in paths if (src / p).exists()], commit)


def _fetch_wheels(
    config: Config,
    requirements: list[str],
    app_wheel: Path,
    wheels_dir: Path,
    work: Path,
    as_of: tuple[int, str],
    step: Step,
) -> tuple[list[wheelhouse.Pin], list[Path], int]:
    """Resolve the lock as of ``as_of`` (epoch, how it was found), fetch its wheels into
    ``wheels_dir`` and copy the app wheel there; both come from the cache when it has them.

    Returns the pins (with what asked for each), the dependencies' wheels (for the
    caller's glibc check) and how many of those the cache had.
    """
    target = config.target
    pins, reused = wheelhouse.resolve_lock(requirements, target, work, as_of[0], cache_dir() / "locks")
    app_name = wheelhouse.normalize(config.app.name)
    if any(p.name == app_name for p in pins):
        raise BuildError(f"the service {config.app.name} is also listed as its own dependency")
    step(
        "lock",
        f"{len(pins)} dependencies for Python {target.python_version} {target.platform} "
        f"glibc {target.glibc}, {as_of[1]}" + (" (cached)" if reused else ""),
    )
    deps, hits = wheelhouse.fetch_wheels(
        pins,
        target,
        wheels_dir,
        cache_dir() / "wheels",
        cache_dir() / "built-wheels",
        config.artifact.build_python,
    )
    shutil.copyfile(app_wheel, wheels_dir / app_wheel.name)
    return pins, deps, hits


@dataclass(frozen=True)
class _Members:
    """What goes into the tar, by member name, and what the manifest records of it."""

    paths: dict[str, Path]
    files: dict[str, dict]  # every member's facts: size, sha256 (and unpacked size of zips)
    lock_text: str
    wheel_hashes: dict[str, str]  # wheel file name -> sha256
    bytecode: dict | None  # {tag, magic, layers}: the bytecode layers, if built
    uv_wheel: str | None
    pex: str | None


def _members(
    config: Config, config_path: Path, wheels_dir: Path, work: Path, epoch: int, step: Step
) -> _Members:
    """The wheels and the lock pinning them, the engine, the templates, and the optional
    members: bytecode layers, uv, app.pex.
    """
    paths: dict[str, Path] = {f"wheels/{w.name}": w for w in sorted(wheels_dir.glob("*.whl"))}
    facts = {n: remembered_facts(p, manifest.file_facts) for n, p in paths.items()}
    wheel_hashes = {Path(n).name: f["sha256"] for n, f in facts.items()}
    lock_text = manifest.hash_lock(wheel_hashes)
    (work / LOCK).write_text(lock_text, encoding="utf-8")
    paths[LOCK] = work / LOCK
    paths[ENGINE] = build_engine(work / ENGINE)
    for name, path in packaging_templates(config, config_path).items():
        paths[f"packaging/{name}"] = path
    digests = {p: facts[n]["sha256"] for n, p in paths.items() if n.startswith("wheels/")}
    layers, python = _bytecode_layers(config, digests, work / "bytecode", step)
    for layer in layers.values():
        paths[f"bytecode/{layer.name}"] = layer
        facts[f"bytecode/{layer.name}"] = remembered_facts(layer, manifest.file_facts)
    uv_name = None
    if config.artifact.ship_uv:
        uv = wheelhouse.fetch_uv_wheel(config.target, work / "tools", cache_dir() / "wheels")
        uv_name = f"tools/{uv.name}"
        paths[uv_name] = uv
    pex_name = None
    if config.artifact.format == "pex":
        from deployer.builder.pex import build_pex

        paths["app.pex"] = build_pex(
            work, wheels_dir, work / LOCK, config.target, epoch, config.artifact.build_python
        )
        pex_name = "app.pex"
        step("pex", f"app.pex {paths['app.pex'].stat().st_size // 1024} KiB")
    return _Members(
        paths=paths,
        files={n: facts.get(n) or manifest.file_facts(p) for n, p in paths.items()},
        lock_text=lock_text,
        wheel_hashes=wheel_hashes,
        bytecode={**python, "layers": {f"wheels/{w}": f"bytecode/{p.name}" for w, p in layers.items()}}
        if layers
        else None,
        uv_wheel=uv_name,
        pex=pex_name,
    )


def _cooldown(config: Config, wheels_dir: Path, app_wheel: str, epoch: int, step: Step) -> None:
    """No dependency younger than ``artifact.min_age_days`` at the commit time (or only a
    warning, per ``artifact.min_age_policy``); asks the index only when it is set."""
    days, policy = config.artifact.min_age_days, config.artifact.min_age_policy
    if not days:
        return
    from datetime import UTC, datetime

    from deployer.builder import cooldown, index
    from deployer.errors import CooldownError
    from deployer.host.wheeltags import wheel_tags

    wheels = {
        w.name: manifest.sha256_file(w) for w in sorted(wheels_dir.glob("*.whl")) if w.name != app_wheel
    }
    releases = sorted({(wheelhouse.normalize(n), v) for n, v in (wheel_tags(w)[:2] for w in wheels)})
    url = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or index.PYPI_SIMPLE
    answers = index.releases_files(releases, url)
    findings = cooldown.check(wheels, answers, datetime.fromtimestamp(epoch, UTC), days)
    if not findings:
        step(
            "cooldown", f"{len(wheels)} dependencies, each uploaded at least {days:g} days before the commit"
        )
        return
    line = cooldown.summary(findings, days)
    if policy == "refuse":
        raise CooldownError(
            line,
            packages=[f"{f.name}=={f.version}" for f in findings],
            uploaded=[cooldown.iso(f.uploaded) if f.uploaded else None for f in findings],
        )
    for f in findings:
        step(
            "cooldown", f'warning: {f.describe()} (artifact.min_age_days = {days:g}, min_age_policy = "warn")'
        )


def _add_sbom(
    members: _Members,
    app_wheel: str,
    pins: list[wheelhouse.Pin],
    rid: str,
    epoch: int,
    work: Path,
    step: Step,
) -> None:
    """One more member: the CycloneDX SBOM of exactly the wheels ``members`` ships."""
    from deployer.builder import sbom  # the CycloneDX library loads only for a build

    wheels = {n: f["sha256"] for n, f in members.files.items() if n.startswith("wheels/")}
    path = work / SBOM
    path.write_text(
        sbom.sbom_json(wheels=wheels, app_wheel=app_wheel, pins=pins, release_id=rid, commit_epoch=epoch),
        encoding="utf-8",
    )
    members.paths[SBOM] = path
    members.files[SBOM] = manifest.file_facts(path)
    step("sbom", f"{SBOM}: {len(wheels)} wheels, CycloneDX {sbom.SCHEMA.to_version()}")


def _bytecode_layers(
    config: Config, wheels: dict[Path, str], dest: Path, step: Step
) -> tuple[dict[str, Path], dict[str, str]]:
    """The wheels' bytecode layers, unless turned off, a pex, or no target Python here."""
    if not config.artifact.bytecode or config.artifact.format == "pex":
        return {}, {}
    python = bytecode.build_python(config.target, config.artifact.build_python)
    if python is None:
        step(
            "bytecode",
            f"skipped: no python{config.target.python_version} here "
            "(hosts byte-compile the dependencies themselves)",
        )
        return {}, {}
    layers, interpreter = bytecode.build_layers(wheels, python, cache_dir() / "bytecode", dest)
    size = sum(p.stat().st_size for p in layers.values())
    step(
        "bytecode",
        f"{len(layers)} wheels byte-compiled for Python {config.target.python_version} ({size / 1e6:.1f} MB)",
    )
    return layers, interpreter


def _build_glibc() -> tuple[int, int] | None:
    lib, ver = platform.libc_ver()
    if lib != "glibc" or not ver:
        return None
    major, minor = ver.split(".")[:2]
    return int(major), int(minor)


def _check_glibc(wheels: list[Path], target, build_glibc) -> None:
    """A wheel built here for linux_* needs this machine's glibc: refuse if the host is older."""
    for w in wheels:
        need = wheel_glibc(w.name, build_glibc)
        if need and need > target.glibc_tuple:
            raise BuildError(
                f"{w.name} needs glibc {glibc_str(need)}, the target has "
                f"{target.glibc} (build on an older system or raise target.glibc)"
            )
