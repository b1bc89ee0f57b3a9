"""Bytecode layers: compiled once at build time, stamped for the installed sources on the host."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deployer.builder.bytecode import build_layers
from deployer.errors import ArtifactError
from deployer.host.bytecode import Interpreter, apply_layer, fitting

SOURCES = {
    "demo/__init__.py": "VALUE = 41\n",
    "demo/util.py": "def answer():\n    return 42\n",
    "demo-1.0.data/purelib/demo_extra.py": "EXTRA = True\n",  # lands in site-packages
    "demo-1.0.data/scripts/demo-cli.py": "print('a script')\n",  # lands in bin/: not compiled
    "demo/data.txt": "not python\n",
    "demo/broken.py": "def (:\n",  # does not compile: left to Python at import
}


def make_wheel(path: Path, files: dict[str, str] = SOURCES) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("demo-1.0.dist-info/RECORD", "")
    return path


def install(site: Path, wheel: Path) -> None:
    """What an installer does with the wheel's site-packages files (no .pyc)."""
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            rel = name.split("/", 2)[2] if "/purelib/" in name else name
            if ".data/" in rel:
                continue
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_bytes(z.read(name))


def here() -> Interpreter:
    return Interpreter(importlib.util.MAGIC_NUMBER, sys.implementation.cache_tag, Path())


@pytest.fixture()
def layer(tmp_path) -> Path:
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    layers, python = build_layers([wheel], sys.executable, tmp_path / "cache", tmp_path / "out")
    assert python == {"tag": here().tag, "magic": here().magic.hex()}
    return layers[wheel.name]


def test_a_layer_holds_site_packages_sources_only_with_the_header_left_to_the_host(layer):
    with zipfile.ZipFile(layer) as z:
        names = sorted(z.namelist())
        assert names == ["demo/__init__.py", "demo/util.py", "demo_extra.py"]
        for name in names:
            data = z.read(name)
            assert data[:4] == importlib.util.MAGIC_NUMBER and data[4:16] == bytes(12)


def test_layers_are_byte_identical_from_a_fresh_compile(tmp_path, layer):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    again, _ = build_layers([wheel], sys.executable, tmp_path / "cache2", tmp_path / "out2")
    assert again[wheel.name].read_bytes() == layer.read_bytes()


def test_a_layer_is_the_same_compiled_alone_or_among_other_wheels(tmp_path, layer):
    """A warm build compiles only its new wheels, a cold one every wheel: the same wheel
    must give the same layer either way (nothing of its position among them is kept)."""
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    others = [
        make_wheel(tmp_path / f"other{i}-1.0-py3-none-any.whl", {f"other{i}/x.py": "X = 1\n"})
        for i in range(3)
    ]
    together, _ = build_layers([*others, wheel], sys.executable, tmp_path / "cache3", tmp_path / "out3")
    assert together[wheel.name].read_bytes() == layer.read_bytes()


def test_stamped_pyc_are_what_python_itself_accepts(tmp_path, layer):
    site = tmp_path / "site"
    install(site, tmp_path / "demo-1.0-py3-none-any.whl")
    assert apply_layer(layer, here()._replace(site=site)) == 3
    code = "import demo, demo.util, demo_extra; print(demo.util.answer.__code__.co_filename)"
    argv = [sys.executable, "-B", "-v", "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(site / "demo" / "util.py"), "Python names the real source"
    for name in ("demo/__init__.py", "demo/util.py", "demo_extra.py"):
        src = site / name
        assert f"{importlib.util.cache_from_source(str(src))} matches {src}" in out.stderr

    # an edited source: the stamped .pyc is stale, and Python recompiles it
    (site / "demo" / "util.py").write_text("def answer():\n    return 43\n")
    os.utime(site / "demo" / "util.py", (1, 1))
    out = subprocess.run(
        [sys.executable, "-B", "-c", "import demo.util; print(demo.util.answer())"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site)},
    )
    assert out.stdout.strip() == "43"


def test_a_layer_for_another_python_writes_nothing(tmp_path, layer):
    site = tmp_path / "site"
    install(site, tmp_path / "demo-1.0-py3-none-any.whl")
    other = here()._replace(magic=b"\x00\x00\r\n", site=site)
    assert apply_layer(layer, other) == 0
    assert not list(site.rglob("*.pyc"))


def test_only_a_layer_made_for_the_venvs_python_fits(tmp_path):
    python = Path(sys.executable)
    me = here()
    made_here = {"tag": me.tag, "magic": me.magic.hex(), "layers": {"wheels/a.whl": "bytecode/a.zip"}}
    assert fitting({"bytecode": made_here}, python).magic == me.magic
    assert fitting({"bytecode": {**made_here, "magic": "00000d0a"}}, python) is None
    assert fitting({"bytecode": {**made_here, "tag": "cpython-39"}}, python) is None
    assert fitting({"bytecode": None}, python) is None
    assert fitting({}, python) is None


def test_unsafe_names_in_a_layer_are_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../escape.py", importlib.util.MAGIC_NUMBER + bytes(12))
    with pytest.raises(ArtifactError, match="unsafe member name"):
        apply_layer(bad, here()._replace(site=tmp_path / "site"))
    assert not (tmp_path / "escape.py").exists()


def test_a_pyc_shared_with_another_venv_is_replaced_not_written_into(tmp_path, layer):
    site = tmp_path / "site"
    install(site, tmp_path / "demo-1.0-py3-none-any.whl")
    pyc = Path(importlib.util.cache_from_source(str(site / "demo" / "util.py")))
    pyc.parent.mkdir()
    live = tmp_path / "live.pyc"  # the live venv's hardlink to the same inode
    live.write_bytes(b"the live release's bytecode")
    os.link(live, pyc)
    assert apply_layer(layer, here()._replace(site=site)) == 3
    assert live.read_bytes() == b"the live release's bytecode"
    assert pyc.read_bytes()[:4] == importlib.util.MAGIC_NUMBER and not os.path.samefile(live, pyc)


def test_the_build_compiles_with_its_own_python_or_one_of_the_targets_version():
    from deployer.builder.bytecode import build_python
    from deployer.config import Platform
    from deployer.errors import BuildError

    mine = "{}.{}".format(*sys.version_info[:2])
    assert build_python(Platform(python_version=mine), None) == sys.executable
    # no such interpreter here: the build goes on without layers (hosts compile)...
    assert build_python(Platform(python_version="3.99"), None) is None
    # ...but one named in artifact.build_python must work
    with pytest.raises(BuildError, match="python3.99"):
        build_python(Platform(python_version="3.99"), "python3.99")
