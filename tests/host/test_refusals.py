"""What the engine refuses before it changes the host: a full disk, unsafe artifacts."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile

import pytest

from deployer.errors import ArtifactError, PreflightError
from tests.helpers import free_port
from tests.host.artifacts import tampered, with_member
from tests.host.conftest import Host

pytestmark = pytest.mark.slow  # the example build is what is refused
MIB = 1 << 20


def snapshot(root) -> dict:
    """Every path under ``root`` with what would show a write: type, mode, size, mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
            )
    st = os.stat(root)
    found["."] = (st.st_mode, st.st_mtime_ns)
    return found


def entries(root) -> list[str]:
    """Everything under ``root`` (nothing if it does not exist)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs as the base path's parent (/opt on a real host)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_check_refuses_before_writing_anything(small_disk, example_build):
    host = Host(small_disk / "tg_video_streamer", example_build.manifest["config"], free_port())
    shared = host.base / "shared" / "sessions"
    shared.mkdir(parents=True)
    (shared / "bot.session").write_text("session state")
    before = snapshot(small_disk)
    free_before = os.statvfs(small_disk).f_bfree

    with pytest.raises(PreflightError) as e:
        host.engine().preflight(example_build.manifest)

    m = re.search(r"not enough disk on (\S+): needs (\d+) MiB, (\d+) MiB free", str(e.value))
    assert m, str(e.value)
    assert m.group(1) == str(host.base)
    needed, free = int(m.group(2)), int(m.group(3))
    artifact_mib = example_build.path.stat().st_size / MIB
    assert needed > artifact_mib > 40 >= free
    assert snapshot(small_disk) == before, "nothing written"
    assert os.statvfs(small_disk).f_bfree == free_before
    assert '"step": "preflight", "status": "fail"' in host.output()


@pytest.fixture(scope="module")
def unsafe_artifacts(example_build, tmp_path_factory):
    src, work = example_build.path, tmp_path_factory.mktemp("unsafe")
    last_wheel = max(n for n in example_build.manifest["files"] if n.startswith("wheels/"))
    dotdot = tarfile.TarInfo("../../etc/cron.d/evil")
    dotdot.size = 12
    link = tarfile.TarInfo("wheels/evil-1.0-py3-none-any.whl")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    # each one is refused only at its LAST member, after everything else was unpacked
    return {
        "dotdot": (with_member(src, work / "dotdot.tar", dotdot, b"* * * * * x\n"), "unsafe member name"),
        "symlink": (with_member(src, work / "symlink.tar", link), "refusing link"),
        "tampered": (tampered(src, work / "tampered.tar", last_wheel), "sha256 does not match the manifest"),
    }


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "tampered"])
def test_unsafe_artifact_refused_leaving_nothing_behind(host, example_build, unsafe_artifacts, kind):
    path, message = unsafe_artifacts[kind]
    rid = example_build.manifest["release_id"]
    engine = host.engine()
    engine.acquire()
    try:
        with pytest.raises(ArtifactError, match=message):
            engine.stage(str(path))
    finally:
        engine.release_lock()
    assert not (host.base / "releases" / rid).exists()
    assert entries(host.base / "releases") == [], "no release dir, no partial"
    assert entries(host.base / "cache") == ["uv"], "nothing new in the wheel cache"
    assert not (host.base.parent / "etc").exists() and not (host.base / "etc").exists()
    assert not (host.base / "current").exists()
