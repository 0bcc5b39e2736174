#!/bin/bash
# The official postgres image's entrypoint contract, for Debian's PostgreSQL: on the first start
# (no PG_VERSION in PGDATA) initdb with POSTGRES_USER and POSTGRES_PASSWORD, create POSTGRES_DB,
# run /docker-entrypoint-initdb.d/* against a server that listens on the socket only, stop it;
# then run the server (or the given command).
set -Eeuo pipefail

if [ "${1:0:1}" = "-" ]; then
    set -- postgres "$@"
fi

init_cluster() {
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != "trust" ]; then
        echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    local pwfile
    pwfile="$(mktemp)"
    printf '%s' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
}

run_init_scripts() {
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"
    local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password)
    if [ "$POSTGRES_DB" != "postgres" ]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    echo "$0: running $f"
                    "$f"
                else
                    echo "$0: sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) echo "$0: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
}

if [ "$1" = "postgres" ]; then
    export POSTGRES_USER="${POSTGRES_USER:-postgres}"
    export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        init_cluster
        run_init_scripts
        echo "PostgreSQL init process complete; ready for start up."
    fi
fi

exec "$@"
