"""Binding a loaded model to the online features it needs (called by the model watcher, never
on the request path).

The model's feature service is re-read from the Feast registry at every load; its reader is
re-used when nothing about it changed. A model whose input columns the service does not provide
is refused (``ModelLoadError``), and so is a feature store that cannot be built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from model_serving.features import FeatureReader, FeatureServiceError, OnlineStoreError, make_reader
from model_serving.models import LoadedModel, ModelLoadError
from model_serving.settings import ServingSettings

log = logging.getLogger("model_serving.binding")

#: builds the ``feast.FeatureStore`` (once, when the first model is bound)
StoreFactory = Callable[[], Any]


class FeatureBinder:
    def __init__(self, settings: ServingSettings, store_factory: StoreFactory) -> None:
        self.settings = settings
        self.store_factory = store_factory
        #: feature service -> its reader (shared by the models that use the service)
        self.readers: dict[str, FeatureReader] = {}
        self._store: Any = None
        self._store_lock = threading.Lock()

    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = self.store_factory()
                except Exception as exc:
                    raise ModelLoadError(
                        f"the feature store is not available: {type(exc).__name__}: {exc}"
                    ) from exc
            return self._store

    def bind(self, model: LoadedModel) -> LoadedModel:
        """Attach the reader of the model's feature service (re-read from the Feast registry)
        and the positions of the model's input columns among the service's features."""
        reader = self._reader(model.feature_service)
        missing = [c for c in model.columns if c not in reader.spec.feature_names]
        if missing:
            raise ModelLoadError(
                f"{model.name} v{model.version} needs features {missing} that feature service "
                f"{model.feature_service!r} does not provide (it has "
                f"{list(reader.spec.feature_names)})"
            )
        try:  # warm the read path (first calls are slow) and prove the store answers
            reader.read([1])
        except OnlineStoreError as exc:
            log.warning("online store not answering while loading v%s: %s", model.version, exc)
        self.readers[model.feature_service] = reader
        names = reader.spec.feature_names
        return replace(model, reader=reader, positions=tuple(names.index(c) for c in model.columns))

    def _reader(self, service: str) -> FeatureReader:
        """A reader of ``service`` as the registry has it now; the current one when the same."""
        store = self.store()
        try:
            if hasattr(store, "refresh_registry"):
                store.refresh_registry()
            reader = make_reader(
                store,
                service,
                self.settings.serving_feature_reader,
                self.settings.serving_online_store_timeout_s,
            )
        except FeatureServiceError as exc:
            raise ModelLoadError(str(exc)) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"feature service {service!r}: {type(exc).__name__}: {exc}"
            ) from exc
        current = self.readers.get(service)
        if current is not None and current.spec == reader.spec and current.kind == reader.kind:
            reader.close()
            return current
        return reader

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
