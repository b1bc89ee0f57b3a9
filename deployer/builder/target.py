"""Wheel tags and glibc levels for the configured target (pure)."""

from __future__ import annotations

from deployer.config import Platform
from deployer.host.wheeltags import manylinux, wheel_tags

OLDEST_GLIBC = (2, 17)


def abi_tag(target: Platform) -> str:
    return "cp" + target.python_version.replace(".", "")


def platform_tags(target: Platform) -> list[str]:
    """Every platform tag a wheel for the target may carry, most specific first."""
    arch = target.arch
    major, minor = target.glibc_tuple
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, OLDEST_GLIBC[1] - 1, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def pip_target_args(target: Platform) -> list[str]:
    """`pip download` arguments that select wheels for the target, not the build machine."""
    args = ["--only-binary", ":all:", "--implementation", "cp"]
    args += ["--python-version", target.python_version]
    for abi in (abi_tag(target), "abi3", "none"):
        args += ["--abi", abi]
    for tag in platform_tags(target):
        args += ["--platform", tag]
    return args


def uv_platform(target: Platform) -> str:
    """uv's --python-platform name for the target (e.g. x86_64-manylinux_2_36)."""
    major, minor = target.glibc_tuple
    return f"{target.arch}-manylinux_{major}_{minor}"


def wheel_glibc(filename: str, build_glibc: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The glibc a wheel needs: from its manylinux tag, or the build machine's for linux_*.

    A wheel with several platform tags (``manylinux_2_17_x86_64.manylinux2014_x86_64``)
    runs where any of them does, so the lowest counts. Pure wheels need none.
    """
    needs = []
    for plat in wheel_tags(filename)[4].split("."):
        tag = manylinux(plat)
        if tag:
            needs.append(tag[1])
        elif plat.startswith("linux_"):
            needs.append(build_glibc or OLDEST_GLIBC)
    return min(needs) if needs else None


def glibc_str(v: tuple[int, int] | None) -> str | None:
    return f"{v[0]}.{v[1]}" if v else None
