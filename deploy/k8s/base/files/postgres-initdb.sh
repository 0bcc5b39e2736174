#!/bin/sh
# Runs once, on the first start of the docker runtime's PostgreSQL (empty data volume), from
# /docker-entrypoint-initdb.d: one database per platform component, named like the local
# runtime's (<MLOPS_DATABASE_PREFIX>_airflow, _mlflow, _data; prefix "mlops" by default).
# Databases that already exist are left alone, so the script is safe to run again by hand.
set -eu

prefix="${MLOPS_DATABASE_PREFIX:-mlops}"
case "$prefix" in
    "" | *[!a-z0-9_]*)
        echo "MLOPS_DATABASE_PREFIX must match [a-z0-9_]+, got '$prefix'" >&2
        exit 1
        ;;
esac

for component in airflow mlflow data; do
    database="${prefix}_${component}"
    exists="$(psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
        --dbname "${POSTGRES_DB:-postgres}" --no-align --tuples-only \
        --command "SELECT 1 FROM pg_database WHERE datname = '${database}'")"
    if [ "$exists" = "1" ]; then
        echo "database ${database} exists"
    else
        psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
            --dbname "${POSTGRES_DB:-postgres}" --command "CREATE DATABASE \"${database}\""
        echo "created database ${database}"
    fi
done
