"""The promotion log: one record per alias move, kept as registered-model tags in MLflow.

Every alias move (by the gate, by hand, by a rollback) appends one record under the next free
tag ``promotion.0001``, ``promotion.0002``, … whose value is the record as JSON. A tag of the
trail is never rewritten. Records written before ``schema_version`` existed read as version 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION: Literal[1] = 1
PROMOTION_TAG_PREFIX = "promotion."

Action = Literal["gate", "promote", "rollback"]


class PromotionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    seq: int
    time: str
    actor: str
    action: Action
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    metrics: dict[str, float] = {}

    @property
    def tag_key(self) -> str:
        return promotion_tag(self.seq)


def promotion_tag(seq: int) -> str:
    return f"{PROMOTION_TAG_PREFIX}{seq:04d}"


def is_promotion_tag(key: str) -> bool:
    return key.startswith(PROMOTION_TAG_PREFIX)
