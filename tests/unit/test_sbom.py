"""The SBOM builder (pure): a CycloneDX document of exactly the wheels given, valid by the
library's own validator, the same bytes for the same inputs."""

from __future__ import annotations

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from deployer.builder.sbom import sbom_json
from deployer.builder.wheelhouse import parse_pins

APP = "wheels/notes_api-1.0.0.dev5+gabc1234-py3-none-any.whl"
WHEELS = {
    APP: "a" * 64,
    "wheels/aiohttp-3.14.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": "b" * 64,
    "wheels/yarl-1.25.1-cp311-cp311-manylinux_2_17_x86_64.whl": "c" * 64,
    "wheels/typing_extensions-4.16.0-py3-none-any.whl": "d" * 64,
}
PINS = parse_pins(
    "aiohttp==3.14.5           # via -r /tmp/x/requirements.in\n"
    "typing-extensions==4.16.0  # via -r /tmp/x/requirements.in, aiohttp\n"
    "yarl==1.25.1              # via aiohttp\n"
)


def make(**over) -> str:
    args = dict(
        wheels=WHEELS, app_wheel=APP, pins=PINS, release_id="20261126T101500Z-3f2a9c1", commit_epoch=0
    )
    return sbom_json(**{**args, **over})


def validate(text: str) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error


def test_the_sbom_validates_and_lists_exactly_the_wheels_with_their_hashes():
    text = make()
    validate(text)
    doc = json.loads(text)
    app = doc["metadata"]["component"]
    assert (app["type"], app["name"], app["version"]) == ("application", "notes-api", "1.0.0.dev5+gabc1234")
    plus = "1.0.0.dev5%2Bgabc1234"
    assert app["purl"] == f"pkg:pypi/notes-api@{plus}?file_name=notes_api-{plus}-py3-none-any.whl"
    listed = {
        prop["value"]: hashes["content"]
        for c in [app, *doc["components"]]
        for prop in c["properties"]
        if prop["name"] == "deployer:member"
        for hashes in c["hashes"]
        if hashes["alg"] == "SHA-256"
    }
    assert listed == WHEELS
    assert {c["name"] for c in doc["components"]} == {"aiohttp", "yarl", "typing-extensions"}
    assert all(c["purl"].startswith(f"pkg:pypi/{c['name']}@{c['version']}?") for c in doc["components"])
    assert doc["metadata"]["timestamp"].startswith("1970-01-01T00:00:00")


def test_the_dependency_graph_is_the_resolvers():
    doc = json.loads(make())
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    app = doc["metadata"]["component"]["bom-ref"]
    assert graph[app] == {"aiohttp==3.14.5", "typing-extensions==4.16.0"}
    assert graph["aiohttp==3.14.5"] == {"yarl==1.25.1", "typing-extensions==4.16.0"}
    assert graph["yarl==1.25.1"] == set() and graph["typing-extensions==4.16.0"] == set()


def test_the_same_inputs_give_the_same_bytes_and_another_release_another_serial():
    assert make() == make()
    assert (
        json.loads(make())["serialNumber"]
        != json.loads(make(release_id="20261126T101500Z-0000000"))["serialNumber"]
    )


def test_pins_read_the_resolvers_annotations():
    aiohttp, typing_extensions, yarl = PINS
    assert aiohttp.direct and not aiohttp.required_by
    assert typing_extensions.direct and typing_extensions.required_by == ("aiohttp",)
    assert not yarl.direct and yarl.required_by == ("aiohttp",)
    assert [p.spec for p in parse_pins("Foo_Bar==1.0\n# comment\n")] == ["foo-bar==1.0"]
