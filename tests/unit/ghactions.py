"""Reading GitHub Actions workflows for tests: YAML, steps, commands, actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# `deployer [--global-option [value]]... <sub-command>`, not `.deployer` (a folder)
DEPLOYER_CALL = re.compile(
    r"(?<![\w./-])deployer((?:\s+--?[\w-]+(?:\s+\"?\$?\w+\"?)?)*)"
    r"\s+([a-z][a-z-]*)\b"
)


def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as a boolean
        wf["on"] = wf.pop(True)
    return wf


def tool(name: str) -> str:
    """A linter shipped as a wheel into this venv (dev extra); never skipped."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def steps(wf: dict):
    """(job id, step) for every step of every job."""
    for job_id, job in (wf.get("jobs") or {}).items():
        for step in job.get("steps") or []:
            yield job_id, step


def run_lines(wf: dict):
    """(job id, step, line) of every `run:` script."""
    for job_id, step in steps(wf):
        for line in str(step.get("run") or "").splitlines():
            yield job_id, step, line.strip()


def deployer_commands(wf: dict) -> set:
    """Sub-commands the workflow runs with `deployer` (global options skipped)."""
    found = set()
    for _, _, line in run_lines(wf):
        for m in DEPLOYER_CALL.finditer(line):
            found.add(m.group(2))
    return found


def make_targets(wf: dict) -> set:
    out = set()
    for _, _, line in run_lines(wf):
        for m in re.finditer(r"\bmake\s+(?:-C\s+\S+\s+)?(?:-s\s+)?([a-z][a-z-]*)", line):
            out.add(m.group(1))
    return out


def evaluate_group(group: str, environment: str) -> str:
    """The concurrency group for a run deploying to ``environment``."""
    return re.sub(r"\$\{\{\s*inputs\.environment(?:\s*\|\|\s*'[^']*')?\s*\}\}", environment, group)
