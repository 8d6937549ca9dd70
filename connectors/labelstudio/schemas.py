"""Request bodies Label Studio sends, validated with pydantic (unknown keys are kept, since
Label Studio adds fields between versions; wrong types get a 422 with the reason)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def project_id(value: Any) -> int:
    """Label Studio's project uid "<id>.<created-timestamp>", a bare id, or a project dict."""
    if isinstance(value, dict):
        value = value.get("id")
    text = str(value).split(".", 1)[0] if value is not None and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdecimal()):  # isdigit() let "²" through to int(), and read "١٢" as 12
        raise ValueError(f"project must be '<id>.<timestamp>', an id or an object with an id, not {value!r}")
    return int(text)


class SetupRequest(_Open):
    project: str | int = Field(..., description="'<id>.<timestamp>'")
    schema_: str = Field(..., alias="schema", min_length=1, max_length=1_000_000)
    hostname: str | None = None
    access_token: str | None = Field(None, max_length=4096)
    extra_params: Any = None

    @field_validator("project")
    @classmethod
    def _project(cls, v: Any) -> Any:
        project_id(v)
        return v


class LSTask(_Open):
    id: int
    data: dict[str, Any]


class PredictRequest(_Open):
    tasks: list[LSTask] = Field(..., max_length=200_000)
    project: str | int | None = None
    label_config: str | None = Field(None, max_length=1_000_000)
    params: dict[str, Any] | None = None


class Annotation(_Open):
    id: StrictInt = Field(..., ge=0, le=2**31 - 1)  # it numbers the answer in the ledger (a 32-bit column); true is no id
    result: list[dict[str, Any]] = Field(default_factory=list)
    lead_time: float | None = None  # judged by the recorder: an implausible one is quarantined
    completed_by: int | dict[str, Any] | None = None
    was_cancelled: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    task: StrictInt | dict[str, Any] | None = None

    @field_validator("result")
    @classmethod
    def _result(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from clicloop.backends.labelstudio_format import result_problem

        problem = result_problem(v, "result")
        if problem:
            raise ValueError(problem)
        return v


class WebhookRequest(_Open):
    action: str = Field(..., min_length=1, max_length=100)
    project: dict[str, Any] | int | str | None = None
    annotation: Annotation | None = None
    annotations: list[dict[str, Any]] | None = None
    task: dict[str, Any] | None = None
