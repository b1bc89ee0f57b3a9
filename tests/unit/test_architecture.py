"""ARCHITECTURE.md stays true: its protocol tables name exactly what the contract defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployer.host import contract

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")


def names(cls) -> set[str]:
    return {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


def table(heading: str) -> set[str]:
    """The backticked first cells of the table under ``#### heading``."""
    section = DOC.split(f"#### {heading}\n", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


@pytest.mark.parametrize(
    "heading, defined",
    [
        ("Commands", set(contract.SERVE_COMMANDS)),
        ("Steps", names(contract.Step)),
        ("Release states", set(contract.STATES)),
        ("Outcomes (`result` of a record in `log/deploys.jsonl`)", names(contract.Outcome)),
    ],
)
def test_the_protocol_tables_match_the_contract(heading, defined):
    assert table(heading) == defined


def test_every_command_is_named_once_and_served():
    assert set(contract.SERVE_COMMANDS) == names(contract.Command)
    serve = (ROOT / "deployer" / "host" / "serve.py").read_text(encoding="utf-8")
    served = set(re.findall(r"Command\.([A-Z_]+)", serve))
    assert {k for k, v in vars(contract.Command).items() if k.isupper()} <= served


def test_the_statuses_are_listed():
    assert all(f"`{s}`" in DOC for s in names(contract.Status))


def test_readme_points_at_the_map():
    assert "ARCHITECTURE.md" in (ROOT / "README.md").read_text(encoding="utf-8")
