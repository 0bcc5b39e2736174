"""Bounded request bodies: the byte limit while reading, and the JSON parse that refuses deep
nesting, non-UTF-8 bytes and lone surrogate escapes with a 400 instead of an exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mlops_common.http import BodyRejected, parse_json, read_body


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _read(limit: int, declared: str | None, *parts: bytes) -> bytes:
    return asyncio.run(read_body(_chunks(*parts), limit, declared))


def test_read_body_joins_the_chunks_under_the_limit() -> None:
    assert _read(10, "6", b"abc", b"def") == b"abcdef"


@pytest.mark.parametrize(
    ("declared", "parts"),
    [("11", (b"",)), (None, (b"123456", b"78901")), ("3", (b"123456", b"78901"))],
    ids=["declared", "streamed", "lying-length"],
)
def test_read_body_refuses_over_the_limit(declared: str | None, parts: tuple[bytes, ...]) -> None:
    with pytest.raises(BodyRejected) as refused:
        _read(10, declared, *parts)
    assert refused.value.status == 413 and refused.value.code == "too_large"


def test_parse_json_accepts_json_within_the_depth() -> None:
    assert parse_json(b'{"a": [1, {"b": "\\u00e9"}]}', max_depth=3) == {"a": [1, {"b": "é"}]}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32"),
        (b"[" * 33 + b"]" * 33, "nested deeper than 32"),
        (b'{"a": "\xff\xfe"}', "not JSON"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"{oops", "not JSON"),
    ],
    ids=["deep-10k", "deep-33", "invalid-utf8", "surrogate-value", "surrogate-key", "broken"],
)
def test_parse_json_refuses_with_a_400(body: bytes, why: str) -> None:
    with pytest.raises(BodyRejected) as refused:
        parse_json(body)
    assert refused.value.status == 400 and refused.value.code == "invalid_json"
    assert why in refused.value.message
