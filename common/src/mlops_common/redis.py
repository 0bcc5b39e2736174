"""Redis connections the platform's processes share: fail-fast clients and redacted URLs."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(url: str, *, read_timeout_s: float = 10.0) -> redis.Redis:
    """A client that fails fast (no hidden retries: callers count and back off themselves).

    ``read_timeout_s`` must exceed the longest blocking read the caller makes (XREADGROUP BLOCK).
    """
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=read_timeout_s,
        socket_connect_timeout=3.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    return client


def redact(url: str) -> str:
    """The URL without its password (for logs, health details and status output)."""
    if "://" not in url:
        return url.split(",password=")[0]
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{unquote(parts.username or '')}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{key}=…" for key in parse_qs(parts.query))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
