"""Fixtures for the example service's tests.

``example_python`` (tests/conftest.py) is the python of a venv installed OFFLINE from
the example's real artifact, so these tests run the service exactly as a host would.
"""

from __future__ import annotations

import subprocess

import pytest

_PRINT_VERSION = "import importlib.metadata as m; print(m.version('tg_video_streamer'))"


@pytest.fixture(scope="session")
def example_version(example_python: str) -> str:
    """The installed version of ``tg_video_streamer``, read from its metadata."""
    done = subprocess.run(
        [example_python, "-c", _PRINT_VERSION], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()
