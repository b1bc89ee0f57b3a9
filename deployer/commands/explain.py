"""What an artifact is and what a release changes: ``sbom`` and ``diff``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deployer.context import Context, pass_ctx
from deployer.errors import ArtifactError, HostError, UsageError


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@pass_ctx
def sbom(obj: Context, artifact: str) -> None:
    """The CycloneDX SBOM an artifact carries: its JSON with --json, else a table."""
    from deployer.artifact import Artifact

    art = Artifact(Path(artifact))
    art.verify()
    raw = art.sbom()
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ArtifactError(f"{artifact}: sbom.cdx.json is not JSON ({e})") from None
    rows = sbom_rows(doc)
    shipped = {f["sha256"] for n, f in art.manifest["files"].items() if n.startswith("wheels/")}
    listed = {r["sha256"] for r in rows}
    if listed != shipped:
        raise ArtifactError(
            f"{artifact}: sbom.cdx.json does not list exactly the shipped wheels "
            f"({len(listed)} listed, {len(shipped)} shipped)"
        )
    if obj.reporter.mode == "json":
        obj.reporter.close()
        click.echo(raw.decode("utf-8"), nl=False)  # the member itself, byte for byte
        return
    app, deps = rows[0], rows[1:]
    width = max((len(r["name"]) for r in deps), default=0)
    vwidth = max((len(r["version"]) for r in deps), default=0)
    lines = [
        f"{app['name']} {app['version']}: {len(deps)} dependencies "
        f"(CycloneDX {doc.get('specVersion')}, sbom.cdx.json; --json prints it)"
    ]
    lines += [f"  {r['name']:<{width}}  {r['version']:<{vwidth}}  sha256:{r['sha256']}" for r in deps]
    obj.out(doc, "\n".join(lines))


def sbom_rows(doc: dict) -> list[dict]:
    """name, version, sha256 of the SBOM's subject (first), then of every component."""
    try:
        found = [doc["metadata"]["component"], *doc.get("components", [])]
        return [
            {
                "name": c["name"],
                "version": c.get("version", ""),
                "sha256": next(h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"),
            }
            for c in found
        ]
    except (KeyError, TypeError, StopIteration):
        raise ArtifactError("sbom.cdx.json: a component lacks its name or SHA-256 hash") from None


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--host",
    "host",
    metavar="NAME",
    help="A and B are release ids kept on this host (name or address), not artifact files.",
)
@pass_ctx
def diff(obj: Context, a: str, b: str, host: str | None) -> None:
    """What changes from A to B: the service's files, dependencies, .pth files, templates,
    host config, .env keys (names only)."""
    from deployer.diff import diff as compare
    from deployer.diff import render

    first, second = _host_inventories(obj, host, a, b) if host else (_inventory(a), _inventory(b))
    d = compare(first, second)
    obj.out(d, render(d))


def _inventory(path: str) -> dict:
    from deployer.artifact import Artifact

    if not Path(path).is_file():
        raise UsageError(f"{path}: no such artifact (with --host, A and B are release ids)")
    art = Artifact(Path(path))
    art.verify()
    return art.inventory()


def _host_inventories(obj: Context, host: str, a: str, b: str) -> tuple[dict, dict]:
    """The inventories of releases ``a`` and ``b`` on ``host``, from its engine."""
    from deployer.commands.common import local_engine
    from deployer.host.contract import Step
    from deployer.host.patterns import check_release_id

    for rid in (a, b):
        check_release_id(rid, "diff --host")
    targets = obj.hosts([host])
    with local_engine() as engine:
        data, code = obj.pipeline().command(targets, engine, "inventory", a, b)
    label, events = next(iter(data.items()))
    if isinstance(events, str):
        raise HostError(events)
    found = {e["detail"]: e["inventory"] for e in events if e.get("step") == Step.INVENTORY}
    if code or a not in found or b not in found:
        raise HostError("the host answered without both inventories", host=label)
    return found[a], found[b]


def register(group: click.Group) -> None:
    group.add_command(sbom)
    group.add_command(diff)
