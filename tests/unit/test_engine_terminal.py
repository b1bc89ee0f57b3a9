"""The engine's own command line speaks to a person on a terminal, JSON to a program."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from deployer.builder.engine import build_engine


def _config(tmp_path) -> str:
    return json.dumps(
        {
            "app": "svc",
            "module": "svc",
            "unit": "svc",
            "user": "svc",
            "base_path": str(tmp_path / "app"),
            "interpreter": sys.executable,
            "smoke": {"command": ["{python}", "-c", "1"]},
        }
    )


def _on_a_terminal(argv: list[str]) -> str:
    """Run ``argv`` with its stdout on a real pseudo-terminal; what it printed."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, stdout=sub, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(main)
    return b"".join(chunks).decode()


def test_the_engine_prints_lines_for_a_person_on_a_terminal_and_json_otherwise(tmp_path):
    engine = build_engine(tmp_path / "engine.pyz")
    argv = [sys.executable, str(engine), "--config-json", _config(tmp_path), "lock"]
    human = _on_a_terminal(argv)
    assert human.strip() == "lock info: free" and "{" not in human
    assert json.loads(_on_a_terminal([*argv[:2], "--json", *argv[2:]]).strip())["detail"] == "free"
    piped = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert json.loads(piped)["step"] == "lock"
