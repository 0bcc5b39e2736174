"""``model-serving``: the serving component's command line.

    model-serving serve [--host H] [--port P]     the prediction API (uvicorn, one worker)
    model-serving check                           print the effective settings (no secrets: the
                                                  key masked, passwords in URLs redacted) and
                                                  exit 1 when the service could not start
    model-serving keys create NAME --scopes S     a per-client API key (printed once)
    model-serving keys list                       names, scopes, created, end of the key id
    model-serving keys revoke NAME                delete a key (serving stops accepting it
                                                  within SERVING_API_KEYS_REFRESH_S)
    model-serving experiments create FILE|-        an experiment from JSON (arms checked against
                                                  the registry; model_name defaults to
                                                  SERVING_MODEL_NAME)
    model-serving experiments start|stop NAME     start (at most one per model) or stop it
    model-serving experiments list                every experiment, its status and allocation
    model-serving batch-predict [--drivers F] [--interval-start T] [--interval-end T]
                                [--output DIR]    score drivers with the champion for one interval
                                                  (the batch DAG's step)

Exit codes: 0 ok, 1 a problem the message names (bad settings, no model, ...), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_common import cli as shared
from mlops_common.redis import redact
from model_serving.settings import ServingSettings

if TYPE_CHECKING:
    from model_serving.keys import KeyStore

PROG = "model-serving"


def _settings(**overrides: object) -> ServingSettings:
    return shared.load_settings(PROG, ServingSettings.load, **overrides)


def _problems(settings: ServingSettings) -> list[str]:
    problem = settings.auth_problem()
    return [problem] if problem else []


def serve(args: argparse.Namespace) -> int:
    settings = _settings(mlops_bind_host=args.host, serving_port=args.port)
    # one OpenMP/BLAS thread per process unless told otherwise (see STACK-FACTS: oversubscription)
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.serving_model_threads))
    return shared.serve_app(
        PROG,
        "model_serving.app:create_app",
        settings,
        problems=_problems(settings),
        port=settings.serving_port,
        log_level=settings.serving_log_level,
    )


def check(args: argparse.Namespace) -> int:
    settings = _settings()
    print(shared.settings_json(settings, "serving_api_key", redact=redact))
    return shared.report_problems(PROG, _problems(settings))


def batch_predict(args: argparse.Namespace) -> int:
    from model_serving.batch import BatchError, run_batch

    settings = _settings()
    try:
        result = run_batch(
            settings,
            drivers_file=args.drivers,
            interval_start=args.interval_start,
            interval_end=args.interval_end,
            output_dir=args.output,
        )
    except BatchError as exc:
        print(f"model-serving batch-predict: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def keys(args: argparse.Namespace) -> int:
    import redis

    from model_serving.keys import KeyProblem, KeyStore

    settings = _settings()
    store = KeyStore.from_settings(settings, own_server=True)
    if store is None:  # pragma: no cover - own_server always names a Redis
        print("model-serving keys: no Redis for the key store", file=sys.stderr)
        return 1
    try:
        if args.action == "create":
            key = store.create(args.name, args.scopes)
            print(f"API key {args.name!r} (shown once; keep it secret):", file=sys.stderr)
            print(key)
        elif args.action == "revoke":
            if not store.revoke(args.name):
                raise KeyProblem(f"no key named {args.name!r}")
            print(f"revoked {args.name!r}", file=sys.stderr)
        else:
            list_keys(store, settings)
    except KeyProblem as exc:
        print(f"model-serving keys {args.action}: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        url = redact(settings.api_keys_redis_url or settings.own_redis_url)
        print(f"model-serving keys: cannot reach the key store at {url}: {exc}", file=sys.stderr)
        return 1
    return 0


def list_keys(store: KeyStore, settings: ServingSettings) -> None:
    """Name, scopes, creation time and the end of the key's id; never a key."""
    from model_serving.keys import BOOTSTRAP, SCOPES

    print(f"{'name':<24} {'scopes':<24} {'created':<25} id")
    if settings.serving_api_key.get_secret_value():
        print(f"{BOOTSTRAP:<24} {','.join(SCOPES):<24} {'(SERVING_API_KEY)':<25} -")
    for key in store.list():
        created = key.created.isoformat(timespec="seconds")
        print(f"{key.name:<24} {','.join(key.scopes):<24} {created:<25} …{key.key_id[-4:]}")


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create, list and revoke per-client API keys")
    actions = p.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("name", help="the client's name (the metrics' client label)")
    create.add_argument(
        "--scopes",
        default="predict,feedback",
        help="comma-separated: predict, feedback, admin (default predict,feedback)",
    )
    actions.add_parser("list", help="the keys: name, scopes, created, end of the id (never a key)")
    revoke = actions.add_parser("revoke", help="delete a key")
    revoke.add_argument("name")
    p.set_defaults(func=keys)


def experiments(args: argparse.Namespace) -> int:
    """The experiment store of the settings (as the serving API uses it)."""
    from pydantic import ValidationError

    from mlops_common.experiment_store import ExperimentStore, StoreUnavailable
    from mlops_common.experiments import ExperimentError, ExperimentSpec
    from mlops_common.registry import RegistryUnavailable, make_client
    from model_serving.experiments import check_arms

    settings = _settings()
    prefix = f"model-serving experiments {args.action}"
    try:
        store = ExperimentStore.from_settings(settings)
        if args.action == "create":
            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
            spec = ExperimentSpec.model_validate(
                {"model_name": settings.serving_model_name, **json.loads(raw)}
            )
            check_arms(make_client(settings.tracking_uri), spec)
            found = [store.create(spec)]
        elif args.action == "list":
            found = store.list()
        else:
            found = [store.start(args.name) if args.action == "start" else store.stop(args.name)]
    except ValidationError as exc:
        print(f"{prefix}: invalid experiment: {exc}", file=sys.stderr)
        return 1
    except (ExperimentError, RegistryUnavailable, StoreUnavailable, OSError, ValueError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 1
    print(f"{'name':<24} {'model':<20} {'status':<8} {'allocation':<9} weights")
    for e in found:
        weights = ",".join(f"{arm}={w:.3f}" for arm, w in e.weights.items())
        print(f"{e.name:<24} {e.model_name:<20} {e.status:<8} {e.allocation:<9} {weights}")
    return 0


def add_experiments_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("experiments", help="create, start, stop and list experiments (A/B, bandit)")
    actions = p.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an experiment from a JSON file")
    create.add_argument("file", help="the experiment as JSON (- reads standard input)")
    for action in ("start", "stop"):
        actions.add_parser(action, help=f"{action} an experiment").add_argument("name")
    actions.add_parser("list", help="every experiment: status, allocation")
    p.set_defaults(func=experiments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-serving", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shared.add_service_commands(
        sub, what="prediction API", port_variable="SERVING_PORT", serve=serve, check=check
    )
    add_keys_parser(sub)
    add_experiments_parser(sub)
    p = sub.add_parser("batch-predict", help="score drivers with the champion, write a table")
    p.add_argument(
        "--drivers",
        default=None,
        help="a file of driver ids (CSV with a driver_id column, or one id a line); "
        "default: every driver in the online store",
    )
    p.add_argument(
        "--interval-start",
        default=None,
        help="ISO time; default: one hour before the interval's end",
    )
    p.add_argument(
        "--interval-end",
        default=None,
        help="ISO time: features as of then, and the key of the output file "
        "(one file per interval, replaced by a re-run); default: the current hour",
    )
    p.add_argument(
        "--output",
        default=None,
        help="folder of the result table (default <MLOPS_DATA_DIR>/offline/driver_predictions)",
    )
    p.set_defaults(func=batch_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return shared.run_func(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
