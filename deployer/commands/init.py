"""``deployer init``: scaffold a service repository."""

from __future__ import annotations

from pathlib import Path

import click

from deployer.errors import UsageError


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--owner", help="GitHub owner of the deployer repository (default: its origin's).")
@click.option(
    "--ref",
    "ref",
    default="main",
    show_default=True,
    help="Tag, branch or commit of deployer the workflows use; they pin the commit it names.",
)
@click.option(
    "--source", default=".", show_default=True, help="The service project (pyproject.toml) inside DIRECTORY."
)
@click.option(
    "--health-url",
    metavar="URL",
    help="What to probe on the host after a restart (default: guessed from the code, or none).",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory, owner, ref, source, health_url, force) -> None:
    """Give a service repo its deploy.toml, packaging/ templates and GitHub workflows.

    Reads the service's code to choose [service] type, [health] and [env] public, and
    prints each choice with its reason.
    """
    from deployer.scaffold import DEPLOYER_ROOT, detect_owner, guess_service, init_repo

    owner = owner or detect_owner(DEPLOYER_ROOT)
    if not owner:
        raise UsageError("--owner: give the GitHub owner of the deployer repository")
    root = Path(directory)
    guesses = guess_service(root, source, health_url)
    for path in init_repo(root, owner, ref, force, source, DEPLOYER_ROOT, guesses):
        click.echo(f"wrote {path.relative_to(root)}")
    for line in guesses.lines():
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(init)
