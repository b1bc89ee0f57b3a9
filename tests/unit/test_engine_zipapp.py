"""The engine zipapp carries its bytecode: the host's Python starts it without compiling."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile

from deployer.builder.archive import module_pyc, zip_bytes
from deployer.builder.engine import build_engine, engine_zipapp


def run_from_zip(path, code: str) -> str:
    argv = [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(path)!r}); {code}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_every_module_of_the_engine_has_its_pyc_and_the_same_sources_give_the_same_bytes(tmp_path):
    pyz = build_engine(tmp_path / "engine.pyz")
    with zipfile.ZipFile(pyz) as z:
        names = set(z.namelist())
        for name in names - {"__main__.py"}:
            if name.endswith(".py"):
                pyc = z.read(name + "c")
                assert pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[4:8] == b"\x03\x00\x00\x00"
                assert pyc[8:16] == importlib.util.source_hash(z.read(name))
    assert "deployer/host/cli.pyc" in names
    assert (
        build_engine(tmp_path / "again.pyz").read_bytes() == pyz.read_bytes() == engine_zipapp().read_bytes()
    )
    out = subprocess.run([sys.executable, str(pyz), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "serve" in out.stdout


def test_zipimport_runs_the_pyc_beside_a_module_and_its_source_when_the_pyc_is_stale(tmp_path):
    source = b"WHO = 'source'\n"
    other = module_pyc(b"WHO = 'bytecode'\n", "m.py")
    # bytecode of other code under the source's hash: which of the two runs shows which was read
    marked = other[:8] + importlib.util.source_hash(source) + other[16:]
    (tmp_path / "used.zip").write_bytes(zip_bytes({"m.py": source, "m.pyc": marked}))
    assert run_from_zip(tmp_path / "used.zip", "import m; print(m.WHO)") == "bytecode"
    # a .pyc whose hash is not its source's is ignored: the source is compiled instead
    (tmp_path / "stale.zip").write_bytes(zip_bytes({"m.py": source, "m.pyc": other}))
    assert run_from_zip(tmp_path / "stale.zip", "import m; print(m.WHO)") == "source"


def test_the_engine_is_the_same_bytes_whatever_the_building_process_did_before(tmp_path):
    """marshal writes a one-character string as interned when anything in the process
    interned it, and a set in the order of the process's hash seed: a build that had done
    either compiled other bytes for the same sources, until each build compiled in a fresh
    interpreter."""
    build = (
        "import sys; from pathlib import Path; import deployer; {before}\n"
        "from deployer.builder import archive, engine\n"
        "root = Path(deployer.__file__).resolve().parent.parent\n"
        "names = engine._sources(root)\n"
        "archive.write_zipapp(Path(sys.argv[1]), root, names, engine.ENGINE_MAIN, compiled=True)\n"
    )
    made = []
    for n, (before, seed) in enumerate([("pass", "1"), ("sys.intern('{'); sys.intern('}')", "2")]):
        out = tmp_path / f"engine-{n}.pyz"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", build.format(before=before), str(out)], check=True, env=env)
        made.append(out.read_bytes())
    assert made[0] == made[1]
