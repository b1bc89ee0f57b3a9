"""Masking: the .env read as systemd reads it; every secret masked in every form; public
keys shown as they are."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from deployer.host.envfile import EnvFile
from deployer.host.masking import mask, secret_forms
from deployer.redact import Redactor

TRICKY = (
    "# a comment\n"
    "; another\n"
    "PLAIN=value with spaces   \n"
    "SINGLE='no $escapes \\n here'\n"
    'DOUBLE="esc \\" \\$ \\\\ kept \\n"\n'
    "CONT=first\\\n"
    "second\n"
    'MULTI="line one\n'
    'line two"\n'
    " SPACED = around \n"
    "EMPTY=\n"
    "export EXPORTED=no\n"
    "not an assignment\n"
    "9BAD=starts with a digit\n"
)


def test_a_tricky_env_file_reads_as_systemd_reads_it():
    env = EnvFile(TRICKY)
    assert env.assignments == [
        ("PLAIN", "value with spaces"),
        ("SINGLE", "no $escapes \\n here"),
        ("DOUBLE", 'esc " $ \\ kept \\n'),
        ("CONT", "firstsecond"),
        ("MULTI", "line one\nline two"),
        ("SPACED", "around"),
        ("EMPTY", ""),
    ]
    assert env.rejected == ["export EXPORTED=no", "not an assignment", "9BAD=starts with a digit"]


def test_every_secret_is_masked_in_every_form():
    secret = "s3cr3t/+=&value"
    r = Redactor()
    r.add_env(f"TOKEN={secret}\n")
    encoded = base64.b64encode(secret.encode()).decode()
    for form in (
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        encoded,
        encoded.rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode(),
    ):
        assert r(f"before {form} after") == "before *** after", form


def test_multi_line_quoted_and_continued_values_and_rejected_lines_are_masked():
    r = Redactor()
    r.add_env(
        'KEY="-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\n-----END KEY-----"\nX=con\\\ntinued-value\n'
    )
    r.add_env("export HIDDEN=oops-a-secret\n")
    out = r(
        "AAAAB3NzaC1yc2EAAAADAQAB | continued-value | "
        "Ignoring invalid assignment 'export HIDDEN=oops-a-secret'"
    )
    assert "AAAAB3Nza" not in out and "continued-value" not in out and "oops-a-secret" not in out


def test_short_values_are_masked_as_words_only():
    r = Redactor()
    r.add_env("PIN=42\n")
    assert r("pin 42, port 4242, /42/") == "pin ***, port 4242, /***/"


def test_public_keys_stay_readable():
    r = Redactor()
    r.add_env(
        "HTTP_PORT=8090\nHTTP_HOST=127.0.0.1\nAPI_TOKEN=abcd-secret\n", public=["HTTP_PORT", "HTTP_HOST"]
    )
    assert r("http://127.0.0.1:8090/health token abcd-secret") == "http://127.0.0.1:8090/health token ***"


def test_one_rule_for_both_halves():
    assert mask("a s3cr3t-x b", secret_forms("s3cr3t-x")) == "a *** b"
    assert secret_forms("") == set() and secret_forms("ab") == {"ab"}
