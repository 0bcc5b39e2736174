"""The bridge's command line, with statsd_exporter's flags (the ones the launcher passes)::

    python -m mlops_platform.observability.statsd --web.listen-address=127.0.0.1:9102 \\
        --statsd.listen-udp=127.0.0.1:9125 --statsd.mapping-config=statsd_mapping.yml

UDP only (``--statsd.listen-tcp`` is accepted empty); every path of the web server serves the
metrics; no reload on SIGHUP. Logs are the platform's JSON lines on stderr. Exit status 1 when
the mapping file is refused or a port cannot be opened, 2 for a bad flag, 0 after SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from mlops_common.logs import configure_logging
from mlops_platform.observability.statsd.exporter import LOG, Bridge
from mlops_platform.observability.statsd.mapping import MappingError, MetricMapper

PROG = "python -m mlops_platform.observability.statsd"


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all IPv4 interfaces), as upstream's flags take them."""
    host, colon, port_text = value.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Receive StatsD over UDP, map it like statsd_exporter, serve /metrics.",
        allow_abbrev=False,
    )
    address: dict[str, Any] = {"type": parse_address, "metavar": "HOST:PORT"}
    parser.add_argument(
        "--web.listen-address", dest="web_address", default=":9102", **address,
        help="where to serve the metrics (default :9102)",
    )  # fmt: skip
    parser.add_argument(
        "--statsd.listen-udp", dest="udp_address", default=":9125", **address,
        help="where to receive StatsD datagrams (default :9125)",
    )  # fmt: skip
    parser.add_argument(
        "--statsd.listen-tcp", dest="tcp_address", default="", metavar="HOST:PORT",
        help="accepted for compatibility; only empty (no TCP listener) is supported",
    )  # fmt: skip
    parser.add_argument(
        "--statsd.mapping-config", dest="mapping_config", type=Path, metavar="PATH",
        help="the mapping file (without one, every metric is exported unmapped)",
    )  # fmt: skip
    parser.add_argument(
        "--log.level", dest="log_level", default="info",
        choices=("debug", "info", "warn", "error"),
    )  # fmt: skip
    return parser


def load_mapper(path: Path | None) -> MetricMapper:
    if path is None:
        return MetricMapper.unmapped()
    mapper = MetricMapper.from_file(path)
    LOG.info("loaded %d mappings from %s", len(mapper.mappings), path)
    for warning in mapper.warnings:
        LOG.warning("%s", warning)
    return mapper


class StatsdServer(socketserver.UDPServer):
    """Hands every datagram to the bridge, in the thread that serves."""

    max_packet_size = 65535  # socketserver's default of 8192 would cut a buffered client's

    def __init__(self, address: tuple[str, int], bridge: Bridge) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.bridge = bridge
        super().__init__(address, socketserver.BaseRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.bridge.handle_packet(request[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tcp_address:
        parser.error("--statsd.listen-tcp: statsd_bridge only listens on UDP; pass it empty")
    configure_logging("WARNING" if args.log_level == "warn" else args.log_level.upper())
    try:
        mapper = load_mapper(args.mapping_config)
    except MappingError as exc:
        LOG.error("%s", exc)
        return 1
    disable_created_metrics()  # type: ignore[no-untyped-call]  # statsd_exporter has none
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    # supervisord stops programs with TERM; handlers go in before the ports open, so a stop
    # that comes as soon as /metrics answers is still a clean one
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(Bridge(mapper, registry), args.web_address, args.udp_address, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(bridge: Bridge, web: tuple[str, int], udp: tuple[str, int], stop: threading.Event) -> int:
    """Serve StatsD on ``udp`` and the metrics on ``web`` until ``stop`` is set; the exit status."""
    try:
        statsd = StatsdServer(udp, bridge)
    except OSError as exc:
        LOG.error("cannot listen for StatsD on UDP %s:%s: %s", *udp, exc)
        return 1
    try:
        httpd, _thread = start_http_server(web[1], addr=web[0], registry=bridge.registry)
    except OSError as exc:
        LOG.error("cannot serve metrics on %s:%s: %s", *web, exc)
        statsd.server_close()
        return 1
    receiver = threading.Thread(target=statsd.serve_forever, args=(0.25,), name="statsd")
    receiver.start()
    LOG.info(
        "StatsD on udp %s:%s; metrics on http://%s:%s/metrics",
        *statsd.server_address[:2],
        web[0],
        httpd.server_port,
    )
    while not stop.wait(0.5):
        pass
    statsd.shutdown()
    receiver.join()
    statsd.server_close()
    httpd.shutdown()
    httpd.server_close()
    LOG.info("stopped")
    return 0
