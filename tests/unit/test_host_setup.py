"""Root setup's pure parts: the sudoers lines, authorized_keys, rendering guards, the socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.errors import HostError, UsageError
from deployer.host.contract import HostConfig
from deployer.host.rootfiles import (
    UNIT_MARKERS,
    authorize,
    compare,
    installed_paths,
    render,
    sudo_rules,
    sudoers_text,
)

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
        == sudo_rules(CONFIG)
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


def test_socket_activation_renders_a_socket_unit_and_a_drop_in_that_requires_it():
    templates = {"unit": "EnvironmentFile=-${env_file}\n", "launcher": "#!/bin/sh\n"}
    assert set(render(templates, CONFIG)) == {"unit", "launcher"}, "no socket without [service] socket"
    rendered = render(templates, CONFIG.replace(socket="127.0.0.1:8000"))
    socket = rendered["socket"].splitlines()
    assert "ListenStream=127.0.0.1:8000" in socket and "Accept=no" in socket
    assert "WantedBy=sockets.target" in socket
    assert any(m in rendered["socket"] for m in UNIT_MARKERS), "setup knows it as its own"
    dropin = rendered["socket-dropin"].splitlines()
    assert "Requires=svc.socket" in dropin and "After=svc.socket" in dropin
    assert rendered["unit"] == render(templates, CONFIG)["unit"], "the service's own template is untouched"


def test_drift_names_a_missing_socket_and_one_left_from_an_earlier_config():
    config = CONFIG.replace(socket="8000")
    templates = {"unit": "u\n", "launcher": "l\n"}
    paths = installed_paths(config)
    assert paths["socket"] == Path("/etc/systemd/system/svc.socket")
    assert paths["socket-dropin"] == Path("/etc/systemd/system/svc.service.d/deployer-socket.conf")
    rendered = render(templates, config)
    up_to_date = dict(rendered)
    assert compare(up_to_date, rendered, paths) == []
    missing = {**up_to_date, "socket": None}
    assert compare(missing, rendered, paths) == [
        f"{paths['socket']} is not installed (run `deployer host setup`)"
    ]
    without = render(templates, CONFIG)
    left = compare(up_to_date, without, paths)
    assert len(left) == 2 and all("is installed but this config does not use it" in p for p in left)
    foreign = {
        "unit": "u\n",
        "launcher": "l\n",
        "socket": "[Socket]\nListenStream=1\n",
        "socket-dropin": None,
    }
    assert compare(foreign, without, paths) == [], "a socket unit deployer did not write is not its drift"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("127.0.0.1:8000", None),
        ("8000", None),
        ("[::1]:8000", None),
        ("0.0.0.0:99999", "the port must be 1..65535"),
        ("256.0.0.1:80", "is not an IPv4 address"),
        ("localhost:80", "is not a TCP address"),
        ("127.0.0.1:80\nExecStartPre=/bin/sh", "is not a TCP address"),
    ],
)
def test_only_a_tcp_address_reaches_the_socket_unit(value, problem):
    if problem is None:
        assert HostConfig.from_dict({**CONFIG.to_dict(), "socket": value}).socket == value
    else:
        with pytest.raises(UsageError, match=f"host config: socket: .*{problem}"):
            HostConfig.from_dict({**CONFIG.to_dict(), "socket": value})
