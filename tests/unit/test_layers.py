"""The package's layers: what the host engine ships, and which module may import which.

Two guards, both pure (no network, no host):

* the engine zipapp, built as a release ships it, imports under ``python -I -S`` with
  nothing but the standard library loaded, and holds only the engine's own files;
* a table of static import rules, checked against every ``import`` in deployer/,
  function-level ones included.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import deployer
from deployer.builder.engine import build_engine

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "deployer"

# -- the engine zipapp ---------------------------------------------------------------

ENGINE_FILES = ("deployer/__init__.py", "deployer/errors.py")
ENGINE_DIRS = ("deployer/host/",)

# Run by a bare interpreter: import every module of the zip, report what got loaded.
CHILD = """
import importlib, json, sys, zipfile
pyz = sys.argv[1]
sys.path.insert(0, pyz)
names = []
with zipfile.ZipFile(pyz) as zf:
    for entry in sorted(zf.namelist()):
        if entry.startswith("deployer/") and entry.endswith(".py"):
            parts = entry[: -len(".py")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
for name in names:
    importlib.import_module(name)
print(json.dumps({
    "imported": names,
    "modules": sorted(sys.modules),
    "files": {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.startswith("deployer")},
    "stdlib": sorted(set(sys.stdlib_module_names) | set(sys.builtin_module_names)),
}))
"""


def test_engine_zipapp_loads_only_the_standard_library(tmp_path):
    assert Path(deployer.__file__).resolve().is_relative_to(PACKAGE), (
        f"deployer is imported from {deployer.__file__}, not from this checkout ({PACKAGE})"
    )
    pyz = build_engine(tmp_path / "engine.pyz")

    with zipfile.ZipFile(pyz) as zf:
        entries = zf.namelist()
    strays = [
        e
        for e in entries
        if e != "__main__.py" and e.removesuffix("c") not in ENGINE_FILES and not e.startswith(ENGINE_DIRS)
    ]
    assert not strays, f"the engine zipapp holds files beyond the engine's: {strays}"

    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, str(pyz)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"importing the engine under -I -S failed:\n{proc.stderr}"
    child = json.loads(proc.stdout)

    assert "deployer.host.cli" in child["imported"]
    misplaced = {n: f for n, f in child["files"].items() if not (f or "").startswith(str(pyz))}
    assert not misplaced, f"engine modules loaded from outside the zipapp: {misplaced}"
    allowed = set(child["stdlib"]) | {"__main__", "deployer"}
    foreign = [m for m in child["modules"] if m.split(".")[0] not in allowed]
    assert not foreign, f"the engine loads modules outside the standard library: {foreign}"


# -- static import rules -------------------------------------------------------------
#
# A module pattern "x.*" stands for x and everything under it; a plain name for exactly
# that module. A rule with ``only`` allows, within the ``deployer`` namespace, nothing
# else; a rule with ``never`` forbids what it lists (deployer's or anyone's).

UPWARD = tuple(
    f"deployer.{m}.*"
    for m in (
        "cli",
        "builder",
        "scaffold",
        "guess",
        "init",
        "pipeline",
        "audit",
        "check",
        "setup",
        "provision",
    )
)


@dataclass(frozen=True)
class Rule:
    name: str
    files: str  # glob over paths relative to the repository root
    why: str
    only: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


#: modules that do I/O beyond reading a file: processes, sockets, copies, the network
IO_MODULES = ("subprocess.*", "socket.*", "shutil.*", "urllib.*", "http.*", "tempfile.*", "paramiko.*")

RULES = [
    Rule(
        "host-stands-alone",
        "deployer/host/**",
        "the engine ships alone to the host, with deployer/__init__.py and errors.py",
        only=("deployer", "deployer.errors", "deployer.host.*"),
    ),
    Rule(
        "remote-does-not-reach-up",
        "deployer/remote/**",
        "the transport knows nothing of the CLI, the builder or the pipeline",
        never=UPWARD,
    ),
    Rule(
        "config-is-data",
        "deployer/config.py",
        "config parses its one file: no processes, sockets, copies or network",
        only=("deployer.errors", "deployer.host.contract"),
        never=IO_MODULES,
    ),
    Rule(
        "audit-opens-no-connection",
        "deployer/audit.py",
        "the log writer does not depend on the pipeline or open connections",
        never=("deployer.pipeline.*", "deployer.remote.*", "paramiko.*"),
    ),
    Rule(
        "criteria-are-pure",
        "deployer/criteria.py",
        "the measured outcomes are computed from records handed in: no files, processes or network",
        only=("deployer.host.events",),
        never=("os.*", "io.*", "pathlib.*", *IO_MODULES),
    ),
    Rule(
        "pipeline-below-check-and-cli",
        "deployer/pipeline.py",
        "the pipeline sits below the check command and the CLI: it imports neither",
        never=("deployer.check.*", "deployer.cli.*"),
    ),
]


def matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[: -len(".*")]
        return module == base or module.startswith(base + ".")
    return module == pattern


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in SOURCES}


def imports(path: Path):
    """(line, statement, absolute module) for every import in ``path``, at any depth.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is one of
    deployer's modules, else as importing ``pkg``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, ast.unparse(node), alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            seen = set()
            for alias in node.names:
                target = f"{base}.{alias.name}"
                target = target if target in MODULES else base
                if target not in seen:
                    seen.add(target)
                    yield node.lineno, ast.unparse(node), target


def breaks(rule: Rule, module: str) -> str | None:
    for pattern in rule.never:
        if matches(module, pattern):
            return f"forbids {pattern}"
    in_deployer = module == "deployer" or module.startswith("deployer.")
    if rule.only and in_deployer and not any(matches(module, p) for p in rule.only):
        return f"allows only {', '.join(rule.only)}"
    return None


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_import_rule(rule):
    files = [p for p in SOURCES if fnmatch.fnmatchcase(p.relative_to(ROOT).as_posix(), rule.files)]
    assert files, f"rule {rule.name!r}: no file matches {rule.files} (renamed?)"
    violations = [
        f"{path.relative_to(ROOT)}:{line}: `{statement}` imports {module}: "
        f"rule {rule.name!r} ({rule.files}) {why}"
        for path in files
        for line, statement, module in sorted(imports(path))
        if (why := breaks(rule, module))
    ]
    if violations:
        pytest.fail(f"{rule.why}:\n" + "\n".join(violations), pytrace=False)
