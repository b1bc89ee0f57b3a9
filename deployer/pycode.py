"""A service's Python code, read for what it says (parsed, never imported or run).

``read_modules`` finds the service's own ``.py`` files (not its tests, venvs or build
output) and parses them; docstrings are told apart so words in prose never count.
``env_reads`` lists the environment variables the code reads, with their defaults.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: an environment variable's name as code spells it
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

#: folders whose code is not the service's
SKIP_DIRS = {
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "node_modules",
    "build",
    "dist",
    "__pycache__",
    "site-packages",
    "tests",
    "test",
    "docs",
    "packaging",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}
MAX_FILES = 2000
MAX_BYTES = 1_000_000


@dataclass
class Module:
    rel: str
    tree: ast.Module | None  # None: it did not parse; ``text`` is searched instead
    text: str
    docstrings: set[int] = field(default_factory=set)

    def constants(self) -> Iterator[str]:
        """Every string constant but docstrings."""
        if self.tree is None:
            return
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in self.docstrings
            ):
                yield node.value


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _py_files(root: Path) -> list[Path]:
    found: list[Path] = []

    def walk(folder: Path) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            if len(found) >= MAX_FILES:
                return
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    walk(entry)
            elif entry.suffix == ".py" and not _is_test(entry.name):
                found.append(entry)

    walk(root)
    return found


def _is_test(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def read_modules(root: Path) -> list[Module]:
    modules = []
    for path in _py_files(root):
        try:
            if path.stat().st_size > MAX_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        rel = path.relative_to(root).as_posix()
        try:
            tree: ast.Module | None = ast.parse(text, filename=rel)
        except (SyntaxError, ValueError):
            tree = None
        modules.append(Module(rel, tree, text, _docstrings(tree) if tree else set()))
    return modules


def dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 (an odd node: it names nothing we look for)
        return ""


def literal(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def calls(module: Module) -> Iterator[ast.Call]:
    if module.tree is not None:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call):
                yield node


def port_number(node: ast.AST | None) -> int | None:
    value = literal(node)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value)
    else:
        return None
    return port if 0 < port < 65536 else None


def env_reads(module: Module) -> Iterator[tuple[str, ast.AST | None]]:
    """(name, default node or None) of every environment variable the code reads.

    ``os.environ.get("X", d)``, ``os.getenv("X", d)``, ``environ["X"]``,
    ``environ.setdefault("X", d)``, and pydantic's ``Field(d, alias="X")``.
    """
    if module.tree is None:
        return
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Subscript) and dotted(node.value).endswith("environ"):
            name = literal(node.slice)
            if isinstance(name, str) and ENV_NAME.match(name):
                yield name, None
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        attr = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        default = next((k.value for k in node.keywords if k.arg == "default"), None)
        if attr in ("get", "getenv", "setdefault", "pop") and node.args:
            name = literal(node.args[0])
            if isinstance(name, str) and ENV_NAME.match(name):
                yield name, node.args[1] if len(node.args) > 1 else default
        elif attr.endswith("Field"):
            for k in node.keywords:
                name = literal(k.value)
                if (
                    k.arg in ("alias", "validation_alias", "env")
                    and isinstance(name, str)
                    and ENV_NAME.match(name)
                ):
                    yield name, node.args[0] if node.args else default
