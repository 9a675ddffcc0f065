"""Membership uses the rule language through its public API only (``segmint.rules``)."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import segmint.membership
import segmint.rules


def _imports(path: Path) -> list[tuple[str, str]]:
    """Every (module, name) a source file imports from the rule language."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("segmint.rules"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("segmint.rules")]
    return found


def test_membership_imports_only_public_rules_names() -> None:
    folder = Path(segmint.membership.__file__).parent
    modules = [folder / f"{m.name}.py" for m in pkgutil.iter_modules([str(folder)])]
    assert len(modules) > 15
    seen = 0
    for path in modules:
        for module, name in _imports(path):
            seen += 1
            where = f"{path.name}: from {module} import {name}"
            assert module == "segmint.rules", f"{where} (import from segmint.rules only)"
            assert not name.startswith("_"), where
            assert name in segmint.rules.__all__, f"{where} (not exported by segmint.rules)"
    assert seen > 10  # the test looks at real imports


def test_time_leaf_sql_lives_in_rules() -> None:
    assert segmint.rules.next_transition_query.__module__ == "segmint.rules.timesql"
    folder = Path(segmint.membership.__file__).parent
    text = (folder / "schedsql.py").read_text()
    assert "SQLCompiler" not in text and "def _offset" not in text
