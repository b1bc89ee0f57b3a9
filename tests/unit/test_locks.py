"""requirements/*.lock: what the deploy job (the one holding the secrets) installs, by hash.

The runtime lock pins exactly pyproject.toml's `[project] dependencies`, at their pinned
versions, and the build lock exactly `[build-system] requires` (the backend that installs
deployer from its trusted checkout with --no-build-isolation): a pin changed in
pyproject.toml without `make locks` fails here, so the locks cannot rot.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\]+) \\\n"
    r"(?P<hashes>(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)"
    r"(?P<via>(?:    #.*\n)*)",
    re.M,
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", req)
        assert m, f"{req!r} is not pinned with =="
        out[normalize(m.group(1))] = m.group(2)
    return out


def read_lock(name: str) -> dict[str, dict]:
    """name -> {version, hashes, via} of every entry; nothing else may be in the file."""
    text = (ROOT / "requirements" / name).read_text()
    entries = {}
    rest = text
    for m in ENTRY.finditer(text):
        # "# via x" or "# via" then "#   x" lines: what asked for it (none: the input itself)
        via = [line.strip().lstrip("#").strip() for line in m.group("via").splitlines()]
        entries[normalize(m.group("name"))] = {
            "version": m.group("version"),
            "hashes": re.findall(r"sha256:([0-9a-f]{64})", m.group("hashes")),
            "via": {v.removeprefix("via").strip() for v in via} - {""},
        }
        rest = rest.replace(m.group(0), "", 1)
    strays = [line for line in rest.splitlines() if line.strip() and not line.startswith("#")]
    assert not strays, f"{name}: lines that are no hashed pin: {strays}"
    return entries


def test_the_runtime_lock_pins_exactly_pyprojects_dependencies():
    wanted = pins(PYPROJECT["project"]["dependencies"])
    lock = read_lock("runtime.lock")
    for name, version in wanted.items():
        assert name in lock, f"runtime.lock lacks {name} (make locks)"
        assert lock[name]["version"] == version, f"{name}: lock {lock[name]['version']}, pyproject {version}"
    direct = {name for name, e in lock.items() if "deployer (pyproject.toml)" in e["via"]}
    assert direct == set(wanted), "direct requirements differ from [project] dependencies (make locks)"
    assert all(e["hashes"] for e in lock.values())
    assert not any("extra" in v or "[dev]" in v for e in lock.values() for v in e["via"])  # runtime only
    header = (ROOT / "requirements" / "runtime.lock").read_text().splitlines()[1]
    assert "uv pip compile pyproject.toml --generate-hashes --python-version 3.11" in header


def test_the_build_lock_pins_exactly_the_build_backend_and_agrees_with_the_runtime_lock():
    wanted = pins(PYPROJECT["build-system"]["requires"])
    build, runtime = read_lock("build.lock"), read_lock("runtime.lock")
    for name, version in wanted.items():
        assert build.get(name, {}).get("version") == version, f"build.lock: {name} (make locks)"
    assert all(e["hashes"] for e in build.values())
    direct = {name for name, e in build.items() if not e["via"]}  # the input (`make locks`)
    assert direct == set(wanted)
    for name in build.keys() & runtime.keys():  # one interpreter gets both: never two versions
        assert build[name]["version"] == runtime[name]["version"], name


def test_a_lock_that_drifted_would_be_caught(tmp_path):
    """The reader itself: an unhashed line and a changed pin are both seen."""
    text = (ROOT / "requirements" / "runtime.lock").read_text()
    assert ENTRY.search(text)
    drifted = text.replace("click==8.5.1 \\", "click==8.5.0 \\", 1)
    assert drifted != text
    m = {normalize(x.group("name")): x.group("version") for x in ENTRY.finditer(drifted)}
    assert m["click"] != pins(PYPROJECT["project"]["dependencies"])["click"]
    assert not ENTRY.search("requests==2.0\n")  # no hash: never an entry, so a stray line
