"""``deployer diff --host``: two releases a staging guest keeps, compared through its
engine over SSH, with the keys (never the values) of the .env each ran with."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SUPPLY_SECRET
from tests.e2e.conftest import SECRET_VALUES


def test_diff_between_two_releases_a_host_keeps(
    staging_host_factory, service_repo, deployer_cli_for, variant_builds
):
    from tests.staging.guest import host_setup

    guest = staging_host_factory(36)  # this file's own guest
    host_setup(guest, service_repo / "deploy.toml", authorized_key=Path(guest.key_path + ".pub").read_text())
    cli = deployer_cli_for(guest)
    v1, supply = variant_builds("v1"), variant_builds("supply")
    cli("deploy", str(v1.path))
    env = cli.config.parent / "prod.env"
    env.write_text(env.read_text().replace(f"API_TOKEN={SECRET_VALUES[0]}\n", f"NEW_TOKEN={SUPPLY_SECRET}\n"))
    cli("deploy", str(supply.path))

    a, b = v1.manifest["release_id"], supply.manifest["release_id"]
    text = cli("diff", "--host", guest.host, a, b).stdout.splitlines()
    assert text[0].startswith(f"tg_video_streamer {v1.manifest['version']} ({a}) -> ")
    for line in (
        "dependencies: 1 added, 0 removed, 0 changed",
        ".pth files (run at every interpreter start): 1 new, 0 changed, 0 removed",
        "  + NEW_TOKEN ([env] required)",
        "  + NEW_TOKEN (in the .env it ran with)",
        "  - API_TOKEN (in the .env it ran with)",
    ):
        assert line in text, line
    d = json.loads(cli("--json", "diff", "--host", guest.host, a, b).stdout)
    assert d["env"]["keys"] == {"added": ["NEW_TOKEN"], "removed": ["API_TOKEN"]}
    assert [x["name"] for x in d["dependencies"]["added"]] == ["six"]

    gone = cli("diff", "--host", guest.host, a, "20990101T000000Z-1234567", check=False)
    assert gone.returncode == 1
    assert (
        gone.stderr.strip().splitlines()[-1].endswith("release 20990101T000000Z-1234567 is not on this host")
    )
    for output in cli.outputs:
        assert SUPPLY_SECRET not in output and SECRET_VALUES[0] not in output
