"""The fuzz suites' common parts (tests marked ``fuzz``): the schemathesis profile, the count of
generated cases per operation, and hostile request bodies.

Profiles (``MLOPS_TEST_FUZZ_PROFILE``): ``fast`` (default, part of ``make test``) generates up
to 50 examples per operation and phase; ``full`` (``make fuzz``) up to 500. Every schemathesis
check is on (its default). ``MLOPS_TEST_FUZZ_REPORT_DIR``, when set, receives
``<suite>.json``: the cases sent per operation and the seconds spent.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import schemathesis

PROFILES = {"fast": 50, "full": 500}
PROFILE = os.environ.get("MLOPS_TEST_FUZZ_PROFILE", "fast")
MAX_EXAMPLES = PROFILES[PROFILE]
#: read at import, like the profile (the suites' fixtures scrub the environment)
REPORT_DIR = os.environ.get("MLOPS_TEST_FUZZ_REPORT_DIR")
#: a refusal must come back within this many seconds (no hang, no quadratic work)
TIME_BOUND_S = 5.0
SEED = 20240501


def load_schema(app: Any) -> Any:
    """The app's ``/openapi.json`` as a schemathesis schema, in-process, with the profile's
    example count, a fixed seed and no example database."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none")
    schema.config.seed = SEED
    return schema


class CaseCount:
    """Cases sent per operation label; ``write`` reports them."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()

    def add(self, label: str) -> None:
        self.counts[label] += 1

    def write(self) -> None:
        if not REPORT_DIR:
            return
        path = Path(REPORT_DIR) / f"{self.suite}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "profile": PROFILE,
            "max_examples": MAX_EXAMPLES,
            "seconds": round(time.monotonic() - self.started, 1),
            "cases": dict(sorted(self.counts.items())),
            "total": sum(self.counts.values()),
        }
        path.write_text(json.dumps(report, indent=2) + "\n")


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


#: bodies every JSON route must refuse with a 4xx (the id, the bytes)
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("deep-array-10k", b"[" * 10_000 + b"]" * 10_000),
    ("deep-object-10k", deep(10_000)),
    ("deep-object-40", deep(40)),
    ("invalid-utf8", b'{"request_id": "\xff\xfe\xfd", "x": "\xc3\x28"}'),
    ("lone-surrogate", b'{"request_id": "\\ud800"}'),
    ("not-json", b"{oops"),
    ("empty", b""),
    ("null", b"null"),
    ("number", b"12345678901234567890123456789012345678901234567890"),
    ("string", b'"text"'),
    ("array", b"[1, 2, 3]"),
]
TEN_MB = 10 * 1024 * 1024


def assert_refused(status: int, elapsed: float, allowed: range = range(400, 500)) -> None:
    assert status in allowed, f"answered {status}, expected {allowed.start}..{allowed.stop - 1}"
    assert elapsed < TIME_BOUND_S, f"took {elapsed:.2f} s (bound {TIME_BOUND_S} s)"


def timed(send: Callable[[], Any]) -> tuple[Any, float]:
    """The answer of ``send()`` and the seconds it took."""
    began = time.perf_counter()
    answer = send()
    return answer, time.perf_counter() - began


def refuses_ten_megabytes(client: Any, route: str, headers: dict[str, str]) -> None:
    """10 MB posted with its Content-Length, then streamed without one: 413 both times."""
    big = b"[" + b"1," * (TEN_MB // 2) + b"1]"
    answer, elapsed = timed(lambda: client.post(route, content=big, headers=headers))
    assert_refused(answer.status_code, elapsed, range(413, 414))

    def chunks() -> Iterator[bytes]:
        for _ in range(TEN_MB // 65536):
            yield b" " * 65536

    answer, elapsed = timed(lambda: client.post(route, content=chunks(), headers=headers))
    assert_refused(answer.status_code, elapsed, range(413, 414))
