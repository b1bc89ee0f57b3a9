"""The diff of two inventories (pure) and the inventory of a wheel: what runs at every
interpreter start, what changed, and .env keys by name only."""

from __future__ import annotations

import copy
import io
import zipfile

from deployer.diff import diff, is_empty, render
from deployer.host.inventory import read_wheel, site_path


def wheel(**files: str) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    buf.seek(0)
    return buf


def dep(name: str, version: str, sha: str, pth: dict | None = None) -> dict:
    return {
        "name": name,
        "version": version,
        "file": f"{name}-{version}-py3-none-any.whl",
        "sha256": sha,
        "pth": pth or {},
    }


BASE = {
    "app": "notes_api",
    "version": "1.0.0",
    "release_id": "20261126T101500Z-3f2a9c1",
    "format": "wheelhouse",
    "git": {"sha": "a" * 40},
    "app_wheel": {**dep("notes-api", "1.0.0", "0" * 64), "files": {"notes_api/app.py": "1" * 64}},
    "dependencies": {
        "starlette": dep("starlette", "0.40.0", "2" * 64),
        "anyio": dep("anyio", "4.0", "3" * 64),
    },
    "templates": {"packaging/unit.service.in": "[Service]\nType=${service_type}\nUser=${user}\n"},
    "env": {"required": ["PORT"], "public": ["PORT"], "keys": None},
    "config": {"service_type": "notify", "keep_releases": 5},
}


def test_a_wheels_pth_files_are_those_that_land_in_site_packages():
    found = read_wheel(
        wheel(
            **{
                "six.py": "",
                "distutils-precedence.pth": "import os",
                "x-1.0.data/purelib/extra.pth": "import sys",
                "pkg/not-at-the-root.pth": "",
                "x-1.0.dist-info/RECORD": "",
            }
        ),
        "wheels/x.whl",
        with_files=True,
    )
    assert sorted(found["pth"]) == ["distutils-precedence.pth", "extra.pth"]
    assert sorted(found["files"]) == [
        "distutils-precedence.pth",
        "extra.pth",
        "pkg/not-at-the-root.pth",
        "six.py",
    ]
    assert (
        site_path("x-1.0.data/platlib/a.so") == "a.so"
        and site_path("x-1.0.data/scripts/a") == "x-1.0.data/scripts/a"
    )


def test_the_same_inventory_has_no_differences():
    d = diff(BASE, copy.deepcopy(BASE))
    assert is_empty(d)
    assert render(d).splitlines()[1:] == ["no other differences"]


def test_every_kind_of_change_is_named():
    new = copy.deepcopy(BASE)
    new.update(version="1.1.0", release_id="20261127T101500Z-0a1b2c3", format="pex")
    new["app_wheel"]["files"] = {"notes_api/app.py": "9" * 64, "notes_api/new.py": "8" * 64}
    new["dependencies"]["starlette"] = dep("starlette", "0.41.0", "4" * 64)
    new["dependencies"]["anyio"] = dep(
        "anyio", "4.0", "5" * 64, pth={"anyio-hook.pth": "6" * 64}
    )  # same version
    new["dependencies"]["six"] = dep("six", "1.17.0", "7" * 64)
    new["templates"]["packaging/unit.service.in"] = "[Service]\nType=${service_type}\nUser=root\n"
    new["env"] = {"required": ["PORT", "API_TOKEN"], "public": [], "keys": None}
    new["config"]["service_type"] = "exec"
    d = diff(BASE, new)
    assert d["app_files"] == {"added": ["notes_api/new.py"], "removed": [], "changed": ["notes_api/app.py"]}
    assert d["dependencies"]["added"] == [{"name": "six", "version": "1.17.0", "sha256": "7" * 64}]
    assert [c["name"] for c in d["dependencies"]["changed"]] == ["anyio", "starlette"]
    assert d["pth"]["added"] == [{"wheel": "anyio", "file": "anyio-hook.pth", "sha256": "6" * 64}]
    assert d["templates"]["changed"]["packaging/unit.service.in"][-2:] == ["-User=${user}", "+User=root"]
    assert d["config"] == {"service_type": {"from": "notify", "to": "exec"}}
    assert d["env"] == {
        "required": {"added": ["API_TOKEN"], "removed": []},
        "public": {"added": [], "removed": ["PORT"]},
        "keys": None,
    }
    text = render(d)
    for line in (
        "format: wheelhouse -> pex",
        "notes_api files: 1 added, 0 removed, 1 changed",
        "dependencies: 1 added, 0 removed, 2 changed",
        f"  + six 1.17.0 (sha256:{'7' * 12})",
        f"  ~ anyio 4.0, other bytes (sha256:{'3' * 12} -> sha256:{'5' * 12})",
        f"  ~ starlette 0.40.0 -> 0.41.0 (sha256:{'2' * 12} -> sha256:{'4' * 12})",
        ".pth files (run at every interpreter start): 1 new, 0 changed, 0 removed",
        f"  + anyio-hook.pth in anyio (sha256:{'6' * 12})",
        "  ~ packaging/unit.service.in",
        "      +User=root",
        "  ~ service_type: 'notify' -> 'exec'",
        "  + API_TOKEN ([env] required)",
        "  - PORT ([env] public)",
    ):
        assert line in text.splitlines(), line
    assert "no other differences" not in text


def test_env_keys_of_the_env_files_are_compared_when_both_are_known():
    a, b = copy.deepcopy(BASE), copy.deepcopy(BASE)
    a["env"]["keys"], b["env"]["keys"] = ["PORT", "OLD"], ["PORT", "NEW"]
    d = diff(a, b)
    assert d["env"]["keys"] == {"added": ["NEW"], "removed": ["OLD"]}
    assert "  + NEW (in the .env it ran with)" in render(d).splitlines()
    b["env"]["keys"] = None  # one side unknown: nothing said
    assert diff(a, b)["env"]["keys"] is None
