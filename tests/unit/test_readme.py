"""The README stays true: its two first commands exist, and every test named in
"What happens when…" exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_first_lines_are_the_two_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split()[0:2] for line in block] == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_test_named_in_the_failure_table_exists():
    section = README.split("## What happens when", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"(test_\w+)", section))
    assert len(names) >= 15
    defined = set()
    for f in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", f.read_text(), re.M))
        defined.add(f.stem)
    missing = sorted(n for n in names if n not in defined)
    assert not missing, f"README names tests that do not exist: {missing}"
