"""The fault suite's tools: private Redis and PostgreSQL, the steady load, reconciliation.

Kept apart from the tests so that each fault reads as: inject, wait for recovery, count.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import psutil
import redis

from mlops_common.events.serving import DEFAULT_FEEDBACK_STREAM, DEFAULT_PREDICTION_STREAM
from mlops_testing.redis_server import free_port

DRIVERS = [1001, 1002, 1003, 1004, 1005]


class PrivatePostgres:
    """A PostgreSQL cluster of the suite's own (initdb in a temp folder, trust, a free port).

    As root, the cluster belongs to the `postgres` user (initdb refuses root) and lives in a
    folder of its own under the system's temp folder (pytest's is private to root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        self.bin = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="mlops-faults-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.user, *args], check=True, capture_output=True, cwd=self.root)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str) -> None:
        log = str(self.root / "postgres.log")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", *args)

    def start(self) -> None:
        if not self.data.exists():
            initdb = str(self.bin / "initdb")
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust")
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._ctl("-o", opts, "start")

    def restart(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._ctl("-m", "fast", "-o", opts, "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Answer:
    sent: float  # monotonic
    seconds: float
    status: int  # 0: no answer (connection error or timeout)
    request_id: str


@dataclass
class Load:
    """A steady prediction load (`rate` a second, each with its feedback) on loopback."""

    url: str
    key: str
    rate: float = 20.0
    answers: list[Answer] = field(default_factory=list)
    feedback_ok: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=5.0, headers={"X-API-Key": self.key})
        self._pool = ThreadPoolExecutor(max_workers=32)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def _run(self) -> None:
        step, tick = 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            tick += step
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def _one(self) -> None:
        rid = f"faults-{uuid.uuid4().hex}"
        sent = time.monotonic()
        try:
            reply = self._client.post(
                f"{self.url}/v1/predict", json={"request_id": rid, "driver_ids": DRIVERS}
            )
            status = reply.status_code
        except httpx.HTTPError:
            status = 0
        self.answers.append(Answer(sent, time.monotonic() - sent, status, rid))
        if status == 200:
            self._feedback(rid, int(reply.json()["best_driver_id"]))

    def _feedback(self, rid: str, driver: int) -> None:
        body = {"request_id": rid, "driver_id": driver, "trip_completed": True}
        try:
            if self._client.post(f"{self.url}/v1/feedback", json=body).status_code < 300:
                self.feedback_ok.add(rid)
        except httpx.HTTPError:
            pass

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in list(self.answers) if start <= a.sent <= end]


def stream_ids(client: redis.Redis, stream: str) -> dict[str, int]:
    """request id -> how many entries of `stream` carry it (the suite's own ids only)."""
    counts: dict[str, int] = {}
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
    for _, fields in entries:
        rid = json.loads(fields[b"data"]).get("request_id", "")
        if rid.startswith("faults-"):
            counts[rid] = counts.get(rid, 0) + 1
    return counts


def reconcile(client: redis.Redis, load: Load) -> tuple[int, int]:
    """(lost, doubled): answered predictions and accepted feedback without exactly one event."""
    ok = {a.request_id for a in list(load.answers) if a.status == 200}
    lost = doubled = 0
    for stream, expected in (
        (DEFAULT_PREDICTION_STREAM, ok),
        (DEFAULT_FEEDBACK_STREAM, set(load.feedback_ok)),
    ):
        counts = stream_ids(client, stream)
        lost += sum(1 for rid in expected if rid not in counts)
        doubled += sum(n - 1 for n in counts.values() if n > 1)
    return lost, doubled


def orphans(instance: str, supervisord: int | None) -> list[int]:
    """Processes of the instance (MLOPS_INSTANCE tag) that no supervisord is the ancestor of."""
    supervised = set()
    if supervisord:
        root = psutil.Process(supervisord)
        supervised = {root.pid, *(p.pid for p in root.children(recursive=True))}
    found = []
    for process in psutil.process_iter():
        try:
            tagged = process.environ().get("MLOPS_INSTANCE") == instance
        except psutil.Error:
            continue
        if tagged and process.pid not in supervised and process.pid != os.getpid():
            found.append(process.pid)
    return found


@dataclass
class Row:
    fault: str
    failed: int
    recovery_s: float
    lost: int
    doubled: int
    orphans: int
    misses: list[str] = field(default_factory=list)


ROWS: list[Row] = []
HEADER = ("fault", "failed requests", "recovery s", "lost", "doubled", "orphans", "target")


def render_table(rows: list[Row]) -> str:
    lines = [HEADER]
    for r in rows:
        verdict = "missed: " + "; ".join(r.misses) if r.misses else "met"
        lines.append(
            (
                r.fault,
                str(r.failed),
                f"{r.recovery_s:.1f}",
                str(r.lost),
                str(r.doubled),
                str(r.orphans),
                verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)
