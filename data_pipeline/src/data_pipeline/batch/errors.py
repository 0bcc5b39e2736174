"""Errors of the batch pipeline's steps, mapped to the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path

from mlops_common.intervals import BadInput

__all__ = ["BadInput", "StepFailed", "ValidationFailed"]


class StepFailed(RuntimeError):
    """The step could not do its work (missing upstream output, unreachable source, …): exit 1."""


class ValidationFailed(StepFailed):
    """The batch was rejected by validation; nothing downstream may run. ``report`` is the
    quarantine report (JSON) naming the rules and rows."""

    def __init__(self, message: str, report: Path) -> None:
        super().__init__(message)
        self.report = report
