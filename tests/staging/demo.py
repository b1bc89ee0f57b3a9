"""`make demo`: boot a staging host, set it up, build the example, deploy it, show it.

What a new user runs first: everything is real (systemd-nspawn guest, OpenSSH,
systemd, sudo) and stays up afterwards for poking around (`make staging-ssh`,
`make staging-down`).

The guest is $STAGING_INDEX, by default 100 (harness.DEMO_INDEX), which the test suite
never boots: `make test` runs beside it and leaves it up. Run again, the demo re-uses
a guest that is up and answers ssh (host setup finds nothing to change; HEAD is built
and deployed again: an unchanged HEAD is the release already there, switched to and
health-gated again), and boots a fresh one in place of one that does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.staging.guest import deploy_env, host_setup  # noqa: E402
from tests.staging.harness import DEMO_INDEX, StagingHost, parse_env, run_script  # noqa: E402


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def running_guest(index: int) -> StagingHost | None:
    """Guest ``index`` if it is up and answers ssh; one that is up but does not is taken down."""
    status = run_script(index, "status", check=False)
    if "status: running" not in status.stdout:
        return None
    if status.returncode == 0 and "ssh: ok" in status.stdout:
        return StagingHost(parse_env(run_script(index, "env").stdout))
    say(f"staging host {index} is up but does not answer ssh: taking it down")
    run_script(index, "down")
    return None


def main() -> int:
    index = int(os.environ.get("STAGING_INDEX") or DEMO_INDEX)
    guest = running_guest(index)
    if guest is not None:
        say(f"staging host {index} is already up: re-using it")
    else:
        say(f"booting staging host {index} (systemd-nspawn; the first boot builds its image)")
        guest = StagingHost.up(index)
        guest.keep_up()
    print(f"    {guest.user}@{guest.host}:{guest.port}")
    say("deployer host setup (as root on the host: deploy user, layout, sudoers, unit)")
    for event in host_setup(guest, ROOT / "deploy.toml"):
        if event.get("status") == "ok":
            print(f"    {event['step']}: {event.get('detail')}")
    env = {**os.environ, **deploy_env(guest)}
    deployer = [sys.executable, "-m", "deployer", "-c", str(ROOT / "deploy.toml")]
    say("deployer deploy (build HEAD into dist/, ship, stage, switch, health gate)")
    rc = subprocess.run([*deployer, "deploy", "--watch", "5"], env=env, cwd=ROOT).returncode
    say("deployer releases")
    subprocess.run([*deployer, "releases"], env=env, cwd=ROOT)
    say("GET /health on the host")
    print("    " + guest.exec(["curl", "-s", "http://127.0.0.1:8080/health"], check=False).stdout)
    make_index = "" if index == DEMO_INDEX else f" STAGING_INDEX={index}"
    print(f"\nThe staging host (guest {index}) stays up; `make test` does not touch it. To deploy by hand:")
    for key, value in deploy_env(guest).items():
        print(f"    export {key}={value}")
    print(
        f"    .venv/bin/deployer -c deploy.toml status\n"
        f"`make staging-ssh{make_index}` logs in, `make staging-down{make_index}` stops it."
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
