"""What an artifact is: ``sbom``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deployer.context import Context, pass_ctx
from deployer.errors import ArtifactError


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


def register(group: click.Group) -> None:
    group.add_command(sbom)
