"""SSH credentials and the transport's cipher preference (connections: tests/e2e)."""

from __future__ import annotations

import socket

import paramiko
import pytest

from deployer.errors import UsageError
from deployer.remote.ssh import Credentials, gcm_first, load_private_key


def test_aes_gcm_is_offered_first_and_nothing_paramiko_offers_is_dropped():
    ours, theirs = socket.socketpair()
    try:
        transport = gcm_first(ours)
        offered = transport.get_security_options().ciphers
        assert offered[:2] == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
        assert sorted(offered) == sorted(paramiko.Transport(theirs).get_security_options().ciphers)
    finally:
        ours.close()
        theirs.close()


def test_no_key_and_no_agent_is_bad_input_naming_every_way_to_give_one():
    creds = Credentials.from_env(environ={})
    with pytest.raises(UsageError, match="DEPLOYER_SSH_KEY or ssh.key_file .* ssh-agent"):
        load_private_key(creds)
    with_agent = Credentials.from_env(environ={"SSH_AUTH_SOCK": "/run/agent.sock"})
    assert load_private_key(with_agent) is None  # paramiko asks the agent
