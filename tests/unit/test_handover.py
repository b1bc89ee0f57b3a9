"""[service] handover's pure parts: the units and sudo lines, the fixed launcher, the
config it refuses, the status texts; the launcher run for real by ``sh``: the release it
picks for each instance; and its Python run for real: it imports the preload, says so on
a real NOTIFY_SOCKET, waits for a lock another process holds, then runs the module as
``__main__`` only if its release is still `current` (else starts over on `current`)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployer.errors import UsageError
from deployer.host.contract import (
    HANDOVER_READY,
    HANDOVER_RUNNING,
    HostConfig,
    handover_status,
    service_units,
    sudo_commands,
)
from deployer.host.rootfiles import (
    HANDOVER_BOOT,
    compare,
    handover_launcher_text,
    installed_paths,
    render,
    sudo_rules,
)
from deployer.host.service import service_for

CONFIG = HostConfig.from_dict(
    {
        "app": "svc",
        "module": "svc.main",
        "unit": "svc",
        "user": "svc",
        "base_path": "/opt/svc",
        "interpreter": "/usr/bin/python3",
        "smoke": {"command": ["{python}", "-c", "1"]},
        "handover": True,
        "preload": ["svc.heavy", "json"],
    }
)
TEMPLATES = {
    "unit": "# ${unit}.service - x\nEnvironmentFile=-${env_file}\nExecStart=${launcher}\n",
    "launcher": "l\n",
}


def test_two_instances_of_a_template_each_with_exact_sudo_lines():
    assert service_units(CONFIG) == ("svc@blue.service", "svc@green.service")
    assert service_units(CONFIG.replace(handover=False)) == ("svc",)
    assert sudo_commands(CONFIG)[0] == ["--no-block", "start", "svc@blue.service"]
    assert sudo_rules(CONFIG) == [
        f"svc ALL=(root) NOPASSWD: /usr/bin/systemctl {verb} svc@{slot}.service"
        for slot in ("blue", "green")
        for verb in ("--no-block start", "stop", "reset-failed")
    ]


def test_the_template_and_a_fixed_launcher_are_rendered():
    rendered = render(TEMPLATES, CONFIG)
    assert rendered["unit"].startswith("# svc@.service - x\n")
    launcher = rendered["launcher"]
    assert launcher.startswith("#!/bin/sh\n") and "release=$(readlink -f /opt/svc/current)" in launcher
    args = '/usr/local/lib/deployer/svc/launch /opt/svc "$release" svc.main svc.heavy json'
    assert launcher.rstrip().endswith(f"-c '{HANDOVER_BOOT}' {args}")
    assert "ExecStart=/usr/local/lib/deployer/svc/launch %i\n" in rendered["unit"], "each instance says which"
    assert "'" not in HANDOVER_BOOT, "the code travels in one single-quoted shell word"
    assert render(TEMPLATES, CONFIG.replace(handover=False))["launcher"] == "l\n", "the template without it"


def test_drift_names_the_unit_of_the_other_form_left_installed():
    paths = installed_paths(CONFIG)
    assert paths["unit"] == Path("/etc/systemd/system/svc@.service")
    assert paths["other-unit"] == Path("/etc/systemd/system/svc.service")
    rendered = render(TEMPLATES, CONFIG)
    left = {**rendered, "other-unit": "# svc.service - installed root-owned by `deployer host setup`\n"}
    assert compare(left, rendered, paths) == [
        f"{paths['other-unit']} is installed but this config does not use it (run `deployer host setup`)"
    ]
    plain = CONFIG.replace(handover=False)
    assert installed_paths(plain)["other-unit"] == Path("/etc/systemd/system/svc@.service")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"socket": "8000"}, "handover: cannot be combined with socket"),
        ({"preload": ["os; import x"]}, "preload: 'os; import x' is not a module name"),
        ({"preload": ["x' y"]}, "is not a module name"),
        ({"unit": "svc@x"}, "unit: 'svc@x': with handover the unit is a template"),
        ({"handover": False, "standby": True}, "standby: needs handover"),
    ],
)
def test_what_handover_refuses(change, problem):
    with pytest.raises(UsageError, match=problem):
        HostConfig.from_dict({**CONFIG.to_dict(), **change})


def test_status_texts_name_the_release():
    assert handover_status(f"{HANDOVER_READY}: 20261201T000000Z-abcdef0") == (
        HANDOVER_READY,
        "20261201T000000Z-abcdef0",
    )
    assert handover_status(f"{HANDOVER_RUNNING}: 20261201T000000Z-abcdef0")[0] == HANDOVER_RUNNING
    assert handover_status("serving on :8080") == ("", ""), "the service's own status is not ours"
    assert handover_status("") == ("", "")


R1, R2 = "20261201T000000Z-aaaaaaa", "20261202T000000Z-bbbbbbb"


def _fake_base(tmp_path: Path) -> Path:
    """A base path with two releases whose venv python prints the release it belongs to."""
    base = tmp_path / "base"
    for rid in (R1, R2):
        bin_dir = base / "releases" / rid / "venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").write_text(f"#!/bin/sh\necho {rid}\n")
        (bin_dir / "python").chmod(0o755)
    (base / "current").symlink_to(f"releases/{R1}")
    (base / "slots").mkdir()
    return base


def test_the_launcher_starts_an_instance_on_its_slot_link_else_on_current(tmp_path):
    base = _fake_base(tmp_path)
    config = CONFIG.replace(base_path=str(base))  # pure: the text for this base path
    launcher = tmp_path / "launch"
    launcher.write_text(handover_launcher_text(config))

    def picks(*args: str) -> str:
        proc = subprocess.run(["sh", str(launcher), *args], capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    assert picks("blue") == R1, "no slot link: current"
    (base / "slots" / "blue").symlink_to(f"../releases/{R2}")
    assert picks("blue") == R2, "the slot link wins"
    assert picks("green") == R1, "only for its own instance"
    assert picks("../slots/blue") == R1 and picks() == R1, "anything else is not an instance: current"
    (base / "releases" / R2 / "venv" / "bin" / "python").unlink()
    assert picks("blue") == R1, "a link to a release without its venv is not followed"


def _app(tmp_path: Path) -> Path:
    pkg = tmp_path / "app" / "svc"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("import time\nLOADED = time.time()\n")
    (pkg / "main.py").write_text(
        "import sys, time\n"
        "from svc import heavy\n"
        "since = time.time() - heavy.LOADED\n"
        "print(__name__, sys.argv[0].endswith('main.py'), sys.argv[1:], f'{since:.3f}')\n"
        "sys.exit(7)\n"
    )
    return pkg.parent


def _boot(tmp_path: Path, current: str, launcher: Path):
    """The launcher's Python for release ``releases/R1`` of a base whose `current` is
    ``current``; the lock on ``shared/`` held (the running instance); the notify socket."""
    base = tmp_path / "base"
    (base / "releases" / R1).mkdir(parents=True, exist_ok=True)
    (base / "releases" / R2).mkdir(parents=True, exist_ok=True)
    (base / "shared").mkdir(exist_ok=True)
    (base / "current").symlink_to(f"releases/{current}")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    holder = os.open(base / "shared", os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    release = os.path.realpath(base / "releases" / R1)
    proc = subprocess.Popen(
        [sys.executable, "-c", HANDOVER_BOOT, str(launcher), str(base), release, "svc.main", "svc.heavy"],
        cwd=_app(tmp_path),
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, notify, holder


def test_the_launcher_code_preloads_announces_waits_for_the_lock_then_runs_the_module(tmp_path):
    proc, notify, holder = _boot(tmp_path, R1, tmp_path / "unused")
    try:
        assert notify.recv(4096).decode() == f"STATUS={HANDOVER_READY}: {R1}"
        time.sleep(0.3)
        assert proc.poll() is None, "it waits while the lock is held"
    finally:
        os.close(holder)  # the old instance exits
    assert notify.recv(4096).decode() == f"STATUS={HANDOVER_RUNNING}: {R1}", "then it says it runs"
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 7, "the module's exit code is the process's"
    name, argv0, rest, since_import = out.split(" ", 3)
    assert (name, argv0, rest) == ("__main__", "True", "[]")
    assert float(since_import) >= 0.3, "svc.heavy was imported before the wait, not after"


def test_an_instance_whose_release_is_no_longer_current_starts_over_on_current(tmp_path):
    """A standby of R1 gets the lock while R2 is current (the running one crashed): it must
    not run R1's code; it execs the launcher again (no instance: `current`)."""
    launcher = tmp_path / "launch"
    launcher.write_text("echo started over on current\nexit 9\n")
    proc, notify, holder = _boot(tmp_path, R2, launcher)
    assert notify.recv(4096).decode() == f"STATUS={HANDOVER_READY}: {R1}"
    os.close(holder)
    out, _ = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (9, "started over on current\n"), "never svc.main"


@pytest.mark.parametrize(
    "change",
    [{"handover": False}, {"handover": False, "socket": "127.0.0.1:8000"}, {}],
    ids=["one unit", "with its socket", "handover"],
)
def test_the_rights_a_deploy_checks_are_exactly_the_sudoers_lines(change):
    config = CONFIG.replace(**change)
    granted = [rule.split(" NOPASSWD: ", 1)[1] for rule in sudo_rules(config)]
    assert service_for(config).needed_rights() == granted
    if config.socket:
        assert granted[-1] == "/usr/bin/systemctl stop svc.socket"
