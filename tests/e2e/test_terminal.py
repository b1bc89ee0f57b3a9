"""On a terminal (a real pseudo-terminal): one live line per host, an upload progress
bar, a countdown for the watch window; --plain stays line by line."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from tests.staging.guest import host_setup

GUEST = 9
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(argv: list[str], env: dict, cwd) -> tuple[int, str]:
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, stdin=sub, stdout=sub, stderr=sub, env=env, cwd=cwd)
    os.close(sub)
    out = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    code = proc.wait(timeout=60)
    os.close(main)
    return code, ANSI.sub("", out.decode("utf-8", errors="replace"))


def test_a_deploy_on_a_terminal_shows_live_progress(staging_host_factory, deployer_cli_for, variant_builds):
    guest = staging_host_factory(GUEST)
    cli = deployer_cli_for(guest)
    host_setup(guest, cli.config)
    v1 = variant_builds("v1")
    argv = [sys.executable, "-m", "deployer", "-c", str(cli.config), "deploy", str(v1.path), "--watch", "3"]
    code, out = on_a_terminal(argv, {**cli.env, "TERM": "xterm", "COLUMNS": "120"}, cli.config.parent)
    assert code == 0, out[-3000:]
    assert re.search(r"upload .*\d+\.\d of \d+\.\d MB", out), "a progress bar while the artifact is sent"
    assert re.search(r"gate .*\ds left of 3s", out), "a countdown while the watch window runs"
    assert "{python}" not in out, "the smoke line shows the command it ran"
    assert "deploy ok" in out
    plain = cli("deploy", str(v1.path), "--watch", "1").stdout + cli.outputs[-1]
    assert not re.search(r"\d of \d+\.\d MB|s left of", plain), "plain output has no live lines"
