"""The build side: ``build`` and ``verify``."""

from __future__ import annotations

from pathlib import Path

import click

from deployer.context import Context, pass_ctx


@click.command()
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="dist",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the artifact is written.",
)
@pass_ctx
def build(obj: Context, out_dir: str) -> None:
    """Build ONE offline artifact (wheelhouse or pex) for the configured target."""
    result = build_artifact(obj, Path(out_dir))
    click.echo(str(result.path))


def build_artifact(obj: Context, out_dir: Path, config=None, config_path=None):
    """Build the release (of ``config``, default the context's) into ``out_dir``, reporting each step."""
    from deployer.builder import build_release

    result = build_release(
        config or obj.config(),
        config_path or obj.config_path,
        out_dir,
        on_step=lambda name, detail: obj.reporter.event(
            "build", {"step": name, "status": "ok", "detail": detail}
        ),
    )
    m = result.manifest
    obj.reporter.say(f"built {m['app']} {m['version']} release {m['release_id']} in {result.seconds:.1f}s")
    return result


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@pass_ctx
def verify(obj: Context, artifact: str) -> None:
    """Check an artifact's manifest, every file's hash and its lock."""
    from deployer.host.artifact import verify_artifact

    m = verify_artifact(artifact)
    glibc = m.get("glibc_required") or "none"
    obj.out(
        m,
        f"ok: {m['app']} {m['version']} release {m['release_id']} ({m['format']}), "
        f"{len(m['files'])} files, Python {m['target']['python_version']} "
        f"{m['target']['platform']}, needs glibc {glibc}",
    )


def register(group: click.Group) -> None:
    group.add_command(build)
    group.add_command(verify)
