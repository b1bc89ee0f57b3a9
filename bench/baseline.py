"""The hand-written baseline: what a CI job without deployer does on every deploy.

Upload the whole wheelhouse tar with OpenSSH ``scp`` as the deploy user, then one
``ssh`` running a shell script: write the .env, untar, ``python3 -m venv`` (with pip),
``pip install --no-index --find-links`` (no uv), the same import smoke test deployer runs
(the service's ``--selfcheck``, in an empty environment), link the shared state,
``ln -sfn`` + ``mv -T`` to switch ``current``, ``sudo systemctl restart``, and poll
``/health`` with curl until it answers the new version. Its rollback: ``ln -sfn`` +
``mv -T`` back to the release before, restart, poll. The release is served by the very unit deployer
installed (its launcher execs ``<current>/venv/bin/python``). The script prints a
timestamp after each phase, for the baseline's own profile.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import tarfile
import time
from pathlib import Path

BASE = "/opt/tg_video_streamer"
UNIT = "tg_video_streamer"
#: where the unit reads the .env (EnvironmentFile=, `host setup` makes it the deploy user's)
ENV_FILE = "/etc/deployer/tg_video_streamer/env"
HEALTH_URL = "http://127.0.0.1:8080/health"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*==\S+)")


def wheelhouse_tar(artifact: Path, dest: Path) -> Path:
    """The CI side of the baseline: the artifact's wheels and a plain requirements.txt
    (pins without hashes), in one uncompressed tar (wheels are already compressed)."""
    with tarfile.open(artifact) as src, tarfile.open(dest, "w") as out:
        lock = src.extractfile("requirements.lock").read().decode()
        pins = "".join(m.group(1) + "\n" for m in map(_PIN.match, lock.splitlines()) if m)
        for info in src:
            if info.name.startswith("wheels/"):
                member = tarfile.TarInfo(Path(info.name).name)
                member.size, member.mode, member.mtime = info.size, 0o644, info.mtime
                out.addfile(member, src.extractfile(info))
        data = pins.encode()
        member = tarfile.TarInfo("requirements.txt")
        member.size, member.mode = len(data), 0o644
        out.addfile(member, io.BytesIO(data))
    return dest


def smoke_line(command: list[str]) -> str:
    """The smoke command as a shell line: ``{python}`` is the release's venv python (pure)."""
    return "env -i " + " ".join(
        shlex.quote(part).replace("{python}", "'\"$R/venv/bin/python\"'") for part in command
    )


def script(name: str, version: str, env_text: str, smoke: list[str]) -> str:
    """The shell script the baseline runs on the host (as the deploy user)."""
    q = shlex.quote
    return f"""set -eu
B={BASE}; N={q(name)}; R=$B/releases/$N; V={q(version)}
mark() {{ echo "@$1 $(date +%s.%N)"; }}
mark start
mkdir -p "$B/shared/sessions" "$B/shared/data"
(umask 077; cat > {ENV_FILE}) <<'DOTENV_EOF'
{env_text.rstrip()}
DOTENV_EOF
mark env
mkdir -p "$R/wheelhouse"
tar xf "$B/incoming/$N.tar" -C "$R/wheelhouse"
rm -f "$B/incoming/$N.tar"
mark unpack
python3 -m venv "$R/venv"
mark venv
"$R/venv/bin/pip" install --quiet --disable-pip-version-check --no-index \\
    --find-links "$R/wheelhouse" -r "$R/wheelhouse/requirements.txt"
mark install
{smoke_line(smoke)} >/dev/null
mark smoke
ln -sfn {ENV_FILE} "$R/.env"
ln -sfn ../../shared/sessions "$R/sessions"
ln -sfn ../../shared/data "$R/data"
{SWITCH_AND_POLL}"""


#: switch `current` to release $N, restart, poll /health every 0.1 s until it answers
#: version $V (at most 60 s): the end of a deploy, and a whole rollback
SWITCH_AND_POLL = f"""ln -sfn "releases/$N" "$B/current.tmp"
mv -T "$B/current.tmp" "$B/current"
mark switch
sudo -n systemctl restart {UNIT}
mark restart
i=0
until curl -s --max-time 2 {HEALTH_URL} | grep -qF "\\"version\\":\\"$V\\""; do
  i=$((i + 1))
  if [ "$i" -ge 600 ]; then echo "not healthy after 60s" >&2; exit 1; fi
  sleep 0.1
done
mark healthy
"""


def rollback_script(name: str, version: str) -> str:
    """The baseline's rollback to release ``name`` (already on the host): switch, restart, poll."""
    q = shlex.quote
    return f"""set -eu
B={BASE}; N={q(name)}; V={q(version)}
mark() {{ echo "@$1 $(date +%s.%N)"; }}
mark start
{SWITCH_AND_POLL}"""


def ssh_options(host) -> list[str]:
    """The harness's OpenSSH options (pinned host key, the deploy key), without the target."""
    argv = host.ssh_argv()
    return argv[1:-1]


def scp_argv(host, local: Path, remote: str) -> list[str]:
    opts = ssh_options(host)
    opts = ["-P" if o == "-p" else o for o in opts]
    return ["scp", "-q", *opts, str(local), f"{host.user}@{host.host}:{remote}"]


def run(
    host, tar: Path, name: str, version: str, env_text: str, smoke: list[str], timeout: float = 300
) -> dict:
    """One baseline deploy; returns its start, the phase marks (Unix time) and the outcome."""
    started = time.time()
    up = subprocess.run(
        scp_argv(host, tar, f"{BASE}/incoming/{name}.tar"), capture_output=True, text=True, timeout=timeout
    )
    uploaded = time.time()
    if up.returncode != 0:
        return {"started": started, "ok": False, "error": f"scp: {up.stderr.strip()[-500:]}"}
    return _ssh(host, script(name, version, env_text, smoke), started, {"upload": uploaded}, timeout)


def rollback(host, name: str, version: str, timeout: float = 120) -> dict:
    """The baseline's rollback to ``name``; its start, phase marks and outcome."""
    return _ssh(host, rollback_script(name, version), time.time(), {}, timeout)


def _ssh(host, text: str, started: float, marks: dict, timeout: float) -> dict:
    proc = subprocess.run(
        host.ssh_argv("bash", "-s"),
        input=text,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    ended = time.time()
    for line in proc.stdout.splitlines():
        if line.startswith("@"):
            step, stamp = line[1:].split()
            marks[step] = float(stamp)
    result = {"started": started, "ended": ended, "marks": marks, "ok": proc.returncode == 0}
    if proc.returncode != 0:
        result["error"] = proc.stderr.strip()[-1000:]
    return result


def phases(result: dict) -> dict[str, float]:
    """Seconds per phase, in order: upload (scp), connect (ssh until the script runs),
    env, unpack, venv, install, smoke, switch, restart, healthy (curl polling)."""
    marks = result.get("marks", {})
    order = ["upload", "start", "env", "unpack", "venv", "install", "smoke", "switch", "restart", "healthy"]
    names = {"start": "connect"}
    out, prev = {}, result["started"]
    for step in order:
        if step in marks:
            out[names.get(step, step)] = marks[step] - prev
            prev = marks[step]
    return out
