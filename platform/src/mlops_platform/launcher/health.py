"""Health probes for the platform's services and a waiter that shows progress."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


Probe = Callable[[], Health]


def http_probe(url: str, *, expect_text: str | None = None, timeout: float = 3.0) -> Probe:
    """Healthy when GET `url` answers 2xx (and contains `expect_text` when given)."""

    def probe() -> Health:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return Health(False, f"{url} answered HTTP {exc.code}")
        except (OSError, urllib.error.URLError) as exc:
            return Health(False, f"{url} unreachable: {getattr(exc, 'reason', exc)}")
        if expect_text is not None and expect_text not in body:
            return Health(False, f"{url} answered without {expect_text!r}")
        return Health(True, f"{url} ok")

    return probe


def airflow_probe(base_url: str, timeout: float = 3.0) -> Probe:
    """Healthy when every component in Airflow's monitor/health answer is healthy."""
    url = f"{base_url}/api/v2/monitor/health"

    def probe() -> Health:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                payload = json.load(response)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return Health(False, f"{url} unreachable: {getattr(exc, 'reason', exc)}")
        states = {
            name: (part or {}).get("status")
            for name, part in payload.items()
            if isinstance(part, dict) or part is None
        }
        unhealthy = sorted(name for name, state in states.items() if state != "healthy")
        if unhealthy:
            return Health(False, "not healthy: " + ", ".join(f"{n}={states[n]}" for n in unhealthy))
        return Health(True, "all components healthy: " + ", ".join(sorted(states)))

    return probe


def redis_probe(host: str, port: int, timeout: float = 2.0) -> Probe:
    """Healthy when the Redis server answers PING with PONG (raw RESP, no client needed)."""

    def probe() -> Health:
        try:
            with socket.create_connection((host, port), timeout=timeout) as conn:
                conn.sendall(b"PING\r\n")
                answer = conn.recv(64)
        except OSError as exc:
            return Health(False, f"redis {host}:{port} unreachable: {exc}")
        if answer.startswith(b"+PONG"):
            return Health(True, f"redis {host}:{port} PONG")
        return Health(False, f"redis {host}:{port} answered {answer!r}")

    return probe


def wait_healthy(
    name: str, probe: Probe, timeout: float, *, interval: float = 1.0, is_alive: Callable[[], bool]
) -> Health:
    """Poll `probe` until healthy, printing progress; stop early when the process died."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last = Health(False, "not probed yet")
    while time.monotonic() < deadline:
        last = probe()
        if last.healthy:
            _progress("")
            print(f"  {name}: healthy after {time.monotonic() - started:.1f}s", flush=True)
            return last
        if not is_alive():
            _progress("")
            print(f"  {name}: a process exited while starting", flush=True)
            return Health(False, f"process exited ({last.detail})")
        _progress(f"  {name}: waiting {time.monotonic() - started:4.0f}s ({last.detail})")
        time.sleep(interval)
    _progress("")
    print(f"  {name}: not healthy after {timeout:.0f}s", flush=True)
    return Health(False, f"timed out after {timeout:.0f}s: {last.detail}")


_last_line_at = [0.0]


def _progress(line: str) -> None:
    """On a terminal, rewrite one status line; elsewhere print a line every 10 s at most."""
    if sys.stdout.isatty():
        sys.stdout.write("\r\033[K" + line[:150])
        sys.stdout.flush()
    elif line and time.monotonic() - _last_line_at[0] >= 10:
        _last_line_at[0] = time.monotonic()
        print(line, flush=True)
