"""Every function of the monitoring_service package fits on a screen (at most ``LIMIT`` lines,
from its ``def`` to its last line), so each one can be read and reviewed whole."""

from __future__ import annotations

import ast
from pathlib import Path

import monitoring_service

LIMIT = 60
PACKAGE = Path(monitoring_service.__file__).parent


def long_functions(root: Path, limit: int) -> list[str]:
    """``file:line name (lines)`` of every function or method longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines})")
    return found


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def too_long() -> None:\n{body}\n", encoding="utf-8")
    (tmp_path / "short.py").write_text("def short() -> int:\n    return 1\n", encoding="utf-8")
    assert long_functions(tmp_path, LIMIT) == [f"long.py:1 too_long ({LIMIT + 1})"]


def test_no_function_of_the_package_is_longer_than_the_limit() -> None:
    assert long_functions(PACKAGE, LIMIT) == []
