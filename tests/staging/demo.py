"""`make demo`: boot a staging host, set it up, build the example, deploy it, show it.

What a new user runs first: everything is real (systemd-nspawn guest, OpenSSH,
systemd, sudo) and stays up afterwards for poking around (`make staging-ssh`,
`make staging-down`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.staging.guest import deploy_env, host_setup  # noqa: E402
from tests.staging.harness import StagingHost, parse_env, run_script  # noqa: E402


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    index = int(os.environ.get("STAGING_INDEX", "0"))
    status = run_script(index, "env", check=False)
    if status.returncode == 0 and "STAGING_HOST" in status.stdout:
        say(f"staging host {index} is already up")
        guest = StagingHost(parse_env(status.stdout))
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
    print(
        "\nThe staging host stays up: `make staging-ssh`, `deployer -c deploy.toml status` "
        "with the printed environment, or `make staging-down`."
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
