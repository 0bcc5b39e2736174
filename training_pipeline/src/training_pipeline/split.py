"""Time-based holdout: train on the past, test on the most recent slice. Never random."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from training_pipeline.settings import SplitConfig


class SplitError(ValueError):
    """The window cannot be split into a usable past and most recent slice."""


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    #: every training row is strictly before it, every test row at or after it
    cutoff: pd.Timestamp

    def summary(self, timestamp_column: str) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "n_train": len(self.train),
            "n_test": len(self.test),
            "train_start": self.train[timestamp_column].min().isoformat(),
            "train_end": self.train[timestamp_column].max().isoformat(),
            "test_start": self.test[timestamp_column].min().isoformat(),
            "test_end": self.test[timestamp_column].max().isoformat(),
        }


def time_split(frame: pd.DataFrame, timestamp_column: str, cfg: SplitConfig) -> TimeSplit:
    """Split ``frame`` at a cutoff time.

    ``cfg.test_days``: cutoff = latest timestamp - test_days. Otherwise the cutoff is the
    timestamp of the row at the ``1 - test_fraction`` quantile of the time-ordered rows; rows
    sharing the cutoff time all go to the test slice, so no timestamp is split.
    """
    if frame.empty:
        raise SplitError("cannot split an empty training set")
    ts = pd.to_datetime(frame[timestamp_column], utc=True)
    ordered = ts.sort_values(kind="mergesort").reset_index(drop=True)
    if cfg.test_days is not None:
        cutoff = ordered.iloc[-1] - pd.Timedelta(days=cfg.test_days)
        # the cutoff itself belongs to the test slice: move it just after the boundary
        cutoff = ordered[ordered > cutoff].iloc[0]
    else:
        position = min(len(ordered) - 1, int(len(ordered) * (1.0 - cfg.test_fraction)))
        cutoff = ordered.iloc[position]
    is_test = (ts >= cutoff).to_numpy()
    train = frame.loc[~is_test].reset_index(drop=True)
    test = frame.loc[is_test].reset_index(drop=True)
    if train.empty:
        raise SplitError(
            f"no training rows before the cutoff {cutoff.isoformat()}: the window is too short "
            "for the configured test slice"
        )
    if len(test) < cfg.min_test_rows:
        raise SplitError(
            f"the test slice has {len(test)} rows, fewer than split.min_test_rows="
            f"{cfg.min_test_rows}"
        )
    return TimeSplit(train=train, test=test, cutoff=pd.Timestamp(cutoff))
