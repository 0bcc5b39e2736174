#!/usr/bin/env bash
# The deploy script of the GitLab deploy jobs (docs/cicd.md): a thin wrapper around
# platform/src/mlops_platform/cicd/deploy.py, which needs only the Python standard library, so a deploy
# job needs Python, git, ssh and rsync but not the platform's environment.
#   deploy/deploy.sh deploy <dev|staging|prod> [--dry-run]
#   deploy/deploy.sh smoke  <dev|staging|prod> [--dry-run]
#   deploy/deploy.sh model  <dev|staging|prod> promote <version> --reason TEXT [--dry-run]
#   deploy/deploy.sh model  <dev|staging|prod> rollback --reason TEXT [--dry-run]
#   deploy/deploy.sh plan   [--dotenv FILE]
set -euo pipefail
repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
exec "${PYTHON:-python3}" "$repo/platform/src/mlops_platform/cicd/deploy.py" "$@"
