"""Shared fixtures of the data pipeline's tests."""

from __future__ import annotations

import pytest

from mlops_testing.data import scrub_mlops_environment


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    scrub_mlops_environment(monkeypatch)
