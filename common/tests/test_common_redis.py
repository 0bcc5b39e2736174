"""Redis helpers: redacted URLs, fail-fast clients."""

from __future__ import annotations

import pytest
import redis

from mlops_common.redis import connect, redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@db:6379/1", "redis://:***@db:6379/1"),
        ("rediss://user:s3cret@db/2?ssl_cert_reqs=none", "rediss://user:***@db/2?ssl_cert_reqs=…"),
        ("db:6379,password=s3cret", "db:6379"),
    ],
)
def test_redact_hides_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


def test_connect_fails_fast_on_a_closed_port() -> None:
    client = connect("redis://127.0.0.1:9/0")
    with pytest.raises(redis.ConnectionError):
        client.ping()
