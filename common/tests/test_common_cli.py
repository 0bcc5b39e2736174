"""``mlops_common.cli``: the HTTP service's shared ``serve`` and ``check`` commands."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mlops_common import cli
from mlops_common.settings import PlatformSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_service_commands(
        sub, what="x API", port_variable="X_PORT", serve=lambda a: 7, check=lambda a: 3
    )
    return parser


def test_serve_and_check_commands() -> None:
    args = _parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "21001"])
    assert (args.host, args.port, args.func(args)) == ("0.0.0.0", 21001, 7)
    args = _parser().parse_args(["serve"])
    assert (args.host, args.port) == (None, None)
    assert cli.run_func(_parser(), ["check"]) == 3


def test_serve_app_refuses_with_problems(capsys: pytest.CaptureFixture[str]) -> None:
    settings = PlatformSettings(_env_file=None)
    code = cli.serve_app(
        "x", "no.such.module:app", settings, problems=["a", "b"], port=1, log_level="INFO"
    )
    assert code == cli.EXIT_FAILED
    assert capsys.readouterr().err.splitlines() == ["x: a", "x: b"]
    assert cli.report_problems("x", []) == cli.EXIT_OK


def test_serve_app_serves_the_factorys_app(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def fake_serve(factory: Any, **where: Any) -> None:
        served.update(where, app=factory())

    monkeypatch.setattr(cli, "serve_http", fake_serve)
    settings = PlatformSettings(_env_file=None, mlops_bind_host="127.0.0.2")
    code = cli.serve_app("x", "copy:copy", settings, problems=[], port=21002, log_level="DEBUG")
    assert code == cli.EXIT_OK
    assert served["host"] == "127.0.0.2" and served["port"] == 21002
    assert served["log_level"] == "DEBUG"
    assert served["app"] == settings  # copy.copy(settings): the factory got the settings
