"""Test support for the component command lines: exit codes and their one-line errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
