"""Registry-driven model lifecycle: load the champion at start, follow the aliases, swap atomically.

Design of the swap
------------------
What requests use is one immutable ``ServingState`` (champion and challenger ``LoadedModel``s,
each already bound to its feature reader). A request reads ``manager.state`` once, at its start,
and uses that snapshot to the end: it never sees half a change.

A background thread (the watcher) polls the registry every ``SERVING_POLL_INTERVAL_S`` seconds
for the versions the aliases point at. When one moves (a promotion, or a rollback: the same
thing), the watcher downloads the version (or takes it from the local cache), loads it, binds it
to its feature service's reader, warms it up, and only then replaces the state reference — a
single attribute assignment, atomic in Python. Requests in flight finish on the old model; the
next ones get the new one. Nothing on the request path ever loads, waits or locks.

A load that fails leaves the served model in place (``serving_model_loads_total{outcome=
"failure"}``) and is tried again at the next poll. A registry that does not answer leaves
everything in place and is reported (``serving_registry_reachable`` 0, ``/health/ready`` detail).
At start, the local cache's last champion comes first (``champion.json``: the last one loaded
and warmed): a restart is ready without a registry round trip or a download, and the watcher
asks the registry at once and follows the alias if it moved while serving was down. With no
cached champion, the registry is asked first (and an unreachable one means: not ready).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from mlops_common.registry import RegistryUnavailable, alias_version, make_client
from mlops_common.threads import Worker
from model_serving.metrics import ServingMetrics
from model_serving.models import (
    LoadedModel,
    ModelLoadError,
    ModelRefused,
    fetch_version,
    load_version,
    prune_cache,
    read_pointer,
    write_pointer,
)
from model_serving.settings import ServingSettings

log = logging.getLogger("model_serving.lifecycle")

#: binds a freshly loaded model to its feature reader (raises ModelLoadError when it cannot)
Binder = Callable[[LoadedModel], LoadedModel]


@dataclass(frozen=True)
class ServingState:
    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None


@dataclass
class RegistryStatus:
    reachable: bool | None = None  # None: never asked yet
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    aliases: dict[str, str | None] = field(default_factory=dict)
    #: alias -> last load failure (version and message), cleared by a successful load
    load_errors: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "aliases": dict(self.aliases),
            "load_errors": dict(self.load_errors),
        }


class ModelManager:
    def __init__(
        self,
        settings: ServingSettings,
        metrics: ServingMetrics,
        bind: Binder,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._bind = bind
        self._client_factory = client_factory or (lambda: make_client(settings.tracking_uri))
        self._client: Any = None
        self.state = ServingState()
        self.registry = RegistryStatus()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._worker = Worker(self._watch, "model-watcher")
        self.polls = 0
        #: the watcher's first poll comes at once (started from the cache) or after an interval
        self._first_wait = settings.serving_poll_interval_s

    # --- aliases this service follows ----------------------------------------------------
    @property
    def name(self) -> str:
        return self.settings.serving_model_name

    def roles(self) -> list[tuple[str, str]]:
        """(role, registry alias) pairs to follow."""
        s = self.settings
        roles = [("champion", s.serving_champion_alias)]
        if s.needs_challenger:
            roles.append(("challenger", s.serving_challenger_alias))
        return roles

    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    # --- start and watch -----------------------------------------------------------------
    def start(self, *, watch: bool = True) -> None:
        """First load (the local cache's last champion, else the registry), then the watcher
        thread (polling at once when the champion came from the cache)."""
        if self._load_cached_champion():
            self._first_wait = 0.0
        else:
            reachable = self.poll_once()
            if self.state.champion is None and not reachable:
                log.warning(
                    "registry unreachable and no cached champion: not ready until the "
                    "registry answers"
                )
        if watch:
            self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._worker.join(timeout)

    def _watch(self) -> None:
        interval = self.settings.serving_poll_interval_s
        wait = self._first_wait
        while not self._stop.wait(wait):
            wait = interval
            try:
                self.poll_once()
            except Exception:  # the watcher must outlive any surprise
                log.exception("model watcher: poll failed unexpectedly")

    def poll_once(self) -> bool:
        """Ask where the aliases point and follow them; True when the registry answered."""
        self.polls += 1
        wanted: dict[str, str | None] = {}
        try:
            client = self.client()
            for role, alias in self.roles():
                wanted[role] = alias_version(client, self.name, alias)
        except RegistryUnavailable as exc:
            self._registry_down(str(exc))
            return False
        except Exception as exc:  # client construction failed (bad URI, ...)
            self._registry_down(f"{type(exc).__name__}: {exc}")
            return False
        self._registry_up(wanted)
        for role, version in wanted.items():
            self._follow(role, version)
        return True

    def _registry_up(self, wanted: dict[str, str | None]) -> None:
        now = datetime.now(UTC)
        if self.registry.reachable is False:
            log.info("model registry reachable again")
        self.registry.reachable = True
        self.registry.last_success = now
        self.registry.aliases = {alias: wanted.get(role) for role, alias in self.roles()}
        self.metrics.registry_up.set(1)
        self.metrics.registry_last_success.set(now.timestamp())
        self.metrics.registry_polls.labels("ok").inc()

    def _registry_down(self, message: str) -> None:
        if self.registry.reachable is not False:
            log.warning("model registry unreachable; serving what is loaded: %s", message)
        self.registry.reachable = False
        self.registry.last_error = message
        self.registry.last_error_at = datetime.now(UTC)
        self.metrics.registry_up.set(0)
        self.metrics.registry_polls.labels("unreachable").inc()

    # --- following one alias --------------------------------------------------------------
    def _current(self, role: str) -> LoadedModel | None:
        model: LoadedModel | None = getattr(self.state, role)
        return model

    def _follow(self, role: str, version: str | None) -> None:
        current = self._current(role)
        if version is None:
            if role == "challenger" and current is not None:
                log.info(
                    "alias %s removed: challenger v%s unloaded",
                    self.settings.serving_challenger_alias,
                    current.version,
                )
                self._swap(role, None)
            elif role == "champion" and current is not None:
                log.warning(
                    "alias %s does not exist (any more); still serving v%s",
                    self.settings.serving_champion_alias,
                    current.version,
                )
            return
        if current is not None and current.version == version:
            return
        model = self._reuse(version, role) or self._load(role, version)
        if model is not None:
            self._swap(role, model)

    def _reuse(self, version: str, role: str) -> LoadedModel | None:
        """A version already loaded under the other role (a challenger promoted to champion,
        or a rollback to it) is re-used as is: no download, no load."""
        for other in ("champion", "challenger"):
            model = self._current(other)
            if model is not None and model.version == version:
                return model.with_alias(role)
        return None

    def load_arm(self, version: str, label: str) -> LoadedModel | None:
        """An experiment arm's model: the served champion or challenger when it is that
        version, else loaded like them (the same cache, checks and warm-up), served under
        ``label``; None when it cannot be loaded (``registry.load_errors`` says why)."""
        model = self._reuse(version, "experiment") or self._load("experiment", version)
        return None if model is None else model.with_alias(label)

    def _load(self, role: str, version: str, *, source: str = "registry") -> LoadedModel | None:
        s = self.settings
        began = time.perf_counter()
        try:
            path = fetch_version(
                self.client(), s.tracking_uri, s.model_cache_dir, self.name, version
            )
            model = self._bind(
                load_version(
                    path,
                    alias=role,
                    source="registry",
                    default_feature_service=s.serving_feature_service,
                    compiled=s.serving_compiled_models,
                )
            )
        except (ModelLoadError, RegistryUnavailable) as exc:
            self._load_failed(role, version, source, str(exc), exc)
            return None
        except Exception as exc:
            log.exception("unexpected error loading %s v%s", self.name, version)
            self._load_failed(role, version, source, f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - began
        model = replace(model, load_seconds=elapsed)  # download + load + bind + warm-up
        self.metrics.model_loads.labels(role, source, "success").inc()
        self.metrics.model_load_latency.labels(role).observe(elapsed)
        self.registry.load_errors.pop(role, None)
        log.info(
            "loaded %s v%s as %s in %.2fs (flavor %s, features %s via %s)",
            self.name,
            version,
            role,
            elapsed,
            model.flavor,
            model.feature_service,
            getattr(model.reader, "kind", "?"),
        )
        return model

    def _load_failed(
        self, role: str, version: str, source: str, message: str, exc: Exception | None = None
    ) -> None:
        self.metrics.model_loads.labels(role, source, "failure").inc()
        if isinstance(exc, ModelRefused):
            self.metrics.model_load_refused.labels(exc.reason).inc()
            message = f"refused ({exc.reason}): {message}"
        self.registry.load_errors[role] = f"v{version}: {message}"
        log.error(
            "cannot load %s v%s as %s (keeping what is served): %s",
            self.name,
            version,
            role,
            message,
        )

    def _load_cached_champion(self) -> bool:
        """Load the cache's last champion; True when it is served."""
        path = read_pointer(self.settings.model_cache_dir, self.name)
        if path is None:
            return False
        began = time.perf_counter()
        try:
            model = self._bind(
                load_version(
                    path,
                    alias="champion",
                    source="cache",
                    default_feature_service=self.settings.serving_feature_service,
                    compiled=self.settings.serving_compiled_models,
                )
            )
        except Exception as exc:
            self._load_failed("champion", path.name, "cache", str(exc), exc)
            return False
        self.metrics.model_loads.labels("champion", "cache", "success").inc()
        self.metrics.model_load_latency.labels("champion").observe(time.perf_counter() - began)
        log.info(
            "started from the local cache: %s v%s (the registry is asked next)",
            model.name,
            model.version,
        )
        self._swap("champion", model)
        return True

    # --- the swap -------------------------------------------------------------------------
    def _swap(self, role: str, model: LoadedModel | None) -> None:
        with self._write_lock:
            old = self._current(role)
            if role == "champion":
                self.state = ServingState(champion=model, challenger=self.state.challenger)
            else:
                self.state = ServingState(champion=self.state.champion, challenger=model)
        m = self.metrics
        if old is not None:
            with contextlib.suppress(KeyError), warnings.catch_warnings():
                # feast sets PROMETHEUS_MULTIPROC_DIR at import; this registry is in-process
                warnings.simplefilter("ignore")
                m.model_info.remove(role, old.name, old.version, old.source)
        if model is not None:
            m.model_info.labels(role, model.name, model.version, model.source).set(1)
        m.model_loaded.labels(role).set(1 if model is not None else 0)
        m.model_swaps.labels(role).inc()
        log.info(
            "%s: v%s -> v%s", role, old.version if old else None, model.version if model else None
        )
        if role == "champion" and model is not None and model.source == "registry":
            try:
                write_pointer(self.settings.model_cache_dir, model)
                keep = {model.version}
                if self.state.challenger is not None:
                    keep.add(self.state.challenger.version)
                prune_cache(
                    self.settings.model_cache_dir,
                    self.name,
                    self.settings.serving_model_cache_keep,
                    keep,
                )
            except OSError as exc:
                log.warning("could not update the local model cache: %s", exc)
