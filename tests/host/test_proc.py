"""Installers and smoke tests run through ``run_logged``: a log, a timeout, an abort."""

from __future__ import annotations

import re
import threading
import time

import pytest

from deployer.errors import AbortedError, HostError, InstallError
from deployer.host.proc import run_logged


def test_output_goes_to_the_log_and_a_failure_carries_its_tail(tmp_path):
    log = tmp_path / "install.log"
    run_logged(["sh", "-c", "echo first"], log, what="first step")
    with pytest.raises(InstallError, match=r"second step failed \(exit 3\):[\s\S]*boom"):
        run_logged(["sh", "-c", "echo boom; exit 3"], log, what="second step", error=InstallError)
    lines = re.sub(r"after \d+\.\d\ds", "after Ts", log.read_text()).splitlines()
    assert lines == [
        "$ sh -c echo first",
        "first",
        "# exit 0 after Ts",
        "$ sh -c echo boom; exit 3",
        "boom",
        "# exit 3 after Ts",
    ]


def test_a_process_past_its_timeout_is_stopped(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(HostError, match="slow step: timed out after 1s"):
        run_logged(["sleep", "30"], tmp_path / "log", what="slow step", timeout=1)
    assert time.monotonic() - t0 < 4


def test_an_abort_stops_the_process_at_once(tmp_path):
    abort = threading.Event()
    threading.Timer(0.3, abort.set).start()
    t0 = time.monotonic()
    with pytest.raises(AbortedError, match="aborted, the controller went away"):
        run_logged(["sleep", "30"], tmp_path / "log", what="smoke test", abort=abort)
    assert time.monotonic() - t0 < 2


def test_a_quick_process_returns_as_soon_as_it_ends(tmp_path):
    t0 = time.monotonic()
    for _ in range(5):
        run_logged(["true"], tmp_path / "log", what="noop", abort=threading.Event())
    # no polling interval added to each run (it used to be up to 50 ms)
    assert time.monotonic() - t0 < 1.5
