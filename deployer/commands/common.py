"""Options and helpers shared by several commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

host_option = click.option(
    "--host", "hosts", multiple=True, metavar="NAME", help="Only this host (name or address); repeatable."
)
lock_wait_option = click.option(
    "--lock-wait",
    type=click.FloatRange(0, 3600),
    default=0,
    metavar="SECONDS",
    help="Wait for another deploy's lock.",
)


def trust_key_option(help: str):
    """``--trust-key PUB`` (repeatable), a public key file trusted to sign artifacts."""
    return click.option(
        "--trust-key",
        "trust_keys",
        multiple=True,
        metavar="PUB",
        type=click.Path(dir_okay=False, exists=True),
        help=help,
    )


@contextlib.contextmanager
def local_engine() -> Iterator[Path]:
    """The engine zipapp of this very package (for commands without an artifact), in the
    build cache, which no prune touches while the command runs."""
    from deployer.builder.cache import in_use
    from deployer.builder.engine import engine_zipapp

    with in_use():
        yield engine_zipapp()
