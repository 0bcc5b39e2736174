"""``/openapi.json``: the API's schema (the webhook's security scheme included), with the
models of the request bodies that routes read themselves (``request_body``) in its components."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mlops_common.events.alerts import AlertmanagerWebhook

router = APIRouter()

#: bodies a route parses itself (bounded, after its auth) and documents with ``request_body``
REQUEST_MODELS: tuple[type[BaseModel], ...] = (AlertmanagerWebhook,)
REF = "#/components/schemas/{model}"


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads a JSON ``model`` body itself."""
    assert model in REQUEST_MODELS, f"{model.__name__} must be in REQUEST_MODELS"
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with ``REQUEST_MODELS`` in its components."""
    schema = app.openapi()
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in REQUEST_MODELS:
        if model.__name__ not in components:
            found = model.model_json_schema(ref_template=REF)
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
    return schema


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document(request.app))
