"""The Python the package claims (``requires-python``) is the Python it needs, and this
interpreter (CI's own, which runs this file) meets the claim."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("host", "tests", "benchmarks") for p in (REPO / folder).rglob("*.py"))

# Standard-library modules and names newer than the oldest Python anyone might claim here,
# with the version that brought them. Using one raises the minimum to that version.
NEWER_MODULES = {"tomllib": (3, 11), "wsgiref.types": (3, 11)}
NEWER_NAMES = {
    ("typing", "Self"): (3, 11), ("typing", "LiteralString"): (3, 11), ("typing", "Never"): (3, 11),
    ("typing", "assert_never"): (3, 11), ("typing", "reveal_type"): (3, 11), ("typing", "Required"): (3, 11),
    ("typing", "NotRequired"): (3, 11), ("typing", "dataclass_transform"): (3, 11), ("typing", "TypeVarTuple"): (3, 11),
    ("typing", "Unpack"): (3, 11), ("enum", "StrEnum"): (3, 11), ("datetime", "UTC"): (3, 11),
    ("asyncio", "TaskGroup"): (3, 11), ("asyncio", "timeout"): (3, 11), ("contextlib", "chdir"): (3, 11),
    ("hashlib", "file_digest"): (3, 11), ("operator", "call"): (3, 11),
    ("typing", "override"): (3, 12), ("itertools", "batched"): (3, 12), ("typing", "TypeAliasType"): (3, 12),
    ("warnings", "deprecated"): (3, 13), ("copy", "replace"): (3, 13),
}  # fmt: skip


def claimed_minimum() -> tuple[int, int]:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r"\s*>=\s*3\.(\d+)\s*", spec)
    assert match, f"requires-python should be a plain minimum, got {spec!r}"
    return (3, int(match.group(1)))


def needed(tree: ast.AST) -> list[tuple[tuple[int, int], str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(NEWER_MODULES[a.name], f"import {a.name}") for a in node.names if a.name in NEWER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                found.append((NEWER_MODULES[node.module], f"from {node.module} import ..."))
            found += [(NEWER_NAMES[(node.module, a.name)], f"from {node.module} import {a.name}") for a in node.names if (node.module, a.name) in NEWER_NAMES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in NEWER_NAMES:
            found.append((NEWER_NAMES[(node.value.id, node.attr)], f"{node.value.id}.{node.attr}"))
    return found


def test_this_interpreter_meets_the_claimed_minimum():
    assert sys.version_info[:2] >= claimed_minimum(), f"Python {sys.version.split()[0]} is older than requires-python"


def test_every_module_parses_with_the_grammar_of_the_claimed_minimum():
    minimum = claimed_minimum()
    for path in SOURCES:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=minimum)


def test_nothing_from_a_newer_standard_library_than_the_claim():
    minimum = claimed_minimum()
    too_new = [f"{p.relative_to(REPO)}: {what} needs Python {v[0]}.{v[1]}" for p in SOURCES for v, what in needed(ast.parse(p.read_text(encoding="utf-8"))) if v > minimum]
    assert not too_new, "\n".join(too_new)


def test_the_readme_states_the_same_minimum():
    major, minor = claimed_minimum()
    assert f"Python {major}.{minor}+" in (REPO / "README.md").read_text(encoding="utf-8")
