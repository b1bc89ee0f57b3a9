"""Preflight's interpreter facts: the same whether asked of the engine's own interpreter
in-process or of another one in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deployer.errors import PreflightError
from deployer.host.preflight import _PROBE, interpreter_facts, probe_interpreter


def test_in_process_facts_are_what_the_probe_prints():
    printed = json.loads(
        subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True).stdout
    )
    assert interpreter_facts() == printed == probe_interpreter(sys.executable)


def test_a_missing_interpreter_is_one_line(tmp_path):
    with pytest.raises(PreflightError, match="is not installed on this host"):
        probe_interpreter(str(tmp_path / "python3"))
