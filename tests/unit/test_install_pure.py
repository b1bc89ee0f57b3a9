"""Which distributions a cloned venv must reinstall (pure)."""

from __future__ import annotations

import json
import os

from deployer.host.install import changed_wheels, dist_name


def test_changed_wheels_by_name_or_bytes(tmp_path):
    seed = tmp_path / "manifest.json"
    seed.write_text(
        json.dumps(
            {
                "files": {
                    "wheels/a-1.0-py3-none-any.whl": {"sha256": "a" * 64},
                    "wheels/b-1.0-py3-none-any.whl": {"sha256": "b" * 64},
                    "engine.pyz": {"sha256": "e" * 64},
                }
            }
        )
    )
    new = {
        "files": {
            "wheels/a-1.0-py3-none-any.whl": {"sha256": "a" * 64},  # unchanged
            "wheels/b-1.0-py3-none-any.whl": {"sha256": "c" * 64},  # same name, other bytes
            "wheels/app-2.0-py3-none-any.whl": {"sha256": "d" * 64},  # new version
            "engine.pyz": {"sha256": "f" * 64},
        }
    }
    assert changed_wheels(seed, new) == ["wheels/app-2.0-py3-none-any.whl", "wheels/b-1.0-py3-none-any.whl"]
    assert [dist_name(w) for w in changed_wheels(tmp_path / "missing.json", new)] == ["a", "app", "b"]


def fake_venv(venv, interpreter: str) -> None:
    """The shape clone_venv copies: pyvenv.cfg, bin/ naming the venv, site-packages."""
    site = venv / "lib" / "python3.11" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("X = 1\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(interpreter)
    (venv / "bin" / "tool").write_text(f"#!{venv}/bin/python\nimport pkg\n")
    (venv / "bin" / "tool").chmod(0o755)
    (venv / "bin" / "plain").write_text("no path here\n")
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = {interpreter} -m venv {venv}\n")


def test_the_spare_venv_becomes_the_next_release_s_own(tmp_path):
    """Made after a release went live, taken whole by the next one: every file of the
    live venv shared by hard link, the two that name the venv naming the new place."""
    import sys

    from deployer.host.seed import SPARE, drop_spares, make_spare, take_spare

    interpreter = sys.executable
    live = tmp_path / "releases" / "r1"
    fake_venv(live / "venv", interpreter)
    assert make_spare(live, interpreter) and make_spare(live, interpreter)  # the second: already there
    new = tmp_path / "releases" / "r2" / "venv"
    new.parent.mkdir()
    assert take_spare(live / "venv", new)
    assert not (live / SPARE).exists() and not take_spare(live / "venv", tmp_path / "again")
    assert (new / "bin" / "tool").read_text() == f"#!{new}/bin/python\nimport pkg\n"
    assert (new / "bin" / "tool").stat().st_mode & 0o111
    assert f"-m venv {new}\n" in (new / "pyvenv.cfg").read_text()
    assert (live / "venv" / "bin" / "tool").read_text().startswith(f"#!{live}/venv/bin/python")  # untouched
    src = "lib/python3.11/site-packages/pkg/__init__.py"
    assert (new / src).stat().st_ino == (live / "venv" / src).stat().st_ino
    assert (new / "bin" / "plain").stat().st_ino == (live / "venv" / "bin" / "plain").stat().st_ino
    assert os.readlink(new / "bin" / "python") == interpreter

    # half made (no ready mark): never taken, made again; a release not live keeps none
    assert make_spare(live, interpreter)
    (live / SPARE / ".ready").unlink()
    assert not take_spare(live / "venv", tmp_path / "half")
    assert make_spare(live, interpreter) and (live / SPARE / ".ready").is_file()
    drop_spares([live])
    assert not (live / SPARE).exists() and (live / "venv").is_dir()
    # another interpreter than the venv's: no spare
    assert not make_spare(live, "/usr/bin/false")
