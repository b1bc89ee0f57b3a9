"""deploy.toml validation: every bad input gets one line naming its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config import apply_env_overrides, load_config, parse_hosts, validate_config
from deployer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"app": {"name": "svc"}, "hosts": [{"address": "10.0.0.5"}]}


def test_example_config_loads_and_documents_every_section():
    config = load_config(ROOT / "deploy.example.toml", environ={})
    assert config.app.name == "tg_video_streamer"
    assert config.hosts[0].port == 22
    assert config.notify[0].kind == "slack"
    documented = set(config.model_fields_set)
    assert documented == set(type(config).model_fields), "deploy.example.toml must show every table"


def test_repository_config_loads():
    config = load_config(ROOT / "deploy.toml", environ={})
    assert config.app.base == "/opt/tg_video_streamer"
    assert config.app.unit_name == "tg_video_streamer"
    assert config.smoke_command() == ["{python}", "-m", "tg_video_streamer", "--selfcheck"]


def test_defaults():
    c = validate_config(GOOD)
    assert (c.app.user, c.app.keep_releases, c.app.shared_dirs) == ("tgstream", 5, ["sessions", "data"])
    assert c.target.interpreter == "/usr/bin/python3"
    assert c.health.watch == 60 and "Traceback" in c.health.fatal_patterns
    assert c.audit.retention_days == 30 and c.artifact.format == "wheelhouse"


def _with(path: str, value) -> dict:
    data = {"app": dict(GOOD["app"]), "hosts": [dict(h) for h in GOOD["hosts"]]}
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node.setdefault(k, {})
    if keys[-1].isdigit():
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return data


BAD = [
    (_with("hosts.0.port", 70000), "hosts[0].port: Input should be less than or equal to 65535"),
    (_with("hosts.0.port", "ssh"), "hosts[0].port: Input should be a valid integer"),
    (_with("app.keep_releases", 0), "app.keep_releases: Input should be greater than or equal to 1"),
    (_with("app.colour", "blue"), "app.colour: unknown key"),
    (_with("target.python_version", "3.8"), "target.python_version: the host engine needs Python 3.9"),
    (_with("target.platform", "win32"), "target.platform: Input should be 'linux_x86_64'"),
    (_with("target.interpreter", "python3"), "target.interpreter: must be an absolute path"),
    (_with("app.base_path", "/opt/../etc"), "app.base_path: must be an absolute path"),
    (_with("app.shared_dirs", ["../etc"]), "app.shared_dirs: '../etc' is not allowed as a shared dir"),
    (_with("health.fatal_patterns", ["("]), "health.fatal_patterns: '(' is not a valid regular"),
    (_with("health.command", []), "health: command must not be empty"),
    (_with("artifact.format", "zip"), "artifact.format: Input should be 'wheelhouse' or 'pex'"),
    (_with("notify", [{"kind": "pager", "url_from_variable": "X"}]), "notify[0].kind: Input should be"),
    (_with("hosts.0", {"port": 22}), "hosts[0].address: Field required"),
    ({"hosts": []}, "app: Field required"),
    (_with("app.name", "my app"), "app.name: String should match pattern"),
]


@pytest.mark.parametrize("data,expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_bad_config_names_the_key(data, expected):
    with pytest.raises(ConfigError) as e:
        validate_config(data, "deploy.toml")
    message = str(e.value)
    assert message.startswith("deploy.toml: ")
    assert expected.replace("Value error, ", "") in message
    assert "\n" not in message


def test_duplicate_hosts_rejected():
    data = {"app": {"name": "svc"}, "hosts": [{"address": "h"}, {"address": "h", "port": 22}]}
    with pytest.raises(ConfigError, match="hosts\\[1\\]: h:22 is listed twice"):
        validate_config(data)


def test_toml_syntax_error_is_one_line(tmp_path):
    p = tmp_path / "deploy.toml"
    p.write_text("[app\nname = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p, environ={})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "deploy.toml", environ={})


def test_env_overrides_replace_ci_injected_values(tmp_path):
    p = tmp_path / "deploy.toml"
    p.write_text('[app]\nname = "svc"\n[[hosts]]\naddress = "old"\nuser = "u"\n')
    env = {
        "DEPLOYER_HOSTS": "deploy@10.1.1.1:2222, [fe80::1]:22,h3",
        "DEPLOYER_SSH_KEY_FILE": "/run/key",
        "DEPLOYER_KNOWN_HOSTS_FILE": "/run/kh",
        "DEPLOYER_ENV_FILE": "/run/env",
    }
    c = load_config(p, environ=env)
    assert [(h.address, h.port, h.user) for h in c.hosts] == [
        ("10.1.1.1", 2222, "deploy"),
        ("fe80::1", 22, None),
        ("h3", 22, None),
    ]
    assert (c.ssh.key_file, c.ssh.known_hosts, c.env.file) == ("/run/key", "/run/kh", "/run/env")
    c = load_config(p, environ={"DEPLOYER_USER": "ci"})
    assert c.app.user == "ci" and c.host_user(c.hosts[0]) == "ci"


def test_bad_host_override_is_named():
    with pytest.raises(ConfigError, match="DEPLOYER_HOSTS: cannot parse host 'a:b:c'"):
        parse_hosts("a:b:c")


def test_overrides_do_not_mutate_input():
    raw = {"ssh": {"key_file": "a"}}
    apply_env_overrides(raw, {"DEPLOYER_SSH_KEY_FILE": "b"})
    assert raw == {"ssh": {"key_file": "a"}}
