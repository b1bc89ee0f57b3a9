"""Options and helpers shared by several commands."""

from __future__ import annotations

import tempfile
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


class local_engine:
    """The engine zipapp built from this very package (for commands without an artifact)."""

    def __enter__(self) -> Path:
        from deployer.builder.release import build_engine

        self._tmp = tempfile.TemporaryDirectory(prefix="deployer-engine-")
        return build_engine(Path(self._tmp.name) / "engine.pyz")

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()
