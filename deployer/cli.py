"""``deployer`` command line: commands call into the pipeline; errors become one line.

The group and its options live here, with ``main`` (the console script); the commands
live in ``deployer/commands/``, the state they share in ``deployer/context.py``.

Exit codes: 0 ok, 1 the operation failed, 2 bad input (usage, config, host key).
"""

from __future__ import annotations

import sys

import click

from deployer import __version__
from deployer.commands import register
from deployer.config import DEFAULT_CONFIG
from deployer.context import Context
from deployer.errors import DeployerError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deployer")
@click.option(
    "-c",
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="DEPLOYER_CONFIG",
    help="Path of deploy.toml.",
)
@click.option("--json", "mode", flag_value="json", help="JSON lines for machines.")
@click.option("--plain", "mode", flag_value="plain", help="Plain lines (default when not a TTY).")
@click.pass_context
def cli(ctx: click.Context, config_path: str, mode: str | None) -> None:
    """Continuous delivery for Python services on systemd hosts."""
    ctx.obj = Context(config_path, mode or "auto")


register(cli)


#: the group's output flags, accepted anywhere on the line (``deployer releases --json``)
OUTPUT_FLAGS = ("--json", "--plain")


def hoist_output_flags(argv: list[str]) -> list[str]:
    """``argv`` with the output flags moved before the subcommand, where click reads them
    (pure; nothing after a ``--`` is touched)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in OUTPUT_FLAGS]
    return flags + [a for a in argv[:end] if a not in OUTPUT_FLAGS] + argv[end:]


def main() -> None:
    try:
        rc = _run(hoist_output_flags(sys.argv[1:]))
        if isinstance(rc, int) and rc:
            sys.exit(rc)
        if Context.active is not None and Context.active.exit_code:
            sys.exit(Context.active.exit_code)
    except click.exceptions.Abort:
        click.echo("deployer: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except DeployerError as e:
        click.echo(f"deployer: error: {_mask(e)}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("deployer: interrupted", err=True)
        sys.exit(130)


def _run(argv: list[str]):
    """The command; the live lines end before anything else is printed."""
    try:
        return cli.main(args=argv, standalone_mode=False)
    finally:
        if Context.active is not None:
            Context.active.reporter.close()


def _mask(e: Exception) -> str:
    return Context.active.redactor(str(e)) if Context.active else str(e)
