"""The artifact's manifest, hash lock and release id: pure builders over file facts."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from deployer.builder.target import abi_tag, glibc_str, platform_tags, wheel_glibc
from deployer.builder.wheelhouse import normalize
from deployer.config import Config
from deployer.host.artifact import ENGINE, LOCK, MANIFEST_SCHEMA
from deployer.host.wheeltags import wheel_tags


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_facts(path: Path) -> dict:
    """size and sha256 of an artifact member; for zips (wheels, layers) also what they unpack to."""
    facts = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    if path.suffix in (".whl", ".pex", ".zip"):
        with zipfile.ZipFile(path) as z:
            facts["unpacked"] = sum(i.file_size for i in z.infolist())
    return facts


def hash_lock(wheels: dict[str, str]) -> str:
    """Requirements text pinning every shipped wheel by the sha256 of its bytes.

    ``wheels`` maps wheel file name -> sha256. Installable with
    ``--no-index --require-hashes``; hashes are of what is shipped, not of the index.
    """
    lines = []
    for filename in sorted(wheels, key=lambda f: normalize(wheel_tags(f)[0])):
        name, version = wheel_tags(filename)[:2]
        lines.append(f"{normalize(name)}=={version} \\\n    --hash=sha256:{wheels[filename]}\n")
    return "".join(lines)


def release_id(commit_epoch: int, lock_text: str, wheels: dict[str, str]) -> str:
    """Commit time (UTC) + short hash of the lock and the wheels: fixed at build time."""
    h = hashlib.sha256(lock_text.encode())
    for name in sorted(wheels):
        h.update(f"{name}\0{wheels[name]}\n".encode())
    stamp = datetime.fromtimestamp(commit_epoch, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{h.hexdigest()[:7]}"


#: provenance field -> the GitHub Actions variable it is read from
GITHUB_PROVENANCE = {
    "repository": "GITHUB_REPOSITORY",
    "workflow": "GITHUB_WORKFLOW_REF",
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "commit": "GITHUB_SHA",
    "ref": "GITHUB_REF",
}


def provenance(commit, environ: Mapping[str, str], origin: str | None) -> dict:
    """Where the artifact was built (pure; signed with the manifest).

    In GitHub Actions: the repository, workflow, run id and attempt, and the run's commit
    and ref (``git`` in the manifest says what was built). Elsewhere: the local git facts,
    the ``origin`` remote without any credentials in its URL, the commit and its branch."""
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        found = {key: environ.get(var) or None for key, var in GITHUB_PROVENANCE.items()}
        return {"builder": "github-actions", **found}
    return {
        "builder": "local",
        "repository": _without_credentials(origin) if origin else None,
        "workflow": None,
        "run_id": None,
        "run_attempt": None,
        "commit": commit.sha,
        "ref": f"refs/heads/{commit.ref}" if commit.ref else None,
    }


def _without_credentials(url: str) -> str:
    """``https://user:token@host/x.git`` -> ``https://host/x.git``; scp-like and paths as they are."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def build_manifest(
    *,
    config: Config,
    version: str,
    rid: str,
    commit,
    provenance: dict,
    files: dict[str, dict],
    app_wheel: str,
    uv_wheel: str | None,
    pex: str | None,
    build_glibc: tuple[int, int] | None,
    bytecode: dict | None,
) -> dict:
    """manifest.json: what the artifact is, for whom, and every file's size and sha256."""
    target = config.target
    wheel_files = [f for f in files if f.startswith("wheels/")]
    needs = [g for g in (wheel_glibc(Path(f).name, build_glibc) for f in wheel_files) if g]
    return {
        "schema": MANIFEST_SCHEMA,
        "app": config.app.name,
        "module": config.app.module_name,
        "version": version,
        "release_id": rid,
        "format": config.artifact.format,
        "git": {
            "sha": commit.sha,
            "ref": commit.ref,
            "tag": commit.tag,
            "dirty": commit.dirty,
            "commit_time": datetime.fromtimestamp(commit.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "provenance": provenance,
        "target": {
            "python_version": target.python_version,
            "implementation": "cp",
            "abi": abi_tag(target),
            "platform": target.platform,
            "platform_tags": platform_tags(target),
            "glibc": target.glibc,
            "interpreter": target.interpreter,
        },
        "glibc_required": glibc_str(max(needs)) if needs else None,
        "engine": ENGINE,
        "lock": LOCK,
        "app_wheel": app_wheel,
        "uv_wheel": uv_wheel,
        "pex": pex,
        "bytecode": bytecode,  # {tag, magic, layers: {wheel member: its bytecode layer}}
        "config": None,  # filled by the caller with Config.host_config(); kept last for readability
        "files": dict(sorted(files.items())),
    }
