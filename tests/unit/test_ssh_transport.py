"""The SSH transport's cipher preference (negotiation itself: tests/e2e)."""

from __future__ import annotations

import socket

import paramiko

from deployer.remote.ssh import gcm_first


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
