"""The example service, run as real processes: config errors, self-check, serving."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.slow

READY_WITHIN = 15.0  # seconds; the service is ready in about one
STOP_WITHIN = 10.0


def run_example(python: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m tg_video_streamer ARGS`` with exactly ``env``."""
    return subprocess.run(
        [python, "-m", "tg_video_streamer", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def notify_socket() -> Iterator[socket.socket]:
    """A bound AF_UNIX datagram socket, like systemd's (its path: ``getsockname()``)."""
    # A short directory: socket paths are limited to 107 bytes.
    directory = tempfile.mkdtemp(prefix="tgvs-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(os.path.join(directory, "notify"))
        yield sock
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def receive_until(sock: socket.socket, wanted: str, deadline: float, proc=None) -> list[str]:
    """Collect notify messages until one has the line ``wanted``; fail at ``deadline``."""
    messages: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {wanted!r} from the service in time; got {messages}")
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"service exited with {proc.returncode} before sending {wanted!r}")
        sock.settimeout(min(remaining, 0.5))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append(message)
        if wanted in message.split("\n"):
            return messages


class Service:
    """A running service process with its output files."""

    def __init__(self, proc: subprocess.Popen, out: Path, err: Path, port: int) -> None:
        self.proc = proc
        self.out = out
        self.err = err
        self.port = port

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def get(self, path: str):
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read()


@contextmanager
def running_service(
    python: str, workdir: Path, env: dict[str, str], port: int | None = None
) -> Iterator[Service]:
    """Start the service with ``env`` (plus HTTP_PORT); kill it if a test leaves it running."""
    port = port or free_port()
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [python, "-m", "tg_video_streamer"],
            env={"HTTP_PORT": str(port), **env},
            cwd=workdir,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield Service(proc, out, err, port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_WITHIN)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


def test_selfcheck_passes_in_an_empty_environment(example_python, example_version, tmp_path):
    done = run_example(example_python, ["--selfcheck"], env={}, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    line = one_line(done.stdout)
    assert line.startswith("selfcheck ok: ")
    assert line.endswith(f" modules, version {example_version}")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # touched no state


def test_version_flag_prints_the_installed_version(example_python, example_version, tmp_path):
    done = run_example(example_python, ["--version"], env={}, cwd=tmp_path)

    assert done.returncode == 0
    assert done.stdout.strip() == example_version


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["HTTP_PORT", "STATE_DIR"]),
        ({"STATE_DIR": "state"}, ["HTTP_PORT"]),
        ({"STATE_DIR": "state", "HTTP_PORT": ""}, ["HTTP_PORT"]),
        ({"STATE_DIR": "state", "HTTP_PORT": "eighty"}, ["HTTP_PORT"]),
        ({"STATE_DIR": "state", "HTTP_PORT": "70000"}, ["HTTP_PORT"]),
        ({"HTTP_PORT": "8080"}, ["STATE_DIR"]),
        ({"HTTP_PORT": "8080", "STATE_DIR": "state", "LOG_LEVEL": "loud"}, ["LOG_LEVEL"]),
    ],
    ids=["empty", "no-port", "empty-port", "port-not-int", "port-too-big", "no-state", "level"],
)
def test_bad_settings_exit_2_with_one_line_naming_them(example_python, tmp_path, env, names):
    done = run_example(example_python, [], env=env, cwd=tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line.startswith("tg_video_streamer: config error: ")
    for name in names:
        assert name in line
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "state").exists()


SECRET_ID = "987654321"
SECRET_HASH = "0123456789abcdefsecrethash"
SECRET_TOKEN = "4242:AAFsecret-bot-token-value"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"TG_API_ID": SECRET_ID, "TG_API_HASH": SECRET_HASH}, ["TG_BOT_TOKEN"]),
        ({"TG_BOT_TOKEN": SECRET_TOKEN}, ["TG_API_ID", "TG_API_HASH"]),
        ({"TG_API_HASH": SECRET_HASH, "TG_BOT_TOKEN": SECRET_TOKEN}, ["TG_API_ID"]),
    ],
    ids=["no-token", "token-only", "no-id"],
)
def test_partial_telegram_credentials_exit_2_without_leaking_them(example_python, tmp_path, given, missing):
    env = {"HTTP_PORT": str(free_port()), "STATE_DIR": str(tmp_path / "state"), **given}
    done = run_example(example_python, [], env=env, cwd=tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert line.startswith("tg_video_streamer: config error: ")
    assert line.endswith(f"(missing: {', '.join(missing)})")
    output = done.stdout + done.stderr
    for secret in (SECRET_ID, SECRET_HASH, SECRET_TOKEN):
        assert secret not in output
    assert "Traceback" not in output


def test_invalid_telegram_api_id_is_named_but_not_shown(example_python, tmp_path):
    env = {
        "HTTP_PORT": str(free_port()),
        "STATE_DIR": str(tmp_path / "state"),
        "TG_API_ID": "not-a-number-s3cret",
        "TG_API_HASH": SECRET_HASH,
        "TG_BOT_TOKEN": SECRET_TOKEN,
    }
    done = run_example(example_python, [], env=env, cwd=tmp_path)

    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "TG_API_ID" in line
    for secret in ("not-a-number-s3cret", SECRET_HASH, SECRET_TOKEN):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_health_notifies_systemd_and_stops_cleanly(example_python, example_version, tmp_path, signum):
    state = tmp_path / "state"
    state.mkdir()
    with (
        notify_socket() as notify,
        running_service(
            example_python,
            tmp_path,
            {"STATE_DIR": str(state), "NOTIFY_SOCKET": notify.getsockname()},
        ) as service,
    ):
        ready = receive_until(notify, "READY=1", time.monotonic() + READY_WITHIN, service.proc)
        assert f"STATUS=serving version {example_version}" in ready[-1].split("\n")

        status, content_type, body = service.get("/health")
        assert status == 200
        assert content_type.startswith("application/json")
        assert json.loads(body) == {"status": "ok", "version": example_version}
        status, _, body = service.get("/")
        assert status == 200
        assert example_version in body.decode()

        service.proc.send_signal(signum)
        assert service.proc.wait(timeout=STOP_WITHIN) == 0
        receive_until(notify, "STOPPING=1", time.monotonic() + 1.0)

    stdout = service.stdout()
    assert f"tg_video_streamer {example_version} serving on 127.0.0.1:{service.port}" in stdout
    assert "telegram: no credentials configured, bot disabled" in stdout
    assert "Traceback" not in stdout + service.stderr()


def test_notifies_a_socket_in_the_abstract_namespace(example_python, tmp_path):
    name = f"tgvs-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        with running_service(
            example_python, tmp_path, {"STATE_DIR": str(tmp_path), "NOTIFY_SOCKET": "@" + name}
        ) as service:
            receive_until(notify, "READY=1", time.monotonic() + READY_WITHIN, service.proc)
            service.proc.terminate()
            assert service.proc.wait(timeout=STOP_WITHIN) == 0
            receive_until(notify, "STOPPING=1", time.monotonic() + 1.0)


def test_creates_a_missing_state_dir(example_python, tmp_path):
    state = tmp_path / "shared" / "sessions"
    with (
        notify_socket() as notify,
        running_service(
            example_python,
            tmp_path,
            {"STATE_DIR": str(state), "NOTIFY_SOCKET": notify.getsockname()},
        ) as service,
    ):
        receive_until(notify, "READY=1", time.monotonic() + READY_WITHIN, service.proc)
        assert state.is_dir()
        assert state.stat().st_mode & 0o777 == 0o700
        service.proc.terminate()
        assert service.proc.wait(timeout=STOP_WITHIN) == 0


def test_runs_without_notify_socket(example_python, example_version, tmp_path):
    with running_service(example_python, tmp_path, {"STATE_DIR": str(tmp_path)}) as service:
        deadline = time.monotonic() + READY_WITHIN
        while "serving on" not in service.stdout():
            assert service.proc.poll() is None, service.stderr()
            assert time.monotonic() < deadline, "service did not start in time"
            time.sleep(0.1)
        _, _, body = service.get("/health")
        assert json.loads(body)["version"] == example_version
        service.proc.terminate()
        assert service.proc.wait(timeout=STOP_WITHIN) == 0


def test_port_in_use_fails_with_one_error_line(example_python, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_service(example_python, tmp_path, {"STATE_DIR": str(tmp_path)}, port=port) as service:
            assert service.proc.wait(timeout=READY_WITHIN) == 1
    stdout = service.stdout()
    assert f"cannot listen on 127.0.0.1:{port}" in stdout
    assert "Traceback" not in stdout + service.stderr()
