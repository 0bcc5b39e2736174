#!/bin/sh
# The official redis image's entrypoint contract: arguments starting with `-` (or a .conf file)
# go to redis-server; `redis-server` without a config file runs with protected mode off, which
# the official image compiles in (bind is unset, so only the container network reaches it).
set -eu
case "${1:-}" in
    -* | *.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
    shift
    case "${1:-}" in
        *.conf) conf="$1"; shift; set -- redis-server "$conf" "$@" ;;
        *) set -- redis-server --protected-mode no "$@" ;;
    esac
fi
exec "$@"
