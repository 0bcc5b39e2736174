"""``monitoring-service``: the monitoring component's command line.

    monitoring-service serve [--host H] [--port P]   the service (uvicorn, one worker): consumer,
                                                     evaluator, reference watcher, HTTP API
    monitoring-service check                         print the effective settings (no secrets),
                                                     try Redis; exit 1 when serve could not start
    monitoring-service windows [--limit N] [--json]  recent windows from the state database
    monitoring-service report WINDOW [--kind K] [--output FILE]
                                                     a window's Evidently HTML report
    monitoring-service experiment NAME [--json]      an experiment's A/B readout: per arm
                                                     requests, outcomes, completion rate and
                                                     Wilson interval, always-valid p-value,
                                                     SRM check, verdict

Exit codes: 0 ok, 1 a problem the message names, 2 usage.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_common import cli as shared
from monitoring_service.settings import MonitoringSettings

if TYPE_CHECKING:
    from monitoring_service.store import Store

PROG = "monitoring-service"


def _settings(**overrides: object) -> MonitoringSettings:
    return shared.load_settings(PROG, MonitoringSettings.load, **overrides)


def serve(args: argparse.Namespace) -> int:
    settings = _settings(mlops_bind_host=args.host, monitoring_port=args.port)
    # Evidently and pandas: one BLAS/OpenMP thread (the service shares a small machine)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    return shared.serve_app(
        PROG,
        "monitoring_service.app:create_app",
        settings,
        problems=settings.problems(),
        port=settings.monitoring_port,
        log_level=settings.monitoring_log_level,
    )


def check(args: argparse.Namespace) -> int:
    settings = _settings()
    secrets = ("monitoring_webhook_secret", "airflow_admin_password")
    derived = {"events_redis_url": settings.events_redis_url, "db_path": str(settings.db_path)}
    print(shared.settings_json(settings, *secrets, derived=derived))
    problems = settings.problems()
    if not problems:
        import redis

        client = redis.Redis.from_url(
            settings.events_redis_url, socket_timeout=3, socket_connect_timeout=3
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            problems.append(f"the events' Redis does not answer: {exc}")
        finally:
            client.close()
    return shared.report_problems(PROG, problems)


def _store(settings: MonitoringSettings) -> Store:
    from monitoring_service.store import Store

    if not settings.db_path.is_file():
        print(f"{PROG}: no state database at {settings.db_path}", file=sys.stderr)
        raise SystemExit(1)
    return Store(settings.db_path, settings.window_policy)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: object, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-"


def windows(args: argparse.Namespace) -> int:
    store = _store(_settings())
    found = store.windows(args.limit)
    if args.json:
        print(json.dumps([w.summary() for w in found], indent=2, default=str))
        return 0
    print(
        f"{'id':>6} {'version':>8} {'state':<8} {'opened (UTC)':<19} {'preds':>6} "
        f"{'rows':>6} {'drift':>6} {'share':>6} {'roc_auc':>8} {'coverage':>8}"
    )
    for w in found:
        drift = w.drift or {}
        quality = w.quality or {}
        coverage = (quality.get("labels") or {}).get("coverage")
        auc = quality.get("roc_auc")
        share = drift.get("drift_share")
        cells = [
            f"{w.window_id:>6}",
            f"{w.model_version:>8}",
            f"{w.state:<8}",
            f"{_when(w.opened_at):<19}",
            f"{w.predictions:>6}",
            f"{w.rows:>6}",
            f"{drift.get('dataset_drift', '-')!s:>6}",
            f"{_num(share, 2):>6}",
            f"{_num(auc, 4):>8}",
            f"{_num(coverage, 3):>8}",
        ]
        print(" ".join(cells))
    return 0


def report(args: argparse.Namespace) -> int:
    from monitoring_service.reports import ReportFiles

    settings = _settings()
    files = ReportFiles(settings.reports_dir, settings.monitoring_max_reports)
    path = files.path(args.window, args.kind)
    if path is None:
        print(
            f"{PROG}: no {args.kind} report for window {args.window} under "
            f"{settings.reports_dir} (only the newest MONITORING_MAX_REPORTS are kept)",
            file=sys.stderr,
        )
        return 1
    html = gzip.decompress(path.read_bytes())
    if args.output in (None, "-"):
        sys.stdout.buffer.write(html)
    else:
        Path(args.output).write_bytes(html)
        print(f"wrote {args.output} ({len(html)} bytes)")
    return 0


def experiment(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mlops_common.experiment_store import ExperimentStore, StoreUnavailable
    from mlops_common.experiments import ExperimentError
    from monitoring_service.abtest import readout
    from monitoring_service.experiments import arm_counts

    settings = _settings()
    try:
        found = ExperimentStore.from_settings(settings).get(args.name)
    except (ExperimentError, StoreUnavailable) as exc:
        print(f"{PROG} experiment: {exc}", file=sys.stderr)
        return 1
    result = readout(found, arm_counts(_store(settings), found))
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    print(
        f"experiment {result.experiment} ({found.status}, {found.allocation}): {result.verdict}"
        + (f" ({result.arm})" if result.arm else "")
    )
    print(
        f"{'arm':<16} {'requests':>9} {'outcomes':>9} {'rate':>7} {'95% CI':>15} "
        f"{'diff':>7} {'p (always valid)':>17}"
    )
    for arm in result.arms:
        interval = f"[{_num(arm.ci_low, 3)}, {_num(arm.ci_high, 3)}]"
        print(
            f"{arm.arm:<16} {arm.requests:>9} {arm.outcomes:>9} {_num(arm.rate, 3):>7} "
            f"{interval:>15} {_num(arm.difference, 3):>7} {_num(arm.p_value, 4):>17}"
        )
    if result.srm_p_value is not None:
        print(
            f"sample ratio check: p = {result.srm_p_value:.4g}"
            + (" MISMATCH" if result.srm else "")
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shared.add_service_commands(
        sub, what="monitoring service", port_variable="MONITORING_PORT", serve=serve, check=check
    )
    p = sub.add_parser("windows", help="list recent windows from the state database")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=windows)
    p = sub.add_parser("report", help="write a window's Evidently HTML report")
    p.add_argument("window", type=int, help="window id (see `windows`)")
    p.add_argument("--kind", choices=("drift", "quality"), default="drift")
    p.add_argument("--output", default=None, help="file (default: stdout)")
    p.set_defaults(func=report)
    p = sub.add_parser("experiment", help="an experiment's A/B readout and verdict")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="the readout as JSON")
    p.set_defaults(func=experiment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return shared.run_func(build_parser(), argv)
