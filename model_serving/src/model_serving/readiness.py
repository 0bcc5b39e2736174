"""Readiness: a champion is loaded and its online store answers. Every check says why.

``Readiness.check`` pings the online store (blocking I/O): call it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model_serving.breaker import Breaker
from model_serving.features import OnlineStoreError
from model_serving.lifecycle import RegistryStatus, ServingState
from model_serving.models import LoadedModel
from model_serving.settings import ServingSettings
from model_serving.sink import EventSink

Check = dict[str, Any]


@dataclass(frozen=True)
class Readiness:
    settings: ServingSettings
    registry: RegistryStatus
    sink: EventSink
    #: the online store's circuit breaker of a reader: while open, no ping (answered at once)
    breaker_of: Callable[[object], Breaker] | None = None

    def check(self, state: ServingState) -> tuple[bool, dict[str, Check]]:
        """(ready, the checks: model, online_store when a model is loaded, registry, events,
        challenger when one is wanted)."""
        checks: dict[str, Check] = {}
        champion = state.champion
        if champion is None:
            checks["model"] = {"ok": False, "detail": self._why_no_model()}
        else:
            checks["model"] = {
                "ok": True,
                "detail": f"{champion.name} v{champion.version} "
                f"({champion.flavor}, from {champion.source})",
            }
            checks["online_store"] = self._online_store(champion)
        checks["registry"] = self._registry()
        checks["events"] = {"ok": self.sink.up is not False, **self.sink.describe()}
        if self.settings.needs_challenger:
            checks["challenger"] = {
                "ok": True,
                "loaded": state.challenger.version if state.challenger else None,
            }
        ready = checks["model"]["ok"] and checks.get("online_store", {}).get("ok", False)
        return ready, checks

    def _why_no_model(self) -> str:
        s = self.settings
        return self.registry.load_errors.get("champion") or (
            "registry unreachable and no cached champion"
            if self.registry.reachable is False
            else f"no version has the alias {s.serving_champion_alias!r} of "
            f"{s.serving_model_name!r} yet"
        )

    def _online_store(self, champion: LoadedModel) -> Check:
        breaker = self.breaker_of(champion.reader) if self.breaker_of else None
        if breaker is not None and breaker.is_open:
            return {"ok": False, "detail": f"circuit {breaker.describe()}"}
        try:
            return {"ok": True, "detail": champion.reader.ping()}
        except OnlineStoreError as exc:
            return {"ok": False, "detail": str(exc)}

    def _registry(self) -> Check:
        registry = self.registry
        if registry.reachable:
            detail = "reachable"
        elif registry.reachable is False:
            detail = f"unreachable, serving what is loaded: {registry.last_error}"
        else:
            detail = "not asked yet"
        return {"ok": registry.reachable is not False, "detail": detail, **registry.describe()}
