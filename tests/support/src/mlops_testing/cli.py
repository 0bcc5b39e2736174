"""Test support for the component command lines: exit codes and their one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def exit_code(main: Callable[[Sequence[str]], int], args: Sequence[str]) -> int:
    """The exit code of ``main(args)``: what it returns, or the code of the ``SystemExit`` it
    raises (argparse and usage errors)."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command wrote to stderr, checked to be a single line."""
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def usage_error(
    main: Callable[[Sequence[str]], int], args: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """What ``main(args)`` wrote to stderr, checked to have exited 2 (bad input)."""
    assert exit_code(main, args) == 2
    return capsys.readouterr().err


def run_console_script(
    name: str, args: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the installed entry point ``name`` (next to this interpreter) with only ``env`` and
    its own folder on PATH."""
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    assert exe is not None, f"run `uv sync` so that the {name} entry point exists"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(exe).parent), **env},
        check=False,
        timeout=120,
    )
