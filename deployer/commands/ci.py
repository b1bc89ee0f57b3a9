"""``deployer github-masks``: announce every form of the secrets to GitHub Actions.

The workflow's credentials step runs it before it writes a secret anywhere: every value
of the .env (parsed as systemd parses it), each line of a key, each host of a secret
DEPLOY_HOSTS, in every form deployer masks (JSON, URL, base64), as ``::add-mask::``
lines. The values are read from the environment variables named, never from argv.
"""

from __future__ import annotations

import os

import click

from deployer.host.masking import MIN_SECRET
from deployer.redact import Redactor, host_values


@click.command("github-masks")
@click.option(
    "--env", "env_vars", multiple=True, metavar="VAR", help="A variable holding a .env (NAME=value lines)."
)
@click.option(
    "--value", "value_vars", multiple=True, metavar="VAR", help="A variable holding one secret (a key)."
)
@click.option(
    "--hosts", "hosts_vars", multiple=True, metavar="VAR", help="A variable holding [user@]host[:port],..."
)
def github_masks(env_vars, value_vars, hosts_vars) -> None:
    """Print ::add-mask:: lines for the secrets held in the named variables."""
    redactor = Redactor()
    for var in env_vars:
        redactor.add_env(os.environ.get(var, ""))
    redactor.add(os.environ.get(var, "") for var in value_vars)
    for var in hosts_vars:
        redactor.add(host_values(os.environ.get(var, "")))
    # GitHub masks a string wherever it appears: a short one would blank unrelated text
    for form in sorted(f for f in redactor.secrets if "\n" not in f and len(f.strip()) >= MIN_SECRET):
        click.echo(f"::add-mask::{form.strip()}")


def register(group: click.Group) -> None:
    group.add_command(github_masks)
