"""A service whose version the build backend makes (dynamic = ["version"]) builds, and
gets the version deployer stamps, so every release is distinct."""

from __future__ import annotations

import zipfile
from pathlib import Path

from deployer.builder import source
from tests.conftest import git

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "notes-api"
dynamic = ["version"]
requires-python = ">=3.9"

[tool.hatch.version]
path = "notes_api/__init__.py"
"""


def project(tmp_path: Path) -> Path:
    src = tmp_path / "svc"
    (src / "notes_api").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "notes_api" / "__init__.py").write_text('__version__ = "1.4.0"\n')
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "one")
    return src


def test_a_dynamic_version_is_stamped_from_the_last_tag(tmp_path):
    src = project(tmp_path)
    pyproject = source.load_pyproject(src)
    assert source.base_version(pyproject, src) == "0.0.0"  # no tag yet
    git(src, "tag", "v1.4.0")
    git(src, "commit", "-q", "--allow-empty", "-m", "two")
    commit = source.read_commit(src)
    base = source.base_version(pyproject, src)
    version = source.release_version(base, commit, "")
    assert base == "1.4.0" and version == f"1.4.0.dev{commit.epoch}+g{commit.short}"
    staged = source.stage_source(src, source.source_files(src), tmp_path / "staged", version)
    wheel = source.build_app_wheel(staged, tmp_path / "out", commit.epoch)
    assert wheel.name == f"notes_api-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(f"notes_api-{version}.dist-info/METADATA").decode()
    assert f"Version: {version}" in meta


def test_a_tag_build_of_a_dynamic_version_gets_the_tags_version(tmp_path):
    src = project(tmp_path)
    git(src, "tag", "v2.0.0")
    commit = source.read_commit(src)
    assert source.release_version(source.base_version(source.load_pyproject(src), src), commit, "") == "2.0.0"
