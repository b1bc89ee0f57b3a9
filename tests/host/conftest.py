"""Host-engine fixtures: a temporary base path, a real service manager, real artifacts."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from deployer.host.contract import HostConfig
from deployer.host.engine import Engine
from deployer.host.events import Events
from tests.conftest import target_python
from tests.helpers import free_port
from tests.host.supervisor import ProcessService

RUN_ENGINE = Path(__file__).with_name("run_engine.py")


class Host:
    """A temporary 'host': base path, .env text, engine config and a service manager."""

    def __init__(self, base: Path, manifest_config: dict, port: int):
        self.base = base
        self.port = port
        self.config = json.loads(json.dumps(manifest_config))
        # the .env's own folder, as `host setup` makes /etc/deployer/<app>/ on a host
        self.env_path = base.parent / "etc-deployer" / "env"
        self.env_path.parent.mkdir(parents=True, exist_ok=True)
        self.config.update(
            base_path=str(base), interpreter=target_python(), keep_releases=3, env_file=str(self.env_path)
        )
        self.config["health"].update(http_url=f"http://127.0.0.1:{port}/health", watch=1.0, timeout=20)
        self.service = ProcessService(base, self.config["module"])
        self.lines: list[str] = []

    def env_text(self, secret: str = "s3cr3t-token-value") -> str:
        return (
            f"HTTP_PORT={self.port}\nHTTP_HOST=127.0.0.1\n"
            f"STATE_DIR={self.base}/shared/sessions\nAPI_SECRET={secret}\n"
        )

    def engine(self) -> Engine:
        out = _Lines(self.lines)
        return Engine(HostConfig.from_dict(self.config), self.service, Events(out), actor="tester")

    def config_file(self) -> Path:
        path = self.base.parent / "host-config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config))
        return path

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, str(RUN_ENGINE), "--config", str(self.config_file()), *args]

    def output(self) -> str:
        return "\n".join(self.lines)


def health(host: Host) -> dict:
    """What the host's service answers on /health."""
    with urllib.request.urlopen(f"http://127.0.0.1:{host.port}/health", timeout=5) as r:
        return json.loads(r.read())


class _Lines:
    def __init__(self, sink: list):
        self.sink = sink

    def write(self, text: str) -> None:
        self.sink.extend(t for t in text.splitlines() if t)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="session")
def warm_uv_cache(tmp_path_factory) -> Path:
    """One uv cache for the session's hosts: each test's base path is new, its installs
    need not be cold (a real host keeps its cache across deploys too)."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def host(tmp_path, example_build, warm_uv_cache):
    h = Host(tmp_path / "opt" / "tg_video_streamer", example_build.manifest["config"], free_port())
    (h.base / "cache").mkdir(parents=True)
    os.symlink(warm_uv_cache, h.base / "cache" / "uv")
    yield h
    h.service.stop()  # also a service an engine subprocess started (found by its pidfile)
