"""The ``deployer`` sub-commands, one module per family; each registers its own on the group.

The modules import only click and the controller's light modules at load time; whatever
a command needs beyond that (the pipeline, paramiko, the builder) it imports when it runs.
"""

from __future__ import annotations

import click

from deployer.commands import build, ci, deploy, explain, hosts, init, query, report


def register(group: click.Group) -> None:
    for module in (build, explain, deploy, query, report, hosts, init, ci):
        module.register(group)
