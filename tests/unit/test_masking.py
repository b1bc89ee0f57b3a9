"""Masking: the .env read as systemd reads it; every secret masked in every form; public
keys shown as they are."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from deployer.host.envfile import EnvFile
from deployer.host.masking import mask, secret_forms
from deployer.redact import Redactor

ROOT = Path(__file__).resolve().parents[2]

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


HOSTS = "tgstream@203.0.113.10:22, [fe80::1]:2222,h3"


def test_a_secret_deploy_hosts_is_masked_host_by_host():
    """DEPLOYER_HOSTS_SECRET=1 (set by CI when DEPLOY_HOSTS is a secret): every address, and
    every `[user@]address[:port]`, is a secret; short names only as words."""
    red = Redactor()
    red.add_secret_hosts({"DEPLOYER_HOSTS": HOSTS, "DEPLOYER_HOSTS_SECRET": "1"})
    text = "203.0.113.10: ok; tgstream@203.0.113.10:22 up; fe80::1 up; h3: ok; sha3 stays"
    assert red(text) == "***: ok; *** up; *** up; ***: ok; sha3 stays"
    for env in ({"DEPLOYER_HOSTS": HOSTS}, {"DEPLOYER_HOSTS": HOSTS, "DEPLOYER_HOSTS_SECRET": "0"}):
        plain = Redactor()  # a variable, not a secret: the hosts label the output as they are
        plain.add_secret_hosts(env)
        assert plain(text) == text


def _key_file(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("secret", [True, False], ids=["secret", "variable"])
def test_status_and_the_log_bundle_never_carry_a_secret_deploy_hosts(tmp_path, secret):
    """What CI uploads: `deployer status` (status.txt) and the bundle of a failed rollback
    (summary.json, summary.md, events.jsonl). Nothing listens on port 9: both fail fast."""
    (tmp_path / "deploy.toml").write_text('[app]\nname = "svc"\n')
    (tmp_path / "known_hosts").write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "DEPLOYER_HOSTS": "tgstream@127.0.0.1:9,127.0.0.2:9",
        "DEPLOYER_SSH_KEY_FILE": str(_key_file(tmp_path / "key")),
        "DEPLOYER_KNOWN_HOSTS_FILE": str(tmp_path / "known_hosts"),
        **({"DEPLOYER_HOSTS_SECRET": "1"} if secret else {}),
    }
    seen = ""
    for args in (["status"], ["rollback", "--log-dir", "deploy-logs"]):
        proc = subprocess.run(
            [sys.executable, "-m", "deployer", "--plain", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        seen += proc.stdout + proc.stderr
    [bundle] = (tmp_path / "deploy-logs").iterdir()
    assert sorted(p.name for p in bundle.iterdir()) == ["events.jsonl", "summary.json", "summary.md"]
    seen += "".join(p.name + p.read_text() for p in bundle.iterdir())
    assert "cannot reach" in seen
    if secret:
        assert "127.0.0." not in seen and "***: cannot reach ***:9" in seen
    else:
        assert "127.0.0.1: cannot reach 127.0.0.1:9" in seen


def test_github_is_told_every_form_of_every_secret_by_the_same_rule():
    env = {
        "PATH": "/usr/bin:/bin",
        "DOTENV": "API_TOKEN=abcd-secret/+\nPORT=80\nexport BAD=rejected-line\n",
        "KEY": "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\n-----END KEY-----",
        "HOSTS": "deploy@10.20.30.40:2222",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployer",
            "github-masks",
            "--env",
            "DOTENV",
            "--value",
            "KEY",
            "--hosts",
            "HOSTS",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.splitlines()
    masked = {line.removeprefix("::add-mask::") for line in out}
    assert all(line.startswith("::add-mask::") for line in out)
    assert {"abcd-secret/+", quote("abcd-secret/+", safe=""), "AAAAB3NzaC1yc2EAAAADAQAB"} <= masked
    assert base64.b64encode(b"abcd-secret/+").decode() in masked
    assert {"export BAD=rejected-line", "deploy@10.20.30.40:2222", "10.20.30.40"} <= masked
    assert "80" not in masked, "a short value is not announced: GitHub would blank every 80"
