"""Artifact verification: tampered, truncated and unsafe artifacts are refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from deployer.builder.archive import write_release_tar
from deployer.builder.manifest import hash_lock
from deployer.errors import ArtifactError
from deployer.host.artifact import read_manifest, verify_artifact

WHEEL = "demo-1.0-py3-none-any.whl"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_artifact(tmp_path: Path, extra: dict[str, bytes] | None = None) -> tuple[Path, dict]:
    contents = {f"wheels/{WHEEL}": b"wheel bytes", "engine.pyz": b"#!engine"}
    contents["requirements.lock"] = hash_lock({WHEEL: _sha(contents[f"wheels/{WHEEL}"])}).encode()
    contents.update(extra or {})
    src = tmp_path / "src"
    files = {}
    for name, data in contents.items():
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[name] = p
    manifest = {
        "schema": 1,
        "app": "demo",
        "version": "1.0",
        "release_id": "20260101T000000Z-abcdef0",
        "format": "wheelhouse",
        "target": {"python_version": "3.11"},
        "lock": "requirements.lock",
        "engine": "engine.pyz",
        "app_wheel": f"wheels/{WHEEL}",
        "files": {n: {"size": len(d), "sha256": _sha(d)} for n, d in contents.items()},
    }
    return write_release_tar(tmp_path / "demo.tar", manifest, files, 1700000000), manifest


def rewrite(src: Path, dest: Path, edit) -> Path:
    """Copy a tar member by member, letting ``edit(info, data)`` change or drop members."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            data = tin.extractfile(m).read() if m.isreg() else b""
            out = edit(m, data)
            if out is not None:
                info, data = out
                tout.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return dest


def test_good_artifact_verifies(tmp_path):
    path, manifest = make_artifact(tmp_path)
    assert verify_artifact(str(path))["release_id"] == manifest["release_id"]
    assert read_manifest(str(path))["files"] == manifest["files"]


def test_same_inputs_same_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, _ = make_artifact(tmp_path / "a")
    b, _ = make_artifact(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_tampered_member_refused(tmp_path):
    path, _ = make_artifact(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b"wheel bytes")
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"wheels/demo-1.0-py3-none-any.whl: sha256 does not match"):
        verify_artifact(str(path))


def test_truncated_artifact_refused(tmp_path):
    path, _ = make_artifact(tmp_path)
    data = path.read_bytes()
    # inside the last member's data, inside a header, inside the manifest
    # (cutting only the zero padding after the last member loses nothing)
    for cut in (data.find(b"wheel bytes") + 5, 1536, 700):
        path.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match="truncated|damaged|not a readable"):
            verify_artifact(str(path))


def test_not_a_tar(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"hello")
    with pytest.raises(ArtifactError):
        verify_artifact(str(p))
    with pytest.raises(ArtifactError, match="no such artifact"):
        verify_artifact(str(tmp_path / "missing.tar"))


@pytest.mark.parametrize("name", ["/etc/passwd", "../evil", "wheels/../../evil", "a//b", "./x"])
def test_unsafe_member_names_refused(tmp_path, name):
    path, _ = make_artifact(tmp_path)

    def add_evil(info, data):
        if info.name == "engine.pyz":
            info.name = name
        return info, data

    bad = rewrite(path, tmp_path / "bad.tar", add_evil)
    with pytest.raises(ArtifactError, match="unsafe member name|not in the manifest"):
        verify_artifact(str(bad))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE])
def test_links_devices_and_dirs_refused(tmp_path, kind):
    path, _ = make_artifact(tmp_path)

    def to_link(info, data):
        if info.name == "engine.pyz":
            info.type, info.linkname, info.size = kind, "/etc/shadow", 0
            return info, b""
        return info, data

    bad = rewrite(path, tmp_path / "bad.tar", to_link)
    with pytest.raises(ArtifactError, match="refusing"):
        verify_artifact(str(bad))


def test_member_missing_from_manifest_or_tar(tmp_path):
    path, _ = make_artifact(tmp_path)
    dropped = rewrite(path, tmp_path / "dropped.tar", lambda i, d: None if i.name == "engine.pyz" else (i, d))
    with pytest.raises(ArtifactError, match="missing engine.pyz"):
        verify_artifact(str(dropped))

    (tmp_path / "x").mkdir()
    path2, _ = make_artifact(tmp_path / "x")
    with tarfile.open(path2, "a") as t:
        info = tarfile.TarInfo("smuggled.sh")
        info.size = 3
        t.addfile(info, io.BytesIO(b"rm\n"))
    with pytest.raises(ArtifactError, match="'smuggled.sh' is not in the manifest"):
        verify_artifact(str(path2))


def test_lock_must_pin_exactly_the_wheels(tmp_path):
    path, _ = make_artifact(tmp_path, {"requirements.lock": b"demo==1.0 --hash=sha256:" + b"0" * 64})
    with pytest.raises(ArtifactError, match="does not pin exactly the shipped wheels"):
        verify_artifact(str(path))


def test_manifest_must_come_first_and_be_json(tmp_path):
    path, _ = make_artifact(tmp_path)

    def bad_json(info, data):
        if info.name == "manifest.json":
            data = b"{not json"
            info.size = len(data)
        return info, data

    with pytest.raises(ArtifactError, match="not valid JSON"):
        verify_artifact(str(rewrite(path, tmp_path / "j.tar", bad_json)))

    def schema(info, data):
        if info.name == "manifest.json":
            m = json.loads(data)
            m["schema"] = 99
            data = json.dumps(m).encode()
            info.size = len(data)
        return info, data

    with pytest.raises(ArtifactError, match="schema 99 is not supported"):
        verify_artifact(str(rewrite(path, tmp_path / "s.tar", schema)))
