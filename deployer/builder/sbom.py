"""The artifact's SBOM: a CycloneDX document of exactly the wheels it ships (pure).

One component per dependency wheel (name, version, ``pkg:pypi`` purl naming the very
file, the sha256 of the bytes shipped); the service itself, from its own wheel, is the
document's subject (``metadata.component``) and depends on its direct requirements.
Everything in it comes from the build's inputs (the wheels, the commit time, the release
id), so two builds of one commit write the same bytes. The member is listed in the
manifest with its sha256 like every other, so whatever vouches for the manifest vouches
for the SBOM.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime
from pathlib import PurePosixPath

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from deployer import __version__
from deployer.builder.wheelhouse import Pin, normalize
from deployer.host.wheeltags import wheel_tags

SCHEMA = SchemaVersion.V1_6
#: the property naming a component's member in the artifact (``wheels/<file>``)
MEMBER_PROPERTY = "deployer:member"


def component(member: str, sha256: str, kind: ComponentType = ComponentType.LIBRARY) -> Component:
    """The component of one shipped wheel (``wheels/<file>``, its sha256)."""
    filename = PurePosixPath(member).name
    name, version = wheel_tags(filename)[:2]
    return Component(
        type=kind,
        name=normalize(name),
        version=version,
        bom_ref=f"{normalize(name)}=={version}",
        purl=PackageURL(
            type="pypi", name=normalize(name), version=version, qualifiers={"file_name": filename}
        ),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)],
        properties=[Property(name=MEMBER_PROPERTY, value=member)],
    )


def sbom_json(
    *,
    wheels: dict[str, str],
    app_wheel: str,
    pins: list[Pin],
    release_id: str,
    commit_epoch: int,
) -> str:
    """The SBOM of an artifact shipping ``wheels`` (member name -> sha256).

    ``app_wheel`` is the service's own wheel member; ``pins`` the resolved lock, whose
    annotations give the dependency graph: the service depends on its direct
    requirements, each dependency on the ones that name it as required by it.
    """
    app = component(app_wheel, wheels[app_wheel], ComponentType.APPLICATION)
    app.properties.add(Property(name="deployer:release_id", value=release_id))
    deps = [component(m, h) for m, h in sorted(wheels.items()) if m != app_wheel]
    meta = BomMetaData(component=app, timestamp=datetime.fromtimestamp(commit_epoch, UTC))
    meta.tools.components.add(Component(type=ComponentType.APPLICATION, name="deployer", version=__version__))
    bom = Bom(
        components=deps,
        metadata=meta,
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"deployer:{app.name}/{release_id}"),
    )
    by_name = {c.name: c for c in deps}
    needs: dict[str, list[Component]] = {name: [] for name in by_name}
    for pin in pins:
        if pin.name in by_name:
            for parent in pin.required_by:
                needs.setdefault(parent, []).append(by_name[pin.name])
    bom.register_dependency(app, [by_name[p.name] for p in pins if p.direct and p.name in by_name])
    for name, component_ in by_name.items():
        bom.register_dependency(component_, needs[name])
    with warnings.catch_warnings():  # the library warns about what it cannot check here
        warnings.simplefilter("ignore")
        return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
