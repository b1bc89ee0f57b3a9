"""Root setup's pure parts: the sudoers lines, authorized_keys, rendering guards."""

from __future__ import annotations

import pytest

from deployer.errors import HostError
from deployer.host.contract import HostConfig
from deployer.host.rootfiles import authorize, render, sudo_rules, sudoers_text

CONFIG = HostConfig.from_dict(
    {
        "app": "svc",
        "module": "svc",
        "unit": "svc",
        "user": "svc",
        "base_path": "/opt/svc",
        "interpreter": "/usr/bin/python3",
        "smoke": {"command": ["{python}", "-c", "1"]},
    }
)


def test_sudoers_is_exactly_one_line_per_verb():
    lines = [ln for ln in sudoers_text(CONFIG).splitlines() if not ln.startswith("#")]
    assert (
        lines
        == sudo_rules("svc", "svc")
        == [
            "svc ALL=(root) NOPASSWD: /usr/bin/systemctl restart svc",
            "svc ALL=(root) NOPASSWD: /usr/bin/systemctl stop svc",
            "svc ALL=(root) NOPASSWD: /usr/bin/systemctl reset-failed svc",
        ]
    )


def test_the_deploy_key_is_added_once_with_restrict():
    key = "ssh-ed25519 AAAAC3Nza deploy"
    assert authorize("", key) == "restrict ssh-ed25519 AAAAC3Nza deploy\n"
    assert authorize("ssh-ed25519 AAAAC3Nza old\n", key) == "restrict ssh-ed25519 AAAAC3Nza old\n"
    assert authorize('from="10.0.0.1" ssh-ed25519 AAAAC3Nza x\n', key).startswith('restrict,from="10.0.0.1"')
    once = authorize("", key)
    assert authorize(once, key) == once
    with pytest.raises(HostError, match="not a public key"):
        authorize("", "garbage")


def test_a_unit_template_that_reads_the_env_from_elsewhere_is_refused():
    good = {"unit": "EnvironmentFile=-${env_file}\n", "launcher": "#!/bin/sh\n"}
    assert "EnvironmentFile=-/etc/deployer/svc/env" in render(good, CONFIG)["unit"]
    bad = {"unit": "EnvironmentFile=-${base}/shared/.env\n", "launcher": "#!/bin/sh\n"}
    with pytest.raises(HostError, match="EnvironmentFile=-/opt/svc/shared/.env is not"):
        render(bad, CONFIG)
