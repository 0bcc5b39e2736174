"""What the edge and the routes tell each other through the ASGI scope of a request.

The edge sets ``request_id`` (the ``X-Request-ID`` it was given, when valid, else a new one);
a route that answers for a request id of the body (``request_id`` of predict and feedback) or
knows the model version that answered records them with ``answered``: the edge echoes that id in
``X-Request-ID``, logs and labels its metrics with the version, and error bodies carry the id.
The API key check (``ApiKeyAuth.admit``) sets ``client``: the ``Client`` (name, scopes) of the
key, read by the scope check, the predict route (the prediction event) and the request metrics.
"""

from __future__ import annotations

from starlette.types import Scope

REQUEST_ID = "request_id"
ANSWER_REQUEST_ID = "answer_request_id"
MODEL_VERSION = "model_version"
#: not "client": the ASGI scope has that key (the peer address)
CLIENT = "api_client"


def answered(scope: Scope, request_id: str, model_version: str | None = None) -> None:
    scope[ANSWER_REQUEST_ID] = request_id
    if model_version is not None:
        scope[MODEL_VERSION] = model_version


def answer_request_id(scope: Scope) -> str | None:
    """The request id an answer carries: the body's when a route took it, else the edge's."""
    rid: str | None = scope.get(ANSWER_REQUEST_ID, scope.get(REQUEST_ID))
    return rid


def client_name(scope: Scope) -> str | None:
    """The name of the API key of the request, when it named a valid one."""
    client = scope.get(CLIENT)
    return None if client is None else str(client.name)
