"""[service] handover on a staging guest, the bot example: host setup turns a plain unit
into the template's two instances (and back), a deploy starts the new release beside the
running one and stops the old one once the new one has done its imports, a rollback does
the same, and a new instance that cannot take over leaves the running one untouched."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import BASE, Deployer, sh
from tests.staging.guest import RequestLoop, host_setup

GUEST = 37
APP = "tg_video_streamer"
BLUE, GREEN = f"{APP}@blue.service", f"{APP}@green.service"
URL = "http://127.0.0.1:8080/health"
PRELOAD = '["tg_video_streamer.service", "tg_video_streamer.settings"]'


def props(guest, unit: str, *names: str) -> dict:
    out = sh(guest, "systemctl", "show", unit, *[f"-p{n}" for n in names])
    return dict(line.split("=", 1) for line in out.splitlines())


def version(guest) -> str | None:
    out = sh(guest, "curl", "-sf", "--max-time", "2", URL, check=False)
    return out.split('"version":"', 1)[1].split('"', 1)[0] if '"version":"' in out else None


def wait_version(guest, want: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while version(guest) != want:
        assert time.monotonic() < deadline, f"{want} never answered (now {version(guest)})"
        time.sleep(0.2)


def current(guest) -> str:
    return sh(guest, "readlink", f"{BASE}/current").rsplit("/", 1)[-1]


def use_handover(cli: Deployer, plain: str, preload: str = PRELOAD) -> None:
    cli.config.write_text(plain + f"\n[service]\nhandover = true\npreload = {preload}\n")


def test_handover_deploy_rollback_a_failed_take_over_and_back_to_one_unit(
    staging_host_factory, service_repo, variant_builds, tmp_path
):
    guest = staging_host_factory(GUEST)
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    cli = Deployer(service_repo, [guest], tmp_path)
    plain = cli.config.read_text()
    key = Path(guest.key_path + ".pub").read_text()
    host_setup(guest, cli.config, authorized_key=key)
    cli("deploy", str(v1.path))
    assert sh(guest, "systemctl", "is-active", APP) == "active"

    # host setup: the plain unit is stopped and removed, the template's first instance
    # started in its place (on the same release), and enabled for boot
    use_handover(cli, plain)
    changed = " ".join(str(e.get("detail")) for e in host_setup(guest, cli.config))
    assert f"removed {APP}.service" in changed and f"started {BLUE}" in changed
    guest.exec(["test", "!", "-e", f"/etc/systemd/system/{APP}.service"])
    assert sh(guest, "systemctl", "is-enabled", BLUE) == "enabled"
    wait_version(guest, v1.manifest["version"])
    assert f"{APP}@blue.service --no-block start" not in sh(guest, "cat", f"/etc/sudoers.d/deployer-{APP}")
    assert f"--no-block start {GREEN}" in sh(guest, "cat", f"/etc/sudoers.d/deployer-{APP}")
    cli("check")

    # a deploy: green starts on v2 while blue still serves v1; blue stops once green has
    # imported its preload; green then runs (it could not listen on 8080 while blue did)
    loop = RequestLoop(guest, URL).start()
    try:
        cli("deploy", "--watch", "1", str(v2.path))
    finally:
        rows = loop.stop()
    assert current(guest) == v2.manifest["release_id"]
    assert sh(guest, "systemctl", "is-active", GREEN) == "active"
    assert sh(guest, "systemctl", "is-active", BLUE, check=False) == "inactive"
    assert version(guest) == v2.manifest["version"]
    green = props(guest, GREEN, "ExecMainStartTimestampMonotonic", "StatusText")
    blue = props(guest, BLUE, "InactiveEnterTimestampMonotonic")
    assert int(green["ExecMainStartTimestampMonotonic"]) < int(blue["InactiveEnterTimestampMonotonic"]), (
        "the new release was started before the old one stopped"
    )
    assert green["StatusText"] == f"serving version {v2.manifest['version']}", (
        "the service's own, once it ran"
    )
    versions = [r[3] for r in rows if r[3]]
    first_new = versions.index(v2.manifest["version"])
    assert set(versions[:first_new]) == {v1.manifest["version"]}
    assert set(versions[first_new:]) == {v2.manifest["version"]}, "never back to the old one"
    out = cli("status").stdout
    assert GREEN in out

    # a rollback hands over the same way, back to blue
    cli("rollback")
    assert current(guest) == v1.manifest["release_id"]
    assert sh(guest, "systemctl", "is-active", BLUE) == "active"
    assert sh(guest, "systemctl", "is-active", GREEN, check=False) == "inactive"
    assert version(guest) == v1.manifest["version"]

    # a new instance that cannot take over (a preloaded module it does not have): it is
    # stopped, the running one is never touched, `current` is switched back
    use_handover(cli, plain, PRELOAD.replace("]", ', "tg_video_streamer.not_in_this_release"]'))
    host_setup(guest, cli.config)
    before = props(guest, BLUE, "MainPID", "InvocationID")
    failed = cli("deploy", "--watch", "1", str(v2.path), check=False)
    assert failed.returncode != 0
    assert f"{GREEN} exited before it could take over" in failed.stdout + failed.stderr
    assert "No module named 'tg_video_streamer.not_in_this_release'" in failed.stdout + failed.stderr
    assert props(guest, BLUE, "MainPID", "InvocationID") == before, "the running instance was not touched"
    assert current(guest) == v1.manifest["release_id"]
    assert sh(guest, "systemctl", "is-active", GREEN, check=False) in ("inactive", "failed")
    assert version(guest) == v1.manifest["version"]

    # and back to one unit: the instances stopped, the template removed, the unit started
    cli.config.write_text(plain)
    changed = " ".join(str(e.get("detail")) for e in host_setup(guest, cli.config))
    assert f"removed {APP}@.service" in changed and f"started {APP}" in changed
    guest.exec(["test", "!", "-e", f"/etc/systemd/system/{APP}@.service"])
    wait_version(guest, v1.manifest["version"])
    assert sh(guest, "systemctl", "is-active", BLUE, check=False) == "inactive"
    cli("deploy", "--watch", "1", str(v2.path))
    assert version(guest) == v2.manifest["version"]


NOTES_GUEST = 38
NOTES = "notes_api"


def test_handover_of_a_web_api_without_sd_notify(staging_host_factory, notes_builds, tmp_path):
    """notes_api (Type=exec, no sd_notify, its own version, a sqlite file) with handover:
    set up straight into the template, deployed, redeployed and rolled back; the notes
    written survive, and requests sent meanwhile are answered by one release, then the
    other, never the old one again."""
    from tests.e2e.test_notes_api import NotesDeployer, authorize, curl, notes

    guest = staging_host_factory(NOTES_GUEST)
    repo, v1, v2 = notes_builds["repo"], notes_builds["v1"], notes_builds["v2"]
    cli = NotesDeployer(repo, guest, tmp_path / "cli")
    text = cli.config.read_text().replace(
        'socket = "127.0.0.1:8000"\n', 'handover = true\npreload = ["notes_api.app"]\n'
    )
    cli.config.write_text(text.replace("[app]\n", f'[app]\npackaging = "{repo}/packaging"\n', 1))
    host_setup(guest, cli.config, authorized_key=authorize(guest))
    guest.exec(["test", "!", "-e", f"/etc/systemd/system/{NOTES}.service"])
    first, second = f"{NOTES}@blue.service", f"{NOTES}@green.service"

    cli("deploy", "--watch", "1", str(v1.path))
    assert sh(guest, "systemctl", "is-active", first) == "active"
    assert sh(guest, "systemctl", "show", "-p", "Type", "--value", first) == "exec"
    curl(guest, "/notes", {"text": "kept"})

    loop = RequestLoop(guest, "http://127.0.0.1:8000/health").start()
    try:
        cli("deploy", "--watch", "1", str(v2.path))
    finally:
        rows = loop.stop()
    assert sh(guest, "systemctl", "is-active", second) == "active"
    assert sh(guest, "systemctl", "is-active", first, check=False) == "inactive"
    assert curl(guest, "/health")["version"] == "1.1.0" and notes(guest) == ["kept"]
    versions = [r[3] for r in rows if r[3]]
    assert versions[0] == "1.0.0" and versions[-1] == "1.1.0"
    assert versions == sorted(versions), "never the old release after the new one answered"

    cli("rollback")
    assert sh(guest, "systemctl", "is-active", first) == "active"
    assert curl(guest, "/health")["version"] == "1.0.0" and notes(guest) == ["kept"]


STANDBY_GUEST = 39


def standing_by(guest, rid: str, seconds: float = 30) -> tuple[str, str]:
    """(the live instance, the one standing by with ``rid``), once it has imported it
    (it does so after the deploy has ended)."""
    deadline = time.monotonic() + seconds
    while True:
        for live, spare in ((BLUE, GREEN), (GREEN, BLUE)):
            if props(guest, spare, "StatusText")["StatusText"].endswith(f": {rid}"):
                return live, spare
        assert time.monotonic() < deadline, f"no instance stands by with {rid}"
        time.sleep(0.1)


def test_standby_the_previous_release_waits_imported_and_a_rollback_only_stops_the_live_one(
    staging_host_factory, service_repo, variant_builds, tmp_path
):
    """[service] standby: after a deploy's gate the release a rollback goes back to stands
    by in the idle instance, imported; the rollback is that same process taking over. A
    live instance that crashes is never replaced by the standby's older release."""
    guest = staging_host_factory(STANDBY_GUEST)
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    r1, r2 = v1.manifest["release_id"], v2.manifest["release_id"]
    cli = Deployer(service_repo, [guest], tmp_path)
    host_setup(guest, cli.config, authorized_key=Path(guest.key_path + ".pub").read_text())
    cli("deploy", "--watch", "1", str(v1.path))
    # from the plain unit to the template (setup starts the first instance, no standby)
    cli.config.write_text(
        cli.config.read_text() + f"\n[service]\nhandover = true\npreload = {PRELOAD}\nstandby = true\n"
    )
    assert f"removed {APP}.service" in " ".join(str(e.get("detail")) for e in host_setup(guest, cli.config))
    wait_version(guest, v1.manifest["version"])
    assert "standing by" not in cli("status").stdout, "nothing to go back to yet"

    done = cli("deploy", "--watch", "1", str(v2.path))
    assert f"{r1} stands by" in done.stdout + done.stderr, "the prune step says so"
    live, spare = standing_by(guest, r1)
    standby = props(guest, spare, "ActiveState", "StatusText", "MainPID")
    assert standby["ActiveState"] == "activating", "it waits: never ready, never running the service"
    assert standby["StatusText"] == f"deployer: preloaded, waiting for the running instance to exit: {r1}"
    cmdline = sh(guest, "cat", f"/proc/{standby['MainPID']}/cmdline").split("\0")
    assert f"{BASE}/releases/{r1}" in cmdline, "v1's own python, started on its slot link"
    assert version(guest) == v2.manifest["version"]
    assert f"standing by: {r1}" in cli("status").stdout

    loop = RequestLoop(guest, URL).start()
    try:
        cli("rollback")
    finally:
        rows = loop.stop()
    assert current(guest) == r1 and version(guest) == v1.manifest["version"]
    took_over = props(guest, spare, "ActiveState", "MainPID", "StatusText")
    assert took_over["MainPID"] == standby["MainPID"], "the standby's own process took over: no new start"
    assert took_over["ActiveState"] == "active"
    assert sh(guest, "systemctl", "is-active", live, check=False) == "inactive"
    versions = [r[3] for r in rows if r[3]]
    assert versions[-1] == v1.manifest["version"] and v2.manifest["version"] in versions

    # v2 again (the host has it), which leaves v1 standing by; then the live one crashes:
    # the standby gets the lock, finds v2 current, and starts over on it, never v1
    cli("deploy", "--watch", "1", str(v2.path))
    live, spare = standing_by(guest, r1)
    pid = props(guest, spare, "MainPID")["MainPID"]
    loop = RequestLoop(guest, URL).start()
    try:
        sh(guest, "systemctl", "kill", "-s", "KILL", live)
        wait_version(guest, v2.manifest["version"])
        time.sleep(3)  # the crashed one restarted too (RestartSec=2): it must wait, not run
    finally:
        rows = loop.stop()
    assert current(guest) == r2
    assert v1.manifest["version"] not in [r[3] for r in rows], "the older release never answered"
    assert props(guest, spare, "ActiveState", "MainPID") == {"ActiveState": "active", "MainPID": pid}, (
        "the standby's process started over on `current` (an exec: the same pid)"
    )
    assert props(guest, live, "ActiveState", "StatusText") == {
        "ActiveState": "activating",
        "StatusText": f"deployer: preloaded, waiting for the running instance to exit: {r2}",
    }, "the crashed one, restarted, waits in its turn"
    assert version(guest) == v2.manifest["version"]
