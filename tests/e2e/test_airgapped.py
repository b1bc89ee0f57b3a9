"""The air-gapped path: a copied artifact installed by the engine it carries, on a host
with no route anywhere (the guest's network namespace has none)."""

from __future__ import annotations

import json


def test_copied_artifact_installs_with_its_own_engine(staging_host_factory, example_build):
    guest = staging_host_factory(22)
    m = example_build.manifest
    art = f"/root/{example_build.path.name}"
    guest.push(art, example_build.path.read_bytes())
    guest.exec(["chmod", "0644", art])
    guest.exec(["sh", "-c", f"cd /root && tar xf {art} engine.pyz && chmod 0755 /root /root/engine.pyz"])
    # no package index can be reached from here
    assert (
        guest.exec(["curl", "-s", "--max-time", "3", "https://pypi.org/simple/"], check=False).returncode != 0
    )
    setup = guest.exec(["python3", "/root/engine.pyz", "setup", "--artifact", art], check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    guest.push("/root/prod.env", b"HTTP_PORT=8080\nSTATE_DIR=/opt/tg_video_streamer/shared/sessions\n")
    guest.exec(["chmod", "0644", "/root/prod.env"])
    install = guest.exec(
        [
            "runuser",
            "-u",
            "tgstream",
            "--",
            "python3",
            "/root/engine.pyz",
            "install",
            art,
            "--env-file",
            "/root/prod.env",
            "--watch",
            "3",
        ],
        check=False,
        timeout=300,
    )
    events = [json.loads(line) for line in install.stdout.splitlines() if line.startswith("{")]
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-2000:]
    steps = [e["step"] for e in events if e["status"] == "ok"]
    for step in (
        "lock",
        "preflight",
        "unpack",
        "venv",
        "smoke",
        "env",
        "switch",
        "restart",
        "healthy",
        "gate",
        "prune",
    ):
        assert step in steps
    assert all({"time", "step", "status", "detail"} <= set(e) for e in events)
    answer = guest.exec(["curl", "-s", "http://127.0.0.1:8080/health"]).stdout
    assert json.loads(answer) == {"status": "ok", "version": m["version"]}
    current = guest.exec(["readlink", "/opt/tg_video_streamer/current"]).stdout.strip()
    assert current == f"releases/{m['release_id']}"

    # `setup --check` on the host: reports drift of the installed unit, writes nothing
    check = ["python3", "/root/engine.pyz", "setup", "--check", "--artifact", art]
    clean = guest.exec(["runuser", "-u", "tgstream", "--", *check], check=False)
    assert clean.returncode == 0 and "unit and launcher match the templates" in clean.stdout
    unit = "/etc/systemd/system/tg_video_streamer.service"
    guest.exec(["sh", "-c", f"echo '# edited by hand' >> {unit}"])
    edited = guest.exec(["cat", unit]).stdout
    drifted = guest.exec(["runuser", "-u", "tgstream", "--", *check], check=False)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    lines = [json.loads(line) for line in drifted.stdout.splitlines() if line.startswith("{")]
    assert any(e["step"] == "drift" and unit in e["detail"] for e in lines), lines
    assert guest.exec(["cat", unit]).stdout == edited, "--check writes nothing"
