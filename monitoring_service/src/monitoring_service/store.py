"""Durable window state: one SQLite file (``<MLOPS_DATA_DIR>/monitoring/monitoring.db``).

Everything the service knows lives here, so a restart loses nothing: the stream entries applied
(de-duplication), the predictions with their scored candidates, the labels, the windows and
their results, the persistent counters and the retraining decisions.

Exactly-once effect over an at-least-once stream: ``apply`` writes a batch in **one
transaction** (WAL journal, ``synchronous=FULL``: committed means on disk), and the consumer
acknowledges the entries only after the commit. Every entry id is recorded in ``entries`` in the
same transaction as its effect, so an entry delivered again (a crash between the commit and the
acknowledgement) is recognised and ignored. Window assignment happens inside the same
transaction, so a window's contents and counts never disagree with what was acknowledged.

One connection per thread (the consumer writes events, the evaluator writes results, HTTP
handlers read); SQLite serialises the writers (``BEGIN IMMEDIATE`` with a busy timeout).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_common.events.serving import FeedbackEvent, PredictionEvent
from monitoring_service.windows import CloseReason, State, Window, WindowPolicy

SCHEMA_VERSION = "1"
SEP = "\t"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    stream TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (stream, entry_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_ms ON entries (ms);
CREATE TABLE IF NOT EXISTS windows (
    window_id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at REAL NOT NULL,
    first_time REAL NOT NULL,
    last_time REAL NOT NULL,
    predictions INTEGER NOT NULL DEFAULT 0,
    rows INTEGER NOT NULL DEFAULT 0,
    closed_at REAL,
    close_reason TEXT,
    label_deadline REAL,
    drift TEXT,
    quality TEXT,
    notes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS windows_open ON windows (state, model_name, model_version);
CREATE TABLE IF NOT EXISTS predictions (
    entry_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    time REAL NOT NULL,
    window_id INTEGER NOT NULL,
    alias TEXT NOT NULL,
    best_driver_id INTEGER NOT NULL,
    candidates INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_request ON predictions (request_id);
CREATE INDEX IF NOT EXISTS predictions_window ON predictions (window_id);
CREATE INDEX IF NOT EXISTS predictions_time ON predictions (time);
CREATE TABLE IF NOT EXISTS candidates (
    entry_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    driver_id INTEGER NOT NULL,
    score REAL NOT NULL,
    features TEXT NOT NULL,
    PRIMARY KEY (entry_id, rank)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feedback (
    entry_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    driver_id INTEGER NOT NULL,
    trip_completed INTEGER NOT NULL,
    time REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id, driver_id, time);
CREATE INDEX IF NOT EXISTS feedback_time ON feedback (time);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS experiment_arms (
    experiment TEXT NOT NULL,
    arm TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    outcomes INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment, arm)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    alertnames TEXT NOT NULL,
    dag_run_id TEXT
);
"""

WINDOW_COLUMNS = (
    "window_id, model_name, model_version, state, opened_at, first_time, last_time, "
    "predictions, rows, closed_at, close_reason, label_deadline, drift, quality, notes"
)


def epoch(value: datetime) -> float:
    return value.timestamp()


def stream_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


@dataclass(frozen=True)
class Parsed:
    """One stream entry, decoded (``event``) or refused (``dead_reason``)."""

    stream: str  # "prediction" or "feedback": the stream it was read from
    entry_id: str
    event: PredictionEvent | FeedbackEvent | None
    dead_reason: str | None = None
    original: dict[str, str] = field(default_factory=dict)
    #: the stream's name (entry ids are unique per stream); defaults to ``stream``
    source: str = ""


@dataclass
class ApplyResult:
    applied: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    closed: list[Window] = field(default_factory=list)
    #: (model_version, feedback time - prediction time) of every label joined in this batch
    delays: list[tuple[str, float]] = field(default_factory=list)
    late: Counter[str] = field(default_factory=Counter)
    newest_event: float | None = None


def _row_to_window(row: sqlite3.Row | tuple[Any, ...]) -> Window:
    (
        wid,
        name,
        version,
        state,
        opened,
        first,
        last,
        preds,
        rows,
        closed,
        reason,
        deadline,
        drift,
        quality,
        notes,
    ) = tuple(row)
    return Window(
        window_id=int(wid),
        model_name=str(name),
        model_version=str(version),
        state=state,
        opened_at=float(opened),
        first_time=float(first),
        last_time=float(last),
        predictions=int(preds),
        rows=int(rows),
        closed_at=None if closed is None else float(closed),
        close_reason=reason,
        label_deadline=None if deadline is None else float(deadline),
        drift=None if drift is None else json.loads(drift),
        quality=None if quality is None else json.loads(quality),
        notes=json.loads(notes or "{}"),
    )


class Store:
    def __init__(self, path: Path, policy: WindowPolicy) -> None:
        self.path = path
        self.policy = policy
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        conn = self.connection()
        conn.executescript(SCHEMA)
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        elif found[0] != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has state schema {found[0]}, this service writes {SCHEMA_VERSION}"
            )

    # --- connections -------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # each thread uses only its own connection; close() may run in another thread
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._all.append((threading.current_thread(), conn))
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connections of this thread and of threads that have ended (a worker still
        running keeps its own: a transaction it has open is rolled back if the process exits)."""
        me = threading.current_thread()
        with self._lock:
            keep = []
            for thread, conn in self._all:
                if thread is me or not thread.is_alive():
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                else:
                    keep.append((thread, conn))
            self._all = keep
        self._local = threading.local()

    # --- counters ------------------------------------------------------------------------------
    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, label: str, by: int = 1) -> None:
        if by:
            db.execute(
                "INSERT INTO counters (name, label, value) VALUES (?, ?, ?) "
                "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
                (name, label, by),
            )

    def counters(self) -> dict[tuple[str, tuple[str, ...]], int]:
        rows = self.connection().execute("SELECT name, label, value FROM counters").fetchall()
        return {(name, tuple(label.split(SEP)) if label else ()): int(v) for name, label, v in rows}

    def counter(self, name: str, *labels: str) -> int:
        row = (
            self.connection()
            .execute(
                "SELECT value FROM counters WHERE name = ? AND label = ?", (name, SEP.join(labels))
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    # --- applying events ---------------------------------------------------------------------
    def apply(self, items: Sequence[Parsed], now: float | None = None) -> ApplyResult:
        """Apply a batch of stream entries in one transaction (see the module docstring)."""
        result = ApplyResult()
        now = time.time() if now is None else now
        with self.transaction() as db:
            for item in items:
                outcome = "dead" if item.event is None else "applied"
                inserted = db.execute(
                    "INSERT OR IGNORE INTO entries (stream, entry_id, ms, outcome) "
                    "VALUES (?, ?, ?, ?)",
                    (item.source or item.stream, item.entry_id, stream_ms(item.entry_id), outcome),
                ).rowcount
                if not inserted:
                    result.duplicates[item.stream] += 1
                    continue
                if item.event is None:
                    result.dead[item.stream] += 1
                    self._bump(db, "events_malformed", item.stream)
                elif isinstance(item.event, PredictionEvent):
                    self._prediction(db, item.entry_id, item.event, now, result)
                else:
                    self._feedback(db, item.entry_id, item.event, result)
            for kind, count in result.applied.items():
                self._bump(db, "events_consumed", kind, count)
            for stream, count in result.duplicates.items():
                self._bump(db, "events_duplicate", stream, count)
        return result

    def _open_window(self, db: sqlite3.Connection, name: str, version: str) -> Window | None:
        row = db.execute(
            f"SELECT {WINDOW_COLUMNS} FROM windows "
            "WHERE state = 'open' AND model_name = ? AND model_version = ?",
            (name, version),
        ).fetchone()
        return None if row is None else _row_to_window(row)

    def _close(
        self,
        db: sqlite3.Connection,
        window: Window,
        reason: CloseReason,
        now: float,
        result: ApplyResult | None = None,
    ) -> Window:
        deadline = self.policy.label_deadline(window.last_time)
        db.execute(
            "UPDATE windows SET state = 'closed', closed_at = ?, close_reason = ?, "
            "label_deadline = ? WHERE window_id = ?",
            (now, reason, deadline, window.window_id),
        )
        self._bump(db, "windows", SEP.join((window.model_version, reason)))
        closed = self._get(db, window.window_id)
        assert closed is not None
        if result is not None:
            result.closed.append(closed)
        return closed

    def _prediction(
        self,
        db: sqlite3.Connection,
        entry_id: str,
        event: PredictionEvent,
        now: float,
        result: ApplyResult,
    ) -> None:
        name, version = event.model.name, event.model.version
        when = epoch(event.time)
        window = self._open_window(db, name, version)
        if window is not None and self.policy.starts_next(window.opened_at, when):
            self._close(db, window, "time", now, result)
            window = None
        if window is None:
            cursor = db.execute(
                "INSERT INTO windows (model_name, model_version, state, opened_at, first_time, "
                "last_time) VALUES (?, ?, 'open', ?, ?, ?)",
                (name, version, when, when, when),
            )
            window_id = int(cursor.lastrowid or 0)
        else:
            window_id = window.window_id
        db.execute(
            "INSERT INTO predictions (entry_id, request_id, time, window_id, alias, "
            "best_driver_id, candidates) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                event.request_id,
                when,
                window_id,
                event.model.alias,
                event.best_driver_id,
                len(event.candidates),
            ),
        )
        db.executemany(
            "INSERT INTO candidates (entry_id, rank, driver_id, score, features) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (entry_id, rank, c.driver_id, float(c.score), json.dumps(c.features))
                for rank, c in enumerate(event.candidates)
            ],
        )
        db.execute(
            "UPDATE windows SET predictions = predictions + 1, rows = rows + ?, "
            "first_time = MIN(first_time, ?), last_time = MAX(last_time, ?) WHERE window_id = ?",
            (len(event.candidates), when, when, window_id),
        )
        # labels that arrived before their prediction (the two streams are read independently)
        for (label_time,) in db.execute(
            "SELECT time FROM feedback WHERE request_id = ?", (event.request_id,)
        ).fetchall():
            result.delays.append((version, float(label_time) - when))
        self._count_arm(db, event)
        result.applied["prediction"] += 1
        result.newest_event = max(result.newest_event or when, when)
        current = self._get(db, window_id)
        if current is not None and self.policy.full(current.predictions):
            self._close(db, current, "count", now, result)

    def _feedback(
        self, db: sqlite3.Connection, entry_id: str, event: FeedbackEvent, result: ApplyResult
    ) -> None:
        when = epoch(event.time)
        db.execute(
            "INSERT INTO feedback (entry_id, request_id, driver_id, trip_completed, time) "
            "VALUES (?, ?, ?, ?, ?)",
            (entry_id, event.request_id, event.driver_id, int(event.trip_completed), when),
        )
        found = db.execute(
            "SELECT p.time, w.model_version, w.state, w.label_deadline FROM predictions p "
            "JOIN windows w ON w.window_id = p.window_id WHERE p.request_id = ? "
            "ORDER BY p.time DESC LIMIT 1",
            (event.request_id,),
        ).fetchone()
        if found is not None:
            predicted, version, state, deadline = found
            result.delays.append((str(version), when - float(predicted)))
            if state == "final" or (deadline is not None and when > float(deadline)):
                result.late[str(version)] += 1
                self._bump(db, "labels_late", str(version))
        self._count_arm(db, event)
        result.applied["feedback"] += 1

    @staticmethod
    def _count_arm(db: sqlite3.Connection, event: PredictionEvent | FeedbackEvent) -> None:
        """An event of an experiment's arm: a request (prediction) or an outcome (feedback)."""
        tag = event.experiment
        if tag is None:
            return
        if isinstance(event, PredictionEvent):
            requests, outcomes, completions = 1, 0, 0
        else:
            requests, outcomes, completions = 0, 1, int(event.trip_completed)
        db.execute(
            "INSERT INTO experiment_arms (experiment, arm, requests, outcomes, completions) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment, arm) DO UPDATE SET "
            "requests = requests + excluded.requests, outcomes = outcomes + excluded.outcomes, "
            "completions = completions + excluded.completions",
            (tag.experiment, tag.arm, requests, outcomes, completions),
        )

    def experiment_arms(self, experiment: str) -> dict[str, tuple[int, int, int]]:
        """Arm -> (requests, labelled outcomes, completions) of an experiment's events."""
        rows = (
            self.connection()
            .execute(
                "SELECT arm, requests, outcomes, completions FROM experiment_arms "
                "WHERE experiment = ?",
                (experiment,),
            )
            .fetchall()
        )
        return {str(arm): (int(r), int(o), int(c)) for arm, r, o, c in rows}

    def close_expired(self, watermark: float, now: float | None = None) -> list[Window]:
        """Close the open windows whose span ended before the consumer's watermark."""
        now = time.time() if now is None else now
        closed: list[Window] = []
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {WINDOW_COLUMNS} FROM windows WHERE state = 'open' AND opened_at <= ?",
                (watermark - self.policy.seconds,),
            ).fetchall()
            for row in rows:
                window = _row_to_window(row)
                if self.policy.expired(window.opened_at, watermark):
                    closed.append(self._close(db, window, "time", now))
        return closed

    # --- windows -------------------------------------------------------------------------------
    def _get(self, db: sqlite3.Connection, window_id: int) -> Window | None:
        row = db.execute(
            f"SELECT {WINDOW_COLUMNS} FROM windows WHERE window_id = ?", (window_id,)
        ).fetchone()
        return None if row is None else _row_to_window(row)

    def window(self, window_id: int) -> Window | None:
        return self._get(self.connection(), window_id)

    def windows(
        self, limit: int = 50, model_version: str | None = None, states: Sequence[State] = ()
    ) -> list[Window]:
        """Newest first."""
        where, args = [], []
        if model_version is not None:
            where.append("model_version = ?")
            args.append(model_version)
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = (
            self.connection()
            .execute(
                f"SELECT {WINDOW_COLUMNS} FROM windows {clause} ORDER BY window_id DESC LIMIT ?",
                (*args, limit),
            )
            .fetchall()
        )
        return [_row_to_window(r) for r in rows]

    def due(self, watermark: float | None) -> list[tuple[Window, str]]:
        """Windows waiting for an evaluation, oldest first: ``drift`` for closed windows,
        ``quality`` for drifted windows whose label deadline the watermark has passed."""
        rows = (
            self.connection()
            .execute(
                f"SELECT {WINDOW_COLUMNS} FROM windows WHERE state IN ('closed', 'drifted') "
                "ORDER BY window_id"
            )
            .fetchall()
        )
        out: list[tuple[Window, str]] = []
        for row in rows:
            window = _row_to_window(row)
            if window.state == "closed":
                out.append((window, "drift"))
            elif window.label_deadline is not None and self.policy.quality_due(
                window.label_deadline, watermark
            ):
                out.append((window, "quality"))
        return out

    def rows(self, window_id: int, label_deadline: float | None) -> pd.DataFrame:
        """Every scored candidate of the window with its features and, when a label with a
        feedback time up to ``label_deadline`` exists, the newest such label."""
        deadline = 1e18 if label_deadline is None else label_deadline
        query = """
            SELECT p.entry_id, p.request_id, p.time AS prediction_time, c.rank, c.driver_id,
                   c.score, c.features,
                   (SELECT f.trip_completed FROM feedback f
                     WHERE f.request_id = p.request_id AND f.driver_id = c.driver_id
                       AND f.time <= :deadline ORDER BY f.time DESC LIMIT 1) AS label,
                   (SELECT f.time FROM feedback f
                     WHERE f.request_id = p.request_id AND f.driver_id = c.driver_id
                       AND f.time <= :deadline ORDER BY f.time DESC LIMIT 1) AS label_time
            FROM predictions p JOIN candidates c ON c.entry_id = p.entry_id
            WHERE p.window_id = :window
            ORDER BY p.time, p.entry_id, c.rank
        """
        cursor = self.connection().execute(query, {"deadline": deadline, "window": window_id})
        columns = [d[0] for d in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)

    def record(
        self,
        window_id: int,
        state: State,
        *,
        drift: dict[str, Any] | None = None,
        quality: dict[str, Any] | None = None,
        notes: dict[str, Any] | None = None,
    ) -> Window:
        """Store an evaluation's results and move the window to ``state``; a final window's
        candidate rows are deleted (its predictions stay for late-label accounting)."""
        with self.transaction() as db:
            current = self._get(db, window_id)
            if current is None:
                raise KeyError(window_id)
            merged = {**current.notes, **(notes or {})}
            db.execute(
                "UPDATE windows SET state = ?, drift = COALESCE(?, drift), "
                "quality = COALESCE(?, quality), notes = ? WHERE window_id = ?",
                (
                    state,
                    None if drift is None else json.dumps(drift),
                    None if quality is None else json.dumps(quality),
                    json.dumps(merged),
                    window_id,
                ),
            )
            if state == "final":
                db.execute(
                    "DELETE FROM candidates WHERE entry_id IN "
                    "(SELECT entry_id FROM predictions WHERE window_id = ?)",
                    (window_id,),
                )
            updated = self._get(db, window_id)
        assert updated is not None
        return updated

    def consecutive_drifted(self, model_version: str, up_to: int) -> int:
        """Consecutive windows of the version, newest first up to ``up_to``, with dataset drift
        (windows without a drift result are passed over)."""
        count = 0
        for (drift,) in self.connection().execute(
            "SELECT drift FROM windows WHERE model_version = ? AND window_id <= ? "
            "AND drift IS NOT NULL ORDER BY window_id DESC",
            (model_version, up_to),
        ):
            if not json.loads(drift).get("dataset_drift"):
                break
            count += 1
        return count

    # --- housekeeping --------------------------------------------------------------------------
    def prune(self, now: float, retention_s: float, keep_windows: int) -> dict[str, int]:
        """Forget final windows' predictions and labels older than the retention, and window
        summaries beyond ``keep_windows``. (Entry ids are pruned separately, by
        ``prune_entries``: only the consumer group knows which ones can still come again.)"""
        horizon = now - retention_s
        with self.transaction() as db:
            predictions = db.execute(
                "DELETE FROM predictions WHERE time < ? AND window_id IN "
                "(SELECT window_id FROM windows WHERE state = 'final')",
                (horizon,),
            ).rowcount
            labels = db.execute("DELETE FROM feedback WHERE time < ?", (horizon,)).rowcount
            old = db.execute(
                "SELECT window_id FROM windows WHERE state = 'final' ORDER BY window_id DESC "
                "LIMIT -1 OFFSET ?",
                (keep_windows,),
            ).fetchall()
            for (window_id,) in old:
                db.execute("DELETE FROM predictions WHERE window_id = ?", (window_id,))
                db.execute("DELETE FROM windows WHERE window_id = ?", (window_id,))
        return {"predictions": predictions, "labels": labels, "windows": len(old)}

    def prune_entries(self, stream: str, before_ms: int) -> int:
        """Forget the applied entry ids of ``stream`` older than ``before_ms``: the caller
        guarantees none of them can be delivered again (all acknowledged)."""
        with self.transaction() as db:
            return int(
                db.execute(
                    "DELETE FROM entries WHERE stream = ? AND ms < ?", (stream, before_ms)
                ).rowcount
            )

    def unmatched_labels(self) -> int:
        row = (
            self.connection()
            .execute(
                "SELECT COUNT(*) FROM feedback f WHERE NOT EXISTS "
                "(SELECT 1 FROM predictions p WHERE p.request_id = f.request_id)"
            )
            .fetchone()
        )
        return int(row[0])

    def totals(self) -> dict[str, int]:
        conn = self.connection()
        out = {}
        for table in ("entries", "predictions", "candidates", "feedback", "windows"):
            out[table] = int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return out

    # --- retraining decisions ------------------------------------------------------------------
    def record_decision(
        self,
        decision: str,
        reason: str,
        detail: str,
        alertnames: Sequence[str],
        dag_run_id: str | None = None,
        now: float | None = None,
    ) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO decisions (time, decision, reason, detail, alertnames, dag_run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    time.time() if now is None else now,
                    decision,
                    reason,
                    detail,
                    json.dumps(list(alertnames)),
                    dag_run_id,
                ),
            )
            self._bump(db, "retraining_decisions", SEP.join((decision, reason)))
            return int(cursor.lastrowid or 0)

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = (
            self.connection()
            .execute(
                "SELECT id, time, decision, reason, detail, alertnames, dag_run_id FROM decisions "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [
            {
                "id": i,
                "time": t,
                "decision": d,
                "reason": r,
                "detail": detail,
                "alertnames": json.loads(names),
                "dag_run_id": run,
            }
            for i, t, d, r, detail, names, run in rows
        ]

    def last_triggered(self) -> float | None:
        row = (
            self.connection()
            .execute("SELECT MAX(time) FROM decisions WHERE decision = 'triggered'")
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])
