"""The API's request and response shapes, as its OpenAPI schema shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from ninja import Schema
from pydantic import Field, WithJsonSchema


class Error(Schema):
    detail: str


class Queued(Schema):
    id: UUID
    status: str
    url: str


class ShadowAnswer(Schema):
    version: int
    label: str
    confidence: float
    decision: Literal["answered", "unsure"] | None = Field(
        description="The shadow version's own decision, as `decision` is the answer's; null for shadow answers "
        "older than this field."
    )


class Prediction(Schema):
    id: UUID
    status: str
    label: str | None
    confidence: float | None
    probabilities: dict[str, float]
    decision: Literal["answered", "unsure"] | None = Field(
        description="“unsure” when the confidence is below what the version trusts: the label is then only the "
        "likelier one; null while not answered (and for answers older than this field)."
    )
    version: int | None
    heatmap: list[list[float]]
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    preprocess_ms: float | None
    inference_ms: float | None
    total_ms: float | None
    feedback: str | None
    image_url: str | None = Field(
        description="The photo, for the session that sent it, staff, and key holders (with their key); else null."
    )
    shadow: ShadowAnswer | None = Field(
        description="The answer of the version in shadow on the same photo, for staff and key holders (with their "
        "key), once it is stored (just after the answer); else null."
    )


class ActiveModel(Schema):
    dataset: str
    version: int
    backbone: str
    labels: list[str]
    threshold: float | None
    test_accuracy: float | None


class VersionScores(Schema):
    number: int
    status: Literal["queued", "training", "ready", "failed"]
    backbone: str
    created_at: datetime
    finished_at: datetime | None
    test_accuracy: float | None
    test_roc_auc: float | None
    test_coverage: float | None = Field(description="The share of test photos answered (not “unsure”).")
    test_answered_accuracy: float | None = Field(description="The accuracy of the test photos answered.")
    field_accuracy: float | None = Field(description="The accuracy on the field set: null while it has none.")
    is_active: bool = Field(description="It answers predictions.")
    is_shadow: bool = Field(description="It runs beside the active version on each photo; its answers are not sent.")


class ModelVersions(Schema):
    dataset: str
    versions: list[VersionScores] = Field(description="Newest first.")


class RightAnswer(Schema):
    correct: Literal[True]


class WrongAnswer(Schema):
    correct: Literal[False]
    label: str = Field(description="The right label, one of the dataset's.")


# `correct` tells which: a wrong answer must name the right label, and the schema says so. The schema
# is a plain oneOf: OpenAPI's discriminator is for string properties, and tools read Pydantic's
# mapping of this boolean ("true", "false") as strings.
FeedbackIn = Annotated[
    RightAnswer | WrongAnswer,
    Field(discriminator="correct"),
    WithJsonSchema({"oneOf": [RightAnswer.model_json_schema(), WrongAnswer.model_json_schema()]}),
]
