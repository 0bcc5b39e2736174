"""Request and response bodies of the HTTP API (documented in the OpenAPI schema, with examples)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

#: the largest id accepted: JSON numbers above 2**53 lose precision in most clients (the
#: entity key is an int64, but an id a JavaScript client cannot represent is refused)
MAX_ID = 2**53 - 1
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:@/-]{1,128}$"


def _whole_number(value: Any) -> Any:
    """JSON Schema's ``integer``: an int, or a number with no fractional part (``2.0``);
    never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be an integer, not {_json_type(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be an integer, not {value!r}")
        return int(value)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


DriverId = Annotated[
    int,
    Field(ge=1, le=MAX_ID, description="A driver id (the `driver` entity's key), 1 to 2^53-1"),
    BeforeValidator(_whole_number),
]
RequestId = Annotated[
    str,
    Field(
        pattern=REQUEST_ID_PATTERN,
        description="1-128 characters of letters, digits and `._:@/-`",
        examples=["booking-2024-000123"],
    ),
]


def _unique(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        duplicates = sorted(k for k, n in Counter(ids).items() if n > 1)
        raise ValueError(f"driver_ids must be unique; repeated: {duplicates[:10]}")
    return ids


def predict_request_model(max_candidates: int) -> type[BaseModel]:
    """The predict body, with the configured maximum number of candidates in its schema."""

    class PredictRequest(BaseModel):
        """Candidate drivers of one booking, to be ranked by completion probability."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"request_id": "booking-2024-000123", "driver_ids": [1001, 1002, 1003]},
                    {"driver_ids": [1004, 1005]},
                ]
            },
        )

        request_id: RequestId | None = Field(
            default=None,
            description="Your id of this request (sticky canary routing, feedback); "
            "generated when missing",
        )
        driver_ids: Annotated[
            list[DriverId],
            Field(
                min_length=1,
                max_length=max_candidates,
                description=f"Candidate driver ids, 1 to {max_candidates}, unique",
                json_schema_extra={"uniqueItems": True},
            ),
            AfterValidator(_unique),
        ]

    return PredictRequest


class ModelRef(BaseModel):
    name: str = Field(examples=["driver_ranking"])
    version: str = Field(examples=["3"])
    alias: str = Field(
        description="champion, or challenger for canary traffic", examples=["champion"]
    )


class DriverScore(BaseModel):
    driver_id: int = Field(examples=[1002])
    score: float = Field(
        description="Probability that the driver completes the trip", examples=[0.87]
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "booking-2024-000123",
                    "best_driver_id": 1002,
                    "scores": [
                        {"driver_id": 1002, "score": 0.87},
                        {"driver_id": 1001, "score": 0.64},
                    ],
                    "model": {"name": "driver_ranking", "version": "3", "alias": "champion"},
                    "unknown_driver_ids": [1003],
                    "stale_driver_ids": [],
                }
            ]
        }
    )

    request_id: str
    best_driver_id: int
    scores: list[DriverScore] = Field(description="Scored candidates, best first")
    model: ModelRef
    unknown_driver_ids: list[int] = Field(
        description="Candidates the online store does not know: left out of the ranking"
    )
    stale_driver_ids: list[int] = Field(
        description="Candidates whose features are older than the feature view's TTL: left out"
    )


class FeedbackRequest(BaseModel):
    """The outcome of a booking: did the assigned driver complete the trip?"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"request_id": "booking-2024-000123", "driver_id": 1002, "trip_completed": True}
            ]
        },
    )

    request_id: RequestId
    driver_id: DriverId
    trip_completed: StrictBool


class FeedbackResponse(BaseModel):
    status: str = Field(examples=["accepted"])
    request_id: str
    model: ModelRef = Field(description="The model that answered the request")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_request",
                    "message": "body.driver_ids: driver_ids must be unique; repeated: [7]",
                    "request_id": "5b0f4c0e8f0a4c55a5f0f7f0d7c9b1aa",
                }
            ]
        }
    )

    error: str = Field(description="A stable, machine-readable code")
    message: str = Field(description="What is wrong, for a human")
    request_id: str | None = None
    details: Any = None


class ServedModel(BaseModel):
    name: str
    version: str
    alias: str
    flavor: str
    scorer: str = Field(
        description="What computes the scores: compiled-hgb (vectorised, "
        "checked identical at load) or sklearn"
    )
    feature_service: str
    input_columns: list[str]
    source: str = Field(description="registry, or cache when started without the registry")
    run_id: str | None
    loaded_at: str
    load_seconds: float
    feature_reader: str | None


class ModelInfoResponse(BaseModel):
    name: str
    served: list[ServedModel]
    registry: dict[str, Any] = Field(
        description="Reachability, last success and error, where the aliases point"
    )
    traffic: dict[str, Any] = Field(description="Canary percentage and shadow scoring")


class HealthResponse(BaseModel):
    status: str
    checks: dict[str, Any] = {}
