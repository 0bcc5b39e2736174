#!/bin/sh
# statsd_exporter's command line for the platform's StatsD bridge: every flag is passed through
# except --statsd.listen-tcp, which the bridge does not implement (UDP only).
set -eu
for arg in "$@"; do
    shift
    case "$arg" in
        --statsd.listen-tcp=*)
            echo "statsd-exporter stand-in: ignoring $arg (the StatsD bridge listens on UDP only)" >&2
            ;;
        *) set -- "$@" "$arg" ;;
    esac
done
exec python3 -m mlops_platform.observability.statsd_bridge "$@"
