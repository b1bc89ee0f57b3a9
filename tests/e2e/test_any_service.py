"""Services that are not the example's shape, on a staging guest."""

from __future__ import annotations

from tests.e2e.conftest import BASE, sh
from tests.staging.guest import host_setup

GUEST = 5


def test_a_service_without_sd_notify_is_explained_and_type_exec_fixes_it(
    staging_host_factory, deployer_cli_for, variant_builds
):
    """Type=notify for a service that never sends READY=1: the restart waits for
    TimeoutStartSec, the deploy says why and which key to change, and the host is left
    as it was; with [service] type = "exec" the same artifact deploys."""
    guest = staging_host_factory(GUEST)
    cli = deployer_cli_for(guest)
    host_setup(guest, cli.config)
    v1, silent = variant_builds("v1"), variant_builds("silent")
    cli("deploy", str(v1.path))
    before = sh(guest, "readlink", f"{BASE}/current")

    failed = cli("deploy", str(silent.path), check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode == 1
    assert "never said it was ready" in out and '[service] type = "exec"' in out
    assert "restart ok" not in out and "restart fail" in out, "a restart that timed out is not ok"
    assert sh(guest, "readlink", f"{BASE}/current") == before, "switched back"

    cli.config.write_text(cli.config.read_text() + '\n[service]\ntype = "exec"\n')
    host_setup(guest, cli.config)
    assert "Type=exec" in sh(guest, "cat", "/etc/systemd/system/tg_video_streamer.service")
    cli("deploy", str(silent.path))
    assert sh(guest, "readlink", f"{BASE}/current").endswith(silent.manifest["release_id"])
