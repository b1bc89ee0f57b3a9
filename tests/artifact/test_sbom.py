"""The SBOM inside a real artifact: valid CycloneDX, exactly the shipped wheels with the
sha256 of their bytes, listed in the manifest like every member; ``deployer sbom``."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from deployer.builder.manifest import sha256_file
from deployer.host.artifact import SBOM, read_manifest
from tests.conftest import extract

pytestmark = pytest.mark.slow


def assert_sbom_lists_exactly_the_shipped_wheels(artifact: Path, tmp_path: Path) -> dict:
    """The artifact's SBOM validates and names every wheel it ships, by its sha256 (and
    the service's wheel as the subject); returns the SBOM."""
    tree = extract(artifact, tmp_path / "sbom-tree")  # every member's hash checked
    manifest = read_manifest(str(artifact))
    text = (tree / SBOM).read_text(encoding="utf-8")
    assert manifest["files"][SBOM]["sha256"] == sha256_file(tree / SBOM)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    doc = json.loads(text)
    shipped = {name: sha256_file(tree / name) for name in manifest["files"] if name.startswith("wheels/")}
    subject = doc["metadata"]["component"]
    listed = {}
    for c in [subject, *doc["components"]]:
        member = next(p["value"] for p in c["properties"] if p["name"] == "deployer:member")
        assert member not in listed, f"{member} listed twice"
        listed[member] = next(h["content"] for h in c["hashes"] if h["alg"] == "SHA-256")
        assert c["purl"].startswith(f"pkg:pypi/{c['name']}@")
    assert listed == shipped
    subject_member = next(p["value"] for p in subject["properties"] if p["name"] == "deployer:member")
    assert subject_member == manifest["app_wheel"] and subject["type"] == "application"
    assert subject["version"] == manifest["version"]
    return doc


def test_the_sbom_is_valid_cyclonedx_of_exactly_the_shipped_wheels(example_build, tmp_path):
    doc = assert_sbom_lists_exactly_the_shipped_wheels(example_build.path, tmp_path)
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    direct = graph[doc["metadata"]["component"]["bom-ref"]]
    assert {"kurigram", "aiohttp", "pydantic"} <= {ref.split("==")[0] for ref in direct}
    assert any(ref.startswith("pydantic-core==") for ref in graph[next(r for r in direct if "pydantic" in r)])


def test_sbom_prints_the_member_and_a_table(example_build):
    run = [sys.executable, "-m", "deployer"]
    raw = subprocess.run([*run, "--json", "sbom", str(example_build.path)], capture_output=True)
    assert raw.returncode == 0, raw.stderr
    with tarfile.open(example_build.path) as tar:
        assert raw.stdout == tar.extractfile(SBOM).read()  # byte for byte: its sha256 checks
    table = subprocess.run([*run, "--plain", "sbom", str(example_build.path)], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    wheels = [n for n in example_build.manifest["files"] if n.startswith("wheels/")]
    assert lines[0].startswith(f"tg-video-streamer {example_build.manifest['version']}: {len(wheels) - 1} ")
    assert len(lines) == len(wheels)  # the subject, then one line per dependency
    assert any(line.split()[:2] == ["pyaes", "1.6.1"] for line in lines)  # built from its sdist


def test_an_artifact_without_an_sbom_is_one_clear_line(example_build, tmp_path):
    from tests.host.artifacts import rebuild

    old = rebuild(example_build.path, tmp_path / "old.tar", lambda tree: (tree / SBOM).unlink())
    out = subprocess.run(
        [sys.executable, "-m", "deployer", "sbom", str(old.path)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"deployer: error: {old.path}: carries no {SBOM} (built by a deployer without SBOMs)"
    ]
