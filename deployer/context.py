"""The state one ``deployer`` invocation shares between its commands: config, output, masking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from deployer.audit import Recorder
from deployer.config import Config, load_config
from deployer.output import Reporter
from deployer.redact import SECRET_VARIABLES, Redactor

if TYPE_CHECKING:
    from deployer.pipeline import Pipeline
    from deployer.remote.ssh import Endpoint


class Context:
    active: Context | None = None  # for masking the final error line

    def __init__(self, config_path: str, mode: str):
        Context.active = self
        self.config_path = Path(config_path)
        self.redactor = Redactor()
        self.redactor.add_from_environ(SECRET_VARIABLES)
        self.redactor.add_secret_hosts()
        self.reporter = Reporter(mode, self.redactor)
        self._config: Config | None = None
        self.exit_code = 0  # raised by a host that failed in a multi-host query

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def pipeline(self, accept_new: bool = False) -> Pipeline:
        from deployer.pipeline import Pipeline

        return Pipeline(self.config(), self.config_path, self.reporter, accept_new=accept_new)

    def hosts(self, only) -> list[Endpoint]:
        from deployer.targets import endpoints

        return endpoints(self.config(), list(only) or None)

    def recorder(self, action: str, log_dir: str) -> Recorder:
        return Recorder(self.config(), self.reporter, action, log_dir)

    def out(self, data, text: str) -> None:
        """The command's result on stdout (after the live lines end)."""
        self.reporter.close()
        if self.reporter.mode == "json":
            click.echo(json.dumps(data, default=str))
        else:
            click.echo(self.redactor(text))


pass_ctx = click.make_pass_decorator(Context)
