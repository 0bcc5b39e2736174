"""FastAPI dependencies of the routes (besides the API key, see ``auth``)."""

from __future__ import annotations

from model_serving.lifecycle import ServingState
from model_serving.predictor import ServesModels


class LoadedModels:
    """The loaded models: the serving state snapshot (champion, challenger) a request uses from
    its start to its end, however the models move meanwhile.

    ``/v1/predict`` does not take it as a dependency (every dependency costs time on each call):
    its ``Predictor`` reads the same snapshot once, at the request's start."""

    def __init__(self, models: ServesModels) -> None:
        self._models = models

    async def __call__(self) -> ServingState:
        return self._models.state
