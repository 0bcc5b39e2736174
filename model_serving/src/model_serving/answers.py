"""Which model answered which request: the predictor writes it, feedback reads it.

A bounded memory of this process (the oldest request ids are forgotten first): a label that
arrives for a request this process no longer remembers is still accepted, with no model.
"""

from __future__ import annotations

from typing import TypedDict

from model_serving.models import LoadedModel


class ModelRef(TypedDict):
    """A served version and the alias it answered under (the answers' and events' ``model``)."""

    name: str
    version: str
    alias: str


def model_ref(model: LoadedModel) -> ModelRef:
    return {"name": model.name, "version": model.version, "alias": model.alias}


class AnswerMemory:
    """Request id -> the model that answered it, for the last ``limit`` request ids."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._answered: dict[str, ModelRef] = {}

    def remember(self, request_id: str, model: ModelRef) -> None:
        if self.limit <= 0:
            return
        answered = self._answered
        answered[request_id] = model
        if len(answered) > self.limit:
            del answered[next(iter(answered))]

    def recall(self, request_id: str) -> ModelRef | None:
        return self._answered.get(request_id)

    def __len__(self) -> int:
        return len(self._answered)
