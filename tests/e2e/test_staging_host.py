"""The staging host itself: what the deploy tests rely on, checked over real SSH."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

APP_DIR = "/opt/tg_video_streamer"


def connect(host, known_hosts: str | None = None, timeout: float = 5.0) -> paramiko.SSHClient:
    """Log in as the deploy user; host keys strictly from the harness's known_hosts."""
    host.check_route()
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or host.known_hosts_path)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.host,
        host.port,
        username=host.user,
        key_filename=host.key_path,
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def run(host, command: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``command`` over a fresh SSH connection: (exit status, stdout, stderr)."""
    client = connect(host)
    try:
        _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
        out, err = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), out, err
    finally:
        client.close()


def check(host, command: str) -> str:
    status, out, err = run(host, command)
    assert status == 0, f"{command!r} exited {status}: {err}"
    return out.strip()


def free_mib(host, path: str = APP_DIR) -> float:
    code = f"import shutil; print(shutil.disk_usage({path!r}).free / 2**20)"
    return float(check(host, f"python3 -c {json.dumps(code)}"))


def test_pid1_is_systemd_and_the_system_is_running(staging_host):
    comm, state = check(staging_host, "cat /proc/1/comm; systemctl is-system-running").split()
    assert comm == "systemd"
    assert state in ("running", "degraded")


def test_python_and_libc_are_bookworm(staging_host):
    code = "import json, platform, sys; print(json.dumps([sys.version_info[:3], platform.libc_ver()]))"
    version, libc = json.loads(check(staging_host, f"python3 -c '{code}'"))
    assert version[:2] == [3, 11]
    assert libc == ["glibc", "2.36"]


def test_deploy_user_has_no_sudo_and_cannot_write_units(staging_host):
    assert check(staging_host, "id -un") == "tgstream"
    status, _, err = run(staging_host, "sudo -n true")
    assert status != 0, "tgstream must not have sudo rights before host setup grants exact ones"
    assert "password is required" in err
    status, _, _ = run(staging_host, "test -w /etc/systemd/system")
    assert status != 0


def test_exec_runs_as_root_inside_the_guest(staging_host):
    assert staging_host.exec(["id", "-u"]).stdout.strip() == "0"
    assert staging_host.exec(["hostname"]).stdout.strip() == staging_host.machine
    assert staging_host.exec(["cat"], input="piped").stdout == "piped"
    assert staging_host.exec(["false"], check=False).returncode == 1


def test_unknown_host_key_is_refused(staging_host, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(staging_host, known_hosts=str(empty))


def test_second_guest_runs_beside_the_first_and_link_down_cuts_only_it(staging_host, staging_host_factory):
    other = staging_host_factory(1)
    assert check(staging_host, "hostname") == staging_host.machine
    assert check(other, "hostname") == other.machine
    assert other.index == staging_host.index + 1
    ids = {check(h, "cat /etc/machine-id") for h in (staging_host, other)}
    assert len(ids) == 2, "every boot must get its own machine-id"

    client = connect(other)
    try:
        # keep stdin referenced: when it is garbage-collected the remote gets EOF
        stdin, stdout, _ = client.exec_command("while :; do echo tick; sleep 0.2; done")
        stdout.channel.settimeout(3.0)  # a read timeout is what notices a dead link
        assert stdout.readline().strip() == "tick"
        other.cut("link-down")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            while stdout.readline():
                pass
        assert time.monotonic() - started < 6.0
        assert check(staging_host, "echo alive") == "alive"
    finally:
        client.close()
        other.heal()
    assert check(other, "echo back") == "back"


def test_reset_breaks_an_established_session_at_once(staging_host):
    client = connect(staging_host)
    try:
        stdin, stdout, _ = client.exec_command("cat")
        stdout.channel.settimeout(5.0)
        stdin.write("hb\n")
        stdin.flush()
        assert stdout.readline() == "hb\n"
        staging_host.cut("reset")
        started = time.monotonic()
        broken = None
        while broken is None and time.monotonic() - started < 10:
            try:
                stdin.write("hb\n")  # the next packet draws the RST
                stdin.flush()
                if stdout.readline() == "":
                    broken = "eof"
            except (OSError, EOFError, paramiko.SSHException) as exc:
                broken = repr(exc)
        elapsed = time.monotonic() - started
        assert broken is not None
        assert elapsed < 2.0, f"reset noticed after {elapsed:.2f}s ({broken})"
    finally:
        client.close()
        staging_host.heal()
    assert check(staging_host, "echo back") == "back"


def test_fill_disk_on_the_opt_tmpfs(staging_host, staging_host_factory):
    with pytest.raises(RuntimeError, match="not a tmpfs"):
        staging_host.fill_disk(5)  # never the machine's disk

    host = staging_host_factory(2, opt_size="64M")
    assert host.exec(["findmnt", "-n", "-o", "FSTYPE", APP_DIR]).stdout.strip() == "tmpfs"
    assert host.exec(["stat", "-c", "%U %a", APP_DIR]).stdout.split() == ["root", "755"]
    # what `deployer host setup` does as root: its own dirs, handed to the deploy user
    host.exec(["install", "-d", "-o", "tgstream", "-g", "tgstream", f"{APP_DIR}/releases"])
    check(host, f"echo ok > {APP_DIR}/releases/probe")
    assert run(host, f"touch {APP_DIR}/not-mine")[0] != 0

    before = free_mib(host)
    assert before > 60
    host.fill_disk(5)
    try:
        assert 4.5 <= free_mib(host) <= 5.5
        status, _, err = run(host, f"head -c 10M /dev/zero > {APP_DIR}/releases/big")
        assert status != 0 and "No space left" in err
    finally:
        host.exec(["rm", "-f", f"{APP_DIR}/releases/big"])
        host.fill_disk(None)
    assert free_mib(host) >= before - 1


def test_down_leaves_nothing_behind(staging_host, staging_host_factory):
    host = staging_host_factory(3)
    index, machine = host.index, host.machine
    run_dir = Path(host.key_path).parent
    nspawn_pid = host.env["STAGING_NSPAWN_PID"]
    check(host, "true")

    host.down()
    host.down()  # idempotent

    assert not Path(f"/run/netns/{machine}").exists()
    assert not Path(f"/sys/class/net/{host.veth}").exists()
    assert f"{run_dir}/" not in Path("/proc/self/mountinfo").read_text()  # run3/, not run36/
    cgroup = f"deployer-staging-{index}"
    assert not Path("/sys/fs/cgroup", cgroup).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{cgroup}"))
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=10)
    assert f"10.231.{50 + index}." not in routes.stdout
    assert not Path(f"/run/systemd/nspawn/propagate/{machine}").exists()
    assert not run_dir.exists()
    assert not os.path.exists(f"/proc/{nspawn_pid}") or (
        Path(f"/proc/{nspawn_pid}/comm").read_text().strip() != "systemd-nspawn"
    )
    assert check(staging_host, "echo alive") == "alive"


def test_a_guest_someone_keeps_up_is_never_taken_by_a_test_session(staging_prerequisites):
    """`make demo` then `make test`: the demo's guest stays up and the tests never touch
    it (here a guest kept up by hand at a test index: refused, left running); the demo's
    own index is never a test's."""
    from tests.e2e.conftest import _base_index, _Guests, staging_harness

    base = _base_index()
    index = base + 10
    kept = staging_harness.StagingHost.up(index)
    kept.keep_up()  # as `make demo` does
    try:
        guests = _Guests(base)
        with pytest.raises(staging_harness.GuestAlreadyUp, match="already up"):
            guests.get(10)
        assert not staging_harness.down_if_abandoned(index)
        assert kept.exec(["true"]).returncode == 0, "still up and untouched"
        with pytest.raises(ValueError, match="demo"):
            _Guests(staging_harness.DEMO_INDEX).get(0)
    finally:
        kept.down()
