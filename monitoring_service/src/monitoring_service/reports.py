"""The Evidently HTML reports kept on disk: ``<reports_dir>/<window id>/<kind>.html.gz``.

One folder per window, a gzip-compressed page per kind (``drift``, ``quality``); only the
newest ``MONITORING_MAX_REPORTS`` windows keep theirs. The evaluator writes them, the HTTP API
and the ``report`` command read them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from monitoring_service import drift

ReportKind = Literal["drift", "quality"]
KINDS: tuple[ReportKind, ...] = ("drift", "quality")


def file_name(kind: str) -> str:
    """``drift`` → ``drift.html.gz``."""
    return f"{kind}.html.gz"


class ReportFiles:
    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.keep = keep

    def save(self, window_id: int, kind: ReportKind, snapshot: Any) -> str | None:
        """Write the snapshot's page (nothing when no report is kept); returns the file name.
        ``prune`` then drops the oldest windows' pages."""
        if self.keep <= 0:
            return None
        name = file_name(kind)
        drift.save_html(snapshot, self.folder / str(window_id) / name)
        return name

    def prune(self) -> int:
        """Keep the reports of the newest ``keep`` windows; returns how many pages remain."""
        folders = self._window_folders()
        for old in folders[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)
        return sum(len(list(p.glob("*.html.gz"))) for p in folders[: self.keep])

    def path(self, window_id: int, kind: str) -> Path | None:
        """The stored (compressed) page, or None when there is none."""
        if kind not in KINDS:
            return None
        path = self.folder / str(window_id) / file_name(kind)
        return path if path.is_file() else None

    def kinds(self, window_id: int) -> list[ReportKind]:
        return [kind for kind in KINDS if self.path(window_id, kind)]

    def listing(self) -> list[dict[str, Any]]:
        """The windows that have reports, newest first: ``{"window_id", "kinds"}``."""
        out = []
        for folder in self._window_folders():
            kinds = [k for k in KINDS if (folder / file_name(k)).is_file()]
            if kinds:
                out.append({"window_id": int(folder.name), "kinds": kinds})
        return out

    def _window_folders(self) -> list[Path]:
        return sorted(
            (p for p in self.folder.glob("*") if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
