"""The artifact seen from the controller: one reader of the tar for every use.

Shape, lock and sizes are checked when it is opened; every hash on ``verify()``
(a deploy runs that while the hosts connect, and reads its result before it sends a
byte or starts anything the artifact carries).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path

from deployer.errors import ArtifactError
from deployer.host.artifact import ENGINE, MANIFEST, SBOM, SignedManifest, read_signed, verify_artifact
from deployer.host.contract import SIGNATURE_MEMBER
from deployer.host.rootfiles import TEMPLATES


class Artifact:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.manifest: dict = verify_artifact(str(self.path), hash_all=False)

    @property
    def release_id(self) -> str:
        return self.manifest["release_id"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def verify(self) -> dict:
        """Every member's hash against the manifest (ArtifactError if one differs)."""
        return verify_artifact(str(self.path))

    def signed(self) -> SignedManifest:
        """The manifest's exact bytes and its signature (None when unsigned)."""
        return read_signed(str(self.path))

    def read(self, name: str) -> bytes:
        with tarfile.open(self.path) as tar:
            member = tar.extractfile(name)
            if member is None:
                raise ArtifactError(f"{self.path}: {name} is not a file")
            return member.read()

    def engine(self, dest: Path) -> Path:
        """The artifact's own engine: host and controller never disagree about versions."""
        dest.write_bytes(self.read(ENGINE))
        return dest

    def sbom(self) -> bytes:
        """The CycloneDX SBOM it carries (``sbom.cdx.json``), as its bytes."""
        if SBOM not in self.manifest["files"]:
            raise ArtifactError(f"{self.path}: carries no {SBOM} (built by a deployer without SBOMs)")
        return self.read(SBOM)

    def inventory(self) -> dict:
        """What it is made of (``host/inventory.py``): wheels, .pth files, the service's
        files, templates, config and the .env keys it names."""
        from deployer.host.inventory import inventory, tar_opener

        with tarfile.open(self.path) as tar:
            return inventory(self.manifest, tar_opener(tar))

    def templates(self) -> dict[str, str]:
        """The unit and launcher templates it carries (``packaging/*``), by key."""
        return {key: self.read(f"packaging/{name}").decode() for key, name in TEMPLATES.items()}

    def thin(self, members: Iterable[str], dest: Path) -> Path:
        """A tar of the manifest, its signature and only ``members``, byte for byte; the
        artifact itself when that is every member (a host that lacks everything gets no copy)."""
        wanted = set(members)
        if wanted >= set(self.manifest["files"]):
            return self.path
        with tarfile.open(self.path) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
            for info in src:
                if info.name in (MANIFEST, SIGNATURE_MEMBER) or info.name in wanted:
                    out.addfile(info, src.extractfile(info))
        return dest
