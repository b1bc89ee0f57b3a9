"""Pure parts of the build: target tags, glibc levels, versions, lock and release id."""

from __future__ import annotations

from deployer.builder.manifest import hash_lock, release_id
from deployer.builder.source import Commit, release_version
from deployer.builder.target import pip_target_args, platform_tags, uv_platform, wheel_glibc
from deployer.config import Platform

T = Platform(python_version="3.11", platform="linux_x86_64", glibc="2.28")


def test_platform_tags_cover_target_glibc_down_to_2_17():
    tags = platform_tags(T)
    assert tags[0] == "manylinux_2_28_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags
    assert uv_platform(T) == "x86_64-manylinux_2_28"
    args = pip_target_args(T)
    assert args[:2] == ["--only-binary", ":all:"]
    assert "cp311" in args and "3.11" in args


def test_wheel_glibc():
    assert wheel_glibc("a-1-cp311-cp311-manylinux_2_28_x86_64.whl") == (2, 28)
    assert wheel_glibc("a-1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl") == (2, 17)
    assert wheel_glibc("a-1-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.whl") == (2, 5)
    assert wheel_glibc("a-1-py3-none-any.whl") is None
    assert wheel_glibc("a-1-cp311-cp311-linux_x86_64.whl", (2, 36)) == (2, 36)


def commit(tag=None, dirty=False):
    return Commit(sha="3f2a9c1" + "0" * 33, epoch=1764152100, ref="main", tag=tag, dirty=dirty)


def test_release_versions_are_distinct():
    assert release_version("0.1.0", commit(), "ab" * 32) == "0.1.0.dev1764152100+g3f2a9c1"
    assert release_version("0.1.0", commit(tag="v1.2.3"), "") == "1.2.3"
    dirty = release_version("0.1.0", commit(tag="v1.2.3", dirty=True), "cd" * 32)
    assert dirty == "0.1.0.dev1764152100+g3f2a9c1.dcdcdcdcd"
    assert release_version("0.2.0.dev3", commit(), "") == "0.2.0.dev1764152100+g3f2a9c1"


def test_hash_lock_and_release_id():
    wheels = {"B_pkg-2.0-py3-none-any.whl": "b" * 64, "a-1.0-py3-none-any.whl": "a" * 64}
    lock = hash_lock(wheels)
    assert lock.splitlines()[0] == "a==1.0 \\"
    assert "b-pkg==2.0" in lock and f"--hash=sha256:{'b' * 64}" in lock
    rid = release_id(1764152100, lock, wheels)
    assert rid.startswith("20251126T101500Z-") and len(rid.split("-")[1]) == 7
    assert rid == release_id(1764152100, lock, dict(reversed(list(wheels.items()))))
    assert rid != release_id(1764152100, lock, {**wheels, "c-1-py3-none-any.whl": "c" * 64})


def test_host_reads_the_same_tags_the_build_writes():
    from deployer.host.preflight import wheel_problems

    files = {
        f"wheels/{n}": {}
        for n in (
            "a-1-py3-none-any.whl",
            "b-1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "c-1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            "d-1-cp311-cp311-linux_x86_64.whl",
        )
    }
    assert wheel_problems({"files": files}, "x86_64", "2.36") == []
    assert wheel_problems({"files": files}, "x86_64", "2.17") == ["b-1-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert len(wheel_problems({"files": files}, "aarch64", "2.36")) == 3
