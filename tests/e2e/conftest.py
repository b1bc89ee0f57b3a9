"""End-to-end tests against real staging hosts (systemd-nspawn guests, real SSH).

Every test under tests/e2e gets the ``e2e`` marker. Guests need root and
systemd-nspawn; without them the tests are skipped, except when ``CI`` is set:
there a missing prerequisite fails the run, so CI cannot pass without running them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
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


class _Guests:
    """The session's guests by index; all are taken down at session end."""

    def __init__(self) -> None:
        self.hosts: dict[int, StagingHost] = {}

    def get(self, index: int = 0, opt_size: str | None = None) -> StagingHost:
        host = self.hosts.get(index)
        if host is not None and host.is_up:
            if host.opt_size != opt_size:
                raise ValueError(f"guest {index} is up with opt_size={host.opt_size!r}; use another index")
            return host
        host = self.hosts[index] = StagingHost.up(index, opt_size)
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
    guests = _Guests()
    try:
        yield guests
    finally:  # also after a failure or Ctrl-C
        guests.down_all()


@pytest.fixture(scope="session")
def staging_host(_staging_guests) -> StagingHost:
    """Guest 0 (no tmpfs), booted once per session."""
    return _staging_guests.get(0)


@pytest.fixture(scope="session")
def staging_host_factory(_staging_guests):
    """``factory(index=1, opt_size=None)``: another guest, up until the session ends.

    Asking again for a running index returns the same guest; a guest a test took
    down is booted afresh.
    """
    return _staging_guests.get
