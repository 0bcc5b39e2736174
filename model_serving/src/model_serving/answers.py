"""Which model answered which request, and with which drivers: the predictor writes it,
feedback reads it.

A bounded memory of this process: the last ``limit`` request ids (the oldest forgotten first),
each for ``window_s`` seconds. Feedback is accepted only for a request id it remembers and one of
the drivers that answer ranked; a restart forgets every answer.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypedDict

from mlops_common.experiments import ExperimentTag
from model_serving.models import LoadedModel


class ModelRef(TypedDict):
    """A served version and the alias it answered under (the answers' and events' ``model``)."""

    name: str
    version: str
    alias: str


def model_ref(model: LoadedModel) -> ModelRef:
    return {"name": model.name, "version": model.version, "alias": model.alias}


@dataclass(frozen=True, slots=True)
class Answer:
    """One remembered answer: the model, the ranked drivers (compact), when (clock seconds)."""

    model: ModelRef
    drivers: array[int]
    at: float
    #: the experiment and arm that routed the request, when one did
    experiment: ExperimentTag | None = None


class AnswerMemory:
    """Request id -> the answer, for the last ``limit`` request ids and ``window_s`` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._answered: dict[str, Answer] = {}

    def remember(
        self,
        request_id: str,
        model: ModelRef,
        drivers: Iterable[int] = (),
        experiment: ExperimentTag | None = None,
    ) -> None:
        if self.limit <= 0:
            return
        answered = self._answered
        answered.pop(request_id, None)  # a repeated id counts from its last answer
        answered[request_id] = Answer(model, array("q", drivers), self._clock(), experiment)
        if len(answered) > self.limit:
            del answered[next(iter(answered))]

    def answer(self, request_id: str) -> Answer | None:
        """The answer to ``request_id``, expired or not (``expired`` tells)."""
        return self._answered.get(request_id)

    def expired(self, answer: Answer) -> bool:
        return self._clock() - answer.at > self.window_s

    def recall(self, request_id: str) -> ModelRef | None:
        """The model that answered ``request_id`` within the window, if remembered."""
        found = self._answered.get(request_id)
        return None if found is None or self.expired(found) else found.model

    def __len__(self) -> int:
        return len(self._answered)
