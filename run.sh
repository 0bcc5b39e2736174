#!/usr/bin/env bash
# The operator's entry point: ./run.sh <service|all> <up|down|restart|status|logs> [options]
# Installs uv and the locked Python environment when missing, then hands over to the launcher
# (platform/src/mlops_platform). `./run.sh --help` lists services and options.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
source platform/scripts/bootstrap.sh
ensure_python_env
exec .venv/bin/mlops "$@"
