"""The hosts themselves: ``check``, ``host setup``, and ``install`` on this very host."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deployer.commands.common import host_option, lock_wait_option, trust_key_option
from deployer.context import Context, pass_ctx


@click.command()
@click.argument("artifact", required=False, type=click.Path(dir_okay=False, exists=True))
@host_option
@pass_ctx
def check(obj: Context, artifact, hosts) -> None:
    """Prove each host can take a deploy; writes nothing.

    Connection and pinned host key, the sudo rights, unit drift, and with an ARTIFACT
    its Python, glibc, wheel tags and the disk it needs.
    """
    from deployer.check import run_check

    ok = run_check(
        obj.config(),
        obj.config_path,
        obj.pipeline(),
        obj.reporter,
        obj.hosts(hosts),
        Path(artifact) if artifact else None,
    )
    if not ok:
        sys.exit(1)


@click.group()
def host() -> None:
    """Prepare hosts."""


@host.command("setup")
@host_option
@click.option("--admin-user", default="root", show_default=True, help="An admin who may sudo (over SSH).")
@click.option(
    "--authorized-key",
    type=click.Path(dir_okay=False, exists=True),
    help="Public key to authorize for the deploy user.",
)
@trust_key_option(
    "A public key trusted to sign the app's artifacts; repeat it for several. The host then "
    "takes only artifacts signed by exactly these (given again, they replace the earlier ones)."
)
@click.option(
    "--allow-unsigned", is_flag=True, help="Trust no signing key any more: take unsigned artifacts again."
)
@click.option("--local", is_flag=True, help="Set up THIS machine (run as root).")
@click.option("--accept-new", is_flag=True, help="Trust unknown host keys (first contact only).")
@pass_ctx
def host_setup(
    obj: Context, hosts, admin_user, authorized_key, trust_keys, allow_unsigned, local, accept_new
) -> None:
    """Once per host, as an admin: deploy user, layout, sudoers, unit (idempotent).

    Without --trust-key or --allow-unsigned, the keys a host trusts stay as they are."""
    from deployer.errors import UsageError
    from deployer.provision import Trust, setup_hosts, setup_local

    if trust_keys and allow_unsigned:
        raise UsageError("--trust-key and --allow-unsigned contradict each other: give one")
    trust = Trust(tuple(trust_keys), allow_unsigned)
    if local:
        sys.exit(setup_local(obj.config(), obj.config_path, authorized_key, trust))
    ok = setup_hosts(
        obj.config(),
        obj.config_path,
        obj.pipeline(accept_new),
        obj.reporter,
        obj.hosts(hosts),
        admin_user,
        authorized_key,
        trust,
    )
    if not ok:
        sys.exit(1)


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@click.option("--env-file", type=click.Path(dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True)
@click.option("--base", help="Base path (default: from the artifact).")
@lock_wait_option
def install(artifact, env_file, dry_run, base, lock_wait) -> None:
    """Install an artifact on THIS host (air-gapped): the same engine a deploy runs."""
    from deployer.host.cli import main as engine_main

    args = ["--lock-wait", str(lock_wait)] + (["--base", base] if base else [])
    args += ["install", artifact] + (["--env-file", env_file] if env_file else [])
    engine_main(args + (["--dry-run"] if dry_run else []))


def register(group: click.Group) -> None:
    for command in (check, host, install):
        group.add_command(command)
