"""Bad input on the command line or in deploy.toml: one line naming what is wrong, exit 2,
no traceback, and nothing sent anywhere (no host here answers; none is contacted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = '[app]\nname = "svc"\n[[hosts]]\naddress = "127.0.0.1"\nport = 9\n'


def run(tmp_path: Path, config: str | None, *args: str, env: dict | None = None):
    if config is not None:
        (tmp_path / "deploy.toml").write_text(config)
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "deployer", "--plain", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**base_env, **(env or {}), "PYTHONPATH": str(ROOT)},
    )


def assert_one_line(proc, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


@pytest.fixture
def artifact(tmp_path):
    p = tmp_path / "a.tar"
    p.write_bytes(b"")
    return str(p)


CASES = [
    ("no config", None, ["releases"], {}, ["deploy.toml: not found"]),
    ("unknown key", GOOD + "[health]\ncolour = 1\n", ["releases"], {}, ["health.colour: unknown key"]),
    (
        "bad port",
        GOOD.replace("port = 9", "port = 0"),
        ["releases"],
        {},
        ["hosts[0].port: Input should be greater than or equal to 1"],
    ),
    ("toml syntax", "[app\n", ["releases"], {}, ["deploy.toml: not valid TOML"]),
    ("no hosts", '[app]\nname = "svc"\n', ["releases"], {}, ["hosts: no hosts configured"]),
    ("unknown --host", GOOD, ["releases", "--host", "nope"], {}, ["--host nope: not among"]),
    ("artifact and ref", GOOD, ["deploy", "ARTIFACT", "--ref", "v1"], {}, ["ARTIFACT or --ref"]),
    ("report --days 0", GOOD, ["report", "--days", "0"], {}, ["--days 0: a whole number of days"]),
    ("report --days x", GOOD, ["report", "--days", "x"], {}, ["--days x: a whole number of days"]),
    ("report json and markdown", GOOD, ["report", "--json", "--markdown"], {}, ["--json or --markdown"]),
    ("report unknown --host", GOOD, ["report", "--host", "nope"], {}, ["--host nope: not among"]),
    (
        "missing env file",
        GOOD + '[env]\nfile = "prod.env"\n',
        ["deploy", "ARTIFACT"],
        {},
        ["env.file:", "prod.env"],
    ),
    (
        "env variable unset",
        GOOD + '[env]\nfrom_variable = "DOTENV"\n',
        ["deploy", "ARTIFACT"],
        {},
        ["env.from_variable: DOTENV is not set"],
    ),
    (
        "bad DEPLOYER_HOSTS",
        GOOD,
        ["releases"],
        {"DEPLOYER_HOSTS": "a:b:c"},
        ["DEPLOYER_HOSTS: cannot parse host 'a:b:c'"],
    ),
    (
        "missing key file",
        GOOD,
        ["releases"],
        {"DEPLOYER_SSH_KEY_FILE": "/nonexistent/key"},
        ["ssh.key_file /nonexistent/key"],
    ),
    (
        "garbage key secret",
        GOOD,
        ["releases"],
        {"DEPLOYER_SSH_KEY": "not a key at all"},
        ["DEPLOYER_SSH_KEY: not a private key"],
    ),
]


@pytest.mark.parametrize("name,config,args,env,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(tmp_path, artifact, name, config, args, env, needles):
    args = [artifact if a == "ARTIFACT" else a for a in args]
    proc = run(tmp_path, config, *args, env=env)
    if name in ("missing key file", "garbage key secret"):
        # per-host errors are reported in the summary; the exit code is still 2
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert any(n in proc.stdout + proc.stderr for n in needles), proc.stdout + proc.stderr
        return
    assert_one_line(proc, 2, *needles)


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "--lock-wait", "-1"],
        ["nosuchcommand"],
        ["verify", "/nonexistent.tar"],
        ["rollback", "--to"],
    ],
)
def test_bad_arguments_exit_2(tmp_path, args):
    proc = run(tmp_path, GOOD, *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_help_everywhere(tmp_path):
    for cmd in ([], ["deploy"], ["rollback"], ["host", "setup"], ["lock", "status"], ["check"]):
        proc = run(tmp_path, GOOD, *cmd, "--help")
        assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_a_ref_is_resolved_once_and_never_read_as_an_option(tmp_path):
    import subprocess

    from deployer.commands.deploy import resolve_ref
    from deployer.errors import UsageError
    from tests.conftest import git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("1")
    git(repo, "add", "f")
    git(repo, "commit", "-qm", "one")
    tagged = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1.2.3")
    (repo / "f").write_text("2")
    git(repo, "commit", "-qam", "two")
    git(repo, "branch", "v1.2.3")  # a branch named like the tag, on another commit
    assert resolve_ref(repo, "v1.2.3") == tagged  # the tag, not the branch
    assert resolve_ref(repo, "main") == git(repo, "rev-parse", "HEAD")
    for hostile in ("--no-checkout", "-b", ""):
        with pytest.raises(UsageError, match="read as an option"):
            resolve_ref(repo, hostile)
    with pytest.raises(UsageError, match="no such tag, branch or commit"):
        resolve_ref(repo, "nope")
    assert (
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True
        ).stdout.count("\n")
        == 1
    )


def test_output_flags_are_accepted_after_the_subcommand(tmp_path):
    import json

    from deployer.cli import hoist_output_flags

    assert hoist_output_flags(["releases", "--json"]) == ["--json", "releases"]
    assert hoist_output_flags(["deploy", "x.tar", "--plain", "--", "--json"]) == [
        "--plain",
        "deploy",
        "x.tar",
        "--",
        "--json",
    ]
    (tmp_path / "deploy.toml").write_text('[app]\nname = "svc"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "-c", str(tmp_path / "deploy.toml"), "releases", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DEPLOYER_HOSTS": "127.0.0.1:9"},
    )
    assert "No such option" not in proc.stderr
    assert "127.0.0.1" in json.loads(proc.stdout)
