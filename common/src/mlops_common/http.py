"""Bounded request bodies for HTTP handlers that parse JSON themselves (no framework import).

``read_body`` stops reading at a byte limit (413) and ``parse_json`` refuses what is not JSON,
JSON nested deeper than a limit, and text that is not Unicode (a lone surrogate escape such as
``"\\ud800"``, which no database or log line can encode) with a 400. Both raise
``BodyRejected`` with the status, a stable code and a message naming the problem; the handler
turns it into its own error body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

#: nesting deeper than this is refused (an Alertmanager payload is 4 levels deep)
DEFAULT_MAX_DEPTH = 32


class BodyRejected(Exception):
    """A request body refused before it reached the handler's validation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def too_large(limit: int) -> BodyRejected:
    return BodyRejected(413, "too_large", f"body over {limit} bytes")


async def read_body(chunks: AsyncIterable[bytes], limit: int, declared: str | None) -> bytes:
    """The whole body, refused as soon as its declared length or the bytes read pass ``limit``."""
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def parse_json(body: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The body as JSON: 400 ``invalid_json`` when it is not UTF-8 JSON, is nested deeper than
    ``max_depth`` or holds a string that is not Unicode."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise BodyRejected(400, "invalid_json", f"JSON nested deeper than {max_depth}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BodyRejected(400, "invalid_json", f"body is not JSON: {exc}") from None
    problem = _check(data, max_depth)
    if problem is not None:
        raise BodyRejected(400, "invalid_json", problem)
    return data


def _check(data: Any, max_depth: int) -> str | None:
    """Walk the parsed value without recursion: too deep, or a string that is not Unicode."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            items: list[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            items = value
        else:
            if isinstance(value, str) and not _is_unicode(value):
                return "a JSON string holds a lone surrogate escape (not Unicode text)"
            continue
        if depth > max_depth:
            return f"JSON nested deeper than {max_depth}"
        stack.extend((item, depth + 1) for item in items)
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
