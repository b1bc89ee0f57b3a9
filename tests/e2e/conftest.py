"""End-to-end tests against real staging hosts (systemd-nspawn guests, real SSH).

Every test under tests/e2e gets the ``e2e`` marker. Guests need root and
systemd-nspawn; without them the tests are skipped, except when ``CI`` is set:
there a missing prerequisite fails the run, so CI cannot pass without running them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent

# tests/ is not a package: load the harness by path, once, under a distinct name
_spec = importlib.util.spec_from_file_location("staging_harness", E2E_DIR.parent / "staging" / "harness.py")
staging_harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = staging_harness
_spec.loader.exec_module(staging_harness)
StagingHost = staging_harness.StagingHost

#: the tests ask for guests 0-12, 20-27 and 30-38; each is booted as BASE_INDEX + that number
BASE_INDEX_VAR = "DEPLOYER_STAGING_BASE_INDEX"


def pytest_collection_modifyitems(config, items):
    # a session-wide hook: it sees every collected item, so only mark ours
    for item in items:
        if E2E_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing_prerequisite() -> str | None:
    if sys.platform != "linux":
        return "the staging host needs Linux"
    if os.geteuid() != 0:
        return "the staging host needs root (systemd-nspawn, network namespaces, mounts)"
    # installs the host packages if missing and builds the rootfs once (cached afterwards)
    proc = staging_harness.run_script(0, "build", check=False, timeout=staging_harness.UP_TIMEOUT)
    nspawn = shutil.which("systemd-nspawn", path=staging_harness.script_env(0)["PATH"])
    if proc.returncode != 0 or nspawn is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return f"cannot prepare the staging host (systemd-nspawn, rootfs): {tail}"
    return None


@pytest.fixture(scope="session")
def staging_prerequisites() -> None:
    reason = _missing_prerequisite()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"CI is set, so e2e tests must run: {reason}", pytrace=False)
    pytest.skip(reason)


def _base_index() -> int:
    raw = os.environ.get(BASE_INDEX_VAR, "").strip() or "0"
    if not raw.isdigit() or int(raw) > 199:
        raise pytest.UsageError(f"{BASE_INDEX_VAR} must be a guest index 0..199, not {raw!r}")
    return int(raw)


class _Guests:
    """The session's guests by index; all are taken down at session end.

    Every guest is booted afresh: one a killed test session left running is taken down
    first (``down_if_abandoned``); any other guest already up at that index (the demo's,
    one booted by hand, another session's) is never touched: the test fails instead.
    """

    def __init__(self, base: int = 0) -> None:
        self.base = base
        self.hosts: dict[int, StagingHost] = {}

    def get(self, index: int = 0, opt_size: str | None = None) -> StagingHost:
        index += self.base
        host = self.hosts.get(index)
        if host is not None and host.is_up:
            if host.opt_size != opt_size:
                raise ValueError(f"guest {index} is up with opt_size={host.opt_size!r}; use another index")
            return host
        if index == staging_harness.DEMO_INDEX or index > 199:
            raise ValueError(
                f"guest {index} is not for tests ({staging_harness.DEMO_INDEX} is the demo's, "
                f"199 the last): pick another {BASE_INDEX_VAR} than {self.base}"
            )
        if staging_harness.down_if_abandoned(index):
            warnings.warn(f"guest {index}: took down the one an ended test session left up", stacklevel=2)
        try:
            host = self.hosts[index] = StagingHost.up(index, opt_size)
        except staging_harness.GuestAlreadyUp as exc:
            raise staging_harness.GuestAlreadyUp(
                f"guest {index} is already up, and not left over from an ended test session (booted "
                f"by hand, by `make demo STAGING_INDEX={index}`, or in use by another test session), "
                f"so the tests leave it running: stop it with `make staging-down STAGING_INDEX={index}`, "
                f"or move the suite's guests with {BASE_INDEX_VAR}=<n>",
                exc.returncode,
            ) from None
        return host

    def down_all(self) -> None:
        """Take every guest down, in parallel (each takes ~2 s to power off)."""
        with ThreadPoolExecutor() as pool:
            futures = {host.machine: pool.submit(host.down) for host in self.hosts.values()}
        errors = [f"{name}: {f.exception()}" for name, f in futures.items() if f.exception()]
        if errors:
            raise RuntimeError("staging teardown failed: " + "; ".join(errors))


@pytest.fixture(scope="session")
def _staging_guests(staging_prerequisites):
    guests = _Guests(_base_index())
    try:
        yield guests
    finally:  # also after a failure or Ctrl-C
        guests.down_all()


@pytest.fixture(scope="session")
def staging_host(_staging_guests) -> StagingHost:
    """Guest 0 (no tmpfs; booted as $DEPLOYER_STAGING_BASE_INDEX + 0), once per session."""
    return _staging_guests.get(0)


@pytest.fixture(scope="session")
def staging_host_factory(_staging_guests):
    """``factory(index=1, opt_size=None)``: another guest, up until the session ends.

    ``index`` is relative to $DEPLOYER_STAGING_BASE_INDEX (default 0). Asking again for
    a running index returns the same guest; a guest a test took down is booted afresh.
    """
    return _staging_guests.get


# ---------------------------------------------------------------------- on a guest
BASE = "/opt/tg_video_streamer"


def sh(guest, *argv: str, check: bool = True) -> str:
    """Run ``argv`` as root inside the guest: its stdout, stripped."""
    return guest.exec(list(argv), timeout=60, check=check).stdout.strip()


# ---------------------------------------------------------------------- deploy stories
SECRET_VALUES = ("sup3r-s3cret-api-token-9f1c", "tg-bot-token-123456:AAE-xYz")


class Deployer:
    """Runs the real `deployer` CLI against set-up guests, with a CI-like environment."""

    def __init__(self, repo: Path, guests: list, workdir: Path):
        from tests.staging.guest import deploy_env

        self.repo, self.guests = repo, guests
        self.config = workdir / "deploy.toml"
        text = (repo / "deploy.toml").read_text()
        text = text.replace("watch = 60", "watch = 2").replace("keep_releases = 5", "keep_releases = 3")
        text = text.replace("timeout = 30", "timeout = 10")  # an unhealthy release fails faster
        text = text.replace('file = "examples/tg_video_streamer/staging.env"', 'file = "prod.env"')
        self.config.write_text(text.replace('source = "examples', f'source = "{repo}/examples'))
        self.write_env(SECRET_VALUES[0])
        hosts = ",".join(f"{g.user}@{g.host}:{g.port}" for g in guests)
        self.env = {**os.environ, **deploy_env(guests[0]), "DEPLOYER_HOSTS": hosts}
        # every guest's host key is pinned in one known_hosts, as a CI secret would hold
        known = workdir / "known_hosts"
        known.write_text("".join(Path(g.known_hosts_path).read_text() for g in guests))
        self.env["DEPLOYER_KNOWN_HOSTS_FILE"] = str(known)
        self.outputs: list[str] = []

    def write_env(self, secret: str) -> None:
        (self.config.parent / "prod.env").write_text(
            "HTTP_PORT=8080\nHTTP_HOST=127.0.0.1\nSTATE_DIR=/opt/tg_video_streamer/shared/sessions\n"
            f"API_TOKEN={secret}\nTG_NOTE='{SECRET_VALUES[1]}'\n"
        )

    def __call__(self, *args: str, check: bool = True, env: dict | None = None):
        import subprocess

        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "--plain", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=600,
            cwd=self.config.parent,
        )
        self.outputs.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"deployer {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            )
        return proc


@pytest.fixture(scope="session")
def set_up_guests(staging_host_factory, service_repo):
    """Guests 20 and 21, each set up once by `host setup` (as root, through the harness)."""
    from tests.staging.guest import host_setup

    guests = [staging_host_factory(20), staging_host_factory(21)]
    ci_key = Path(guests[0].key_path + ".pub").read_text()  # one deploy key for every host
    for g in guests:
        host_setup(g, service_repo / "deploy.toml", authorized_key=ci_key)
    return guests


@pytest.fixture(scope="session")
def deployer_cli_for(service_repo, tmp_path_factory):
    """``for(guest)``: the CLI configured for that (set-up) guest only."""

    def make(guest) -> Deployer:
        return Deployer(service_repo, [guest], tmp_path_factory.mktemp("deployer-cli"))

    return make


@pytest.fixture(scope="session")
def deployer_cli(set_up_guests, service_repo, tmp_path_factory) -> Deployer:
    """The CLI configured for guest 20 only."""
    return Deployer(service_repo, set_up_guests[:1], tmp_path_factory.mktemp("deployer-cli"))


class LiveDeploy:
    """A `deployer --json` run in the background whose events can be waited for,
    so a fault can be injected at an exact step."""

    def __init__(self, cli: Deployer, *args: str, env: dict | None = None):
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deployer", "--json", "-c", str(cli.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**cli.env, **(env or {})},
            cwd=cli.config.parent,
        )
        self.events: list[dict] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.cli = cli

    def _read(self) -> None:
        import json

        for line in self.proc.stderr:
            with self._cond:
                self.stderr_lines.append(line)
                with contextlib.suppress(ValueError):
                    self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, step: str, status: str = "ok", timeout: float = 120) -> dict:
        import time

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.get("step") == step and e.get("status") == status:
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no {step} {status} event; saw "
                        f"{[(e.get('step'), e.get('status')) for e in self.events]}"
                        f"\n{''.join(self.stderr_lines[-20:])}"
                    )
                self._cond.wait(min(left, 0.5))

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        self._reader.join(timeout=5)
        stderr = "".join(self.stderr_lines)
        self.cli.outputs.append(out + stderr)
        return self.proc.returncode, out, stderr
