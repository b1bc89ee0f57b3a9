"""``deployer`` command line: commands call into the pipeline; errors become one line.

Exit codes: 0 ok, 1 the operation failed, 2 bad input (usage, config, host key).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from deployer import __version__
from deployer.config import DEFAULT_CONFIG, load_config
from deployer.errors import DeployerError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


class Context:
    def __init__(self, config_path: str):
        self.config_path = config_path

    def config(self):
        return load_config(self.config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deployer")
@click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
              envvar="DEPLOYER_CONFIG", help="Path of deploy.toml.")
@click.pass_context
def cli(ctx: click.Context, config_path: str) -> None:
    """Continuous delivery for Python services on systemd hosts."""
    ctx.obj = Context(config_path)


@cli.command()
@click.option("-o", "--out", "out_dir", default="dist", show_default=True,
              type=click.Path(file_okay=False), help="Where the artifact is written.")
@click.pass_obj
def build(obj: Context, out_dir: str) -> None:
    """Build ONE offline artifact (wheelhouse or pex) for the configured target."""
    from deployer.build import build_release

    config = obj.config()
    result = build_release(config, obj.config_path, Path(out_dir),
                           on_step=lambda name, detail: err_console.print(f"[bold]{name}[/] {detail}"))
    m = result.manifest
    err_console.print(f"built {m['app']} {m['version']} release {m['release_id']} "
                      f"in {result.seconds:.1f}s")
    click.echo(str(result.path))


@cli.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
def verify(artifact: str) -> None:
    """Check an artifact's manifest, every file's hash and its lock."""
    from deployer.host.artifact import verify_artifact

    m = verify_artifact(artifact)
    glibc = m.get("glibc_required") or "none"
    out_console.print(
        f"ok: {m['app']} {m['version']} release {m['release_id']} ({m['format']}), "
        f"{len(m['files'])} files, Python {m['target']['python_version']} "
        f"{m['target']['platform']}, needs glibc {glibc}")


def main() -> None:
    try:
        rc = cli.main(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Abort:
        err_console.print("deployer: aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except DeployerError as e:
        err_console.print(f"deployer: error: {e}", markup=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("deployer: interrupted")
        sys.exit(130)
