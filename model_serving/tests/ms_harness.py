"""Types the serving tests share with their fixtures: stream keys of a test, the app under a
test client (``Harness``), the app on a real uvicorn port (``LiveServer``).

They live here, not in ``conftest.py``: every component's tests have a ``conftest`` module, so
``from conftest import …`` would pick whichever was imported first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ms_fixtures import auth, free_port, unique_name

from model_serving.settings import ServingSettings


@dataclass
class Streams:
    """Event stream keys made for one test, deleted afterwards."""

    client: redis.Redis
    made: list[str] = field(default_factory=list)

    def new(self) -> tuple[str, str]:
        base = unique_name("ms_test_events")
        pair = (f"{base}:predictions", f"{base}:feedback")
        self.made.extend(pair)
        return pair

    def entries(self, key: str) -> list[dict[bytes, bytes]]:
        return [fields for _, fields in self.client.xrange(key)]

    def cleanup(self) -> None:
        if self.made:
            self.client.delete(*self.made)


SettingsFactory = Callable[..., ServingSettings]


@dataclass
class Harness:
    """An app with its lifespan running, and a client for it."""

    app: FastAPI
    client: TestClient

    @property
    def service(self) -> Any:
        return self.app.state.service

    @property
    def settings(self) -> ServingSettings:
        settings: ServingSettings = self.service.settings
        return settings

    def predict(self, driver_ids: list[int], request_id: str | None = None) -> Any:
        body: dict[str, Any] = {"driver_ids": driver_ids}
        if request_id is not None:
            body["request_id"] = request_id
        return self.client.post("/v1/predict", json=body, headers=auth())


@dataclass
class LiveServer:
    """The app on a real uvicorn port, in a thread of the test process."""

    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    @property
    def service(self) -> Any:
        return self.app.state.service

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def start_live(app: FastAPI) -> LiveServer:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return LiveServer(app, server, thread, f"http://127.0.0.1:{port}")
