"""examples/notes_api, a service shaped unlike the bundled bot (no sd_notify, its own
hardcoded version, state in a sqlite file), deployed to staging guests with the config
`deployer init` writes for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_notes_repo
from tests.e2e.conftest import Deployer, sh
from tests.staging.guest import RequestLoop, deploy_env, host_setup

GUEST = 6  # this file's guests: the redeploy story on 6, init's first try on 7,
FIRST_TRY_GUEST = 7
SOCKET_GUEST = 12  # requests sent while it restarts on 12
APP = "notes_api"
BASE = f"/opt/{APP}"
URL = "http://127.0.0.1:8000"  # what init guessed from the code (PORT defaults to 8000)
SECRET = "n0tes-s3cret-token-5e2b"


def curl(guest, path: str, body: dict | None = None) -> dict:
    """The service's JSON answer, asked from inside the guest."""
    argv = ["curl", "-sS", "--fail", "--max-time", "5", f"{URL}{path}"]
    if body is not None:
        argv += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    return json.loads(sh(guest, *argv))


def notes(guest) -> list[str]:
    return [n["text"] for n in curl(guest, "/notes")["notes"]]


def current(guest) -> str:
    return os.path.basename(sh(guest, "readlink", f"{BASE}/current"))


def authorize(guest) -> str:
    """The guest's client key, to be authorized for the deploy user host setup makes."""
    return Path(guest.key_path + ".pub").read_text()


class NotesDeployer(Deployer):
    """The CLI for notes_api on one guest: the repo's deploy.toml, with the short health
    windows of the suite and the .env named as its README says ([env] file)."""

    def __init__(self, repo: Path, guest, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(repo, [guest], workdir)
        text = self.config.read_text().replace('source = "."', f'source = "{repo}"')
        self.config.write_text(text.replace('# file = "production.env"', 'file = "prod.env"'))
        self.env["DEPLOYER_HOSTS"] = f"{APP}@{guest.host}:{guest.port}"

    def write_env(self, secret: str) -> None:
        (self.config.parent / "prod.env").write_text(
            f"PORT=8000\nDATA_DIR={BASE}/shared/data\nLOG_LEVEL=info\nNOTES_TOKEN={secret}\n"
        )


def test_notes_survive_deploy_redeploy_and_rollback(staging_host_factory, notes_builds, tmp_path):
    """Deploy, write notes, redeploy a new commit, write more, roll back: after every
    step the notes written before are there and /health reports the release's version."""
    guest = staging_host_factory(GUEST)
    repo, v1, v2 = notes_builds["repo"], notes_builds["v1"], notes_builds["v2"]
    id1, id2 = v1.manifest["release_id"], v2.manifest["release_id"]
    assert id1 != id2 and v1.manifest["version"] != v2.manifest["version"]
    host_setup(guest, repo / "deploy.toml", authorized_key=authorize(guest))
    assert sh(guest, "systemctl", "show", "-p", "Type", "--value", APP) == "exec"
    cli = NotesDeployer(repo, guest, tmp_path / "cli")

    cli("deploy", str(v1.path))
    assert current(guest) == id1
    assert curl(guest, "/health") == {"status": "ok", "version": "1.0.0", "notes": 0}
    assert curl(guest, "/notes", {"text": "first"})["id"] == 1
    curl(guest, "/notes", {"text": "second"})
    assert sh(guest, "stat", "-c", "%U", f"{BASE}/shared/data/notes.sqlite3") == APP

    cli("deploy", str(v2.path))
    assert current(guest) == id2
    assert curl(guest, "/health") == {"status": "ok", "version": "1.1.0", "notes": 2, "v2": True}
    assert notes(guest) == ["first", "second"]
    curl(guest, "/notes", {"text": "third"})

    cli("rollback")
    assert current(guest) == id1
    assert curl(guest, "/health") == {"status": "ok", "version": "1.0.0", "notes": 3}
    assert notes(guest) == ["first", "second", "third"]
    assert curl(guest, "/notes/3")["text"] == "third"

    out = "".join(cli.outputs)
    assert SECRET not in out and "n0tes-s3cret" not in out
    releases = cli("releases").stdout
    assert id1 in releases and id2 in releases


def test_init_on_notes_api_deploys_on_the_first_try(staging_host_factory, tmp_path):
    """examples/notes_api without its deploy.toml and packaging/: `deployer init`, host
    setup, `deployer deploy` (hosts from DEPLOYER_HOSTS, no .env at all) - healthy."""
    guest = staging_host_factory(FIRST_TRY_GUEST)

    def init(repo: Path) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "init", str(repo), "--owner", "acme"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert 'guessed [service] type = "exec"' in proc.stdout
        assert f'guessed [health] http_url = "{URL}/health"' in proc.stdout

    repo = make_notes_repo(tmp_path / "fresh", without=("deploy.toml", "packaging"), prepare=init)
    host_setup(guest, repo / "deploy.toml", authorized_key=authorize(guest))
    work = tmp_path / "run"
    work.mkdir()
    env = {**os.environ, **deploy_env(guest), "DEPLOYER_HOSTS": f"{APP}@{guest.host}:{guest.port}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "--plain",
            "-c",
            str(repo / "deploy.toml"),
            "deploy",
            "--watch",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=work,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sh(guest, "systemctl", "is-active", APP) == "active"
    assert curl(guest, "/health")["version"] == "1.0.0"
    assert curl(guest, "/notes", {"text": "hello"})["text"] == "hello"
    # with no DATA_DIR the notes land in the release's data/, the shared folder
    sh(guest, "test", "-s", f"{BASE}/shared/data/notes.sqlite3")


def test_requests_sent_while_the_socket_activated_service_restarts_are_answered(
    staging_host_factory, notes_builds, tmp_path
):
    """[service] socket: a failed first release leaves nothing listening. Then systemd
    holds the listening socket across restarts, so a steady loop of requests through a
    deploy and a rollback (two restarts) sees no refused or failed request: the ones sent
    while the service restarts wait in the kernel's queue and the new release answers
    them. Then the socket taken away again: the running service keeps serving, and the
    next release binds its port itself."""
    guest = staging_host_factory(SOCKET_GUEST)
    repo, v1, v2 = notes_builds["repo"], notes_builds["v1"], notes_builds["v2"]
    host_setup(guest, repo / "deploy.toml", authorized_key=authorize(guest))
    assert "ListenStream=127.0.0.1:8000" in sh(guest, "cat", f"/etc/systemd/system/{APP}.socket")
    requires = sh(guest, "systemctl", "show", "-p", "Requires", "-p", "After", "--value", APP)
    assert f"{APP}.socket" in requires
    cli = NotesDeployer(repo, guest, tmp_path / "cli")
    # a first release that fails its health check: the service stopped, and its socket
    # too (else a connection would start it again, with no release to run)
    good = cli.config.read_text()
    cli.config.write_text(
        good.replace(f"{URL}/health", f"{URL}/no-such-page").replace("timeout = 10", "timeout = 3")
    )
    failed = cli("deploy", "--watch", "0", str(v1.path), check=False)
    assert failed.returncode != 0 and "service stopped (no previous release)" in failed.stdout + failed.stderr
    assert sh(guest, "systemctl", "is-active", f"{APP}.socket", check=False) == "inactive"
    assert sh(guest, "systemctl", "is-active", APP, check=False) == "inactive"
    guest.exec(["test", "!", "-e", f"{BASE}/current"])
    cli.config.write_text(good)
    cli("deploy", "--watch", "0", str(v1.path))
    assert sh(guest, "systemctl", "is-active", f"{APP}.socket") == "active"
    inv = sh(guest, "systemctl", "show", "-p", "InvocationID", "--value", APP)
    started = sh(guest, "journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={inv}")
    assert "listening on the socket systemd passed" in started

    loop = RequestLoop(guest, f"{URL}/health").start()
    try:
        cli("deploy", "--watch", "0", str(v2.path))
        cli("rollback")
    finally:
        rows = loop.stop()
    failed = [r for r in rows if r[2] != 200]
    assert not failed, f"{len(failed)} of {len(rows)} requests failed, first: {failed[:3]}"
    versions = [r[3] for r in rows]
    assert "1.1.0" in versions and versions[0] == versions[-1] == "1.0.0"
    waited = max(r[1] for r in rows)
    assert waited > 0.1, "some request was sent while the service restarted, and waited for the new one"

    # without [service] socket: setup takes the socket away; nothing is refused meanwhile
    plain = tmp_path / "plain.toml"
    plain.write_text((repo / "deploy.toml").read_text().replace('socket = "127.0.0.1:8000"\n', ""))
    changed = host_setup(guest, plain)
    assert any("removed notes_api.socket" in str(e.get("detail")) for e in changed)
    guest.exec(["test", "!", "-e", f"/etc/systemd/system/{APP}.socket"])
    assert curl(guest, "/health")["version"] == "1.0.0", "the running service keeps its socket"
    cli.config.write_text(cli.config.read_text().replace('socket = "127.0.0.1:8000"\n', ""))
    cli("deploy", "--watch", "0", str(v2.path))
    assert curl(guest, "/health")["version"] == "1.1.0", "the next release binds the port itself"
    assert sh(guest, "systemctl", "is-active", f"{APP}.socket", check=False) != "active"
