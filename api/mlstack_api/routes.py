"""HTTP routes: prediction, feedback, health, version, admin reload, metrics and the browser form."""

from __future__ import annotations

import hmac
import os
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mlstack.contract import (
    ADMIN_RELOAD_PATH,
    ADMIN_TOKEN_ENV,
    FEEDBACK_PATH,
    FEEDBACK_TOKEN_ENV,
    HEALTHZ_PATH,
    METRICS_PATH,
    PREDICT_PATH,
    READYZ_PATH,
    SCHEMA_PATH,
    STATE_FEEDBACK_TOKEN,
    VERSION_PATH,
)
from mlstack.prediction_log import LogRefused
from mlstack_api.model import ServedModel
from mlstack_api.predictions import Scored, Unscorable, score
from mlstack_api.request_validation import RequestError, decode_json, parse_instances, unknown_categories
from mlstack_api.state import ApiState

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description=f"the token in ${ADMIN_TOKEN_ENV}")
feedback_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="FeedbackToken",
    description=f"the feedback token in ${FEEDBACK_TOKEN_ENV} (labels are training data)",
)
JSON = "application/json"


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _error(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return _json({"detail": detail, "field": field}, status, headers)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "body is not valid JSON",
        401: "missing or wrong bearer token",
        403: "endpoint disabled: its token is not configured",
        404: "unknown prediction id",
        413: "body larger than api.max_body_bytes",
        422: "body does not match the schema; `field` names the culprit",
        503: "no model loaded yet, or a dependency is unavailable",
    }
    return {str(code): {"description": meaning[code], "content": _ref("Error")} for code in codes}


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than `limit` bytes (413) before buffering it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, "invalid Content-Length header", "Content-Length") from None
        if size > limit:
            raise RequestError(413, f"request body is {size} bytes; the limit is {limit}", "body")
        body = await request.body()
        if len(body) > limit:
            raise RequestError(413, f"request body is larger than {limit} bytes", "body")
        return body
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise RequestError(413, f"request body is larger than {limit} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    PREDICT_PATH,
    summary="Predict the class of one or more instances",
    openapi_extra={
        "requestBody": {"required": True, "content": _ref("PredictRequest")},
        "responses": {
            "200": {
                "description": "one prediction per instance, in order",
                "content": _ref("PredictResponse"),
            },
            **_errors(400, 413, 422, 503),
        },
    },
)
async def predict(request: Request) -> Response:
    """Validate the instances against the served model's feature schema, predict, log each prediction."""
    state = _state(request)
    model = state.model  # this request uses this model to the end, whatever swaps meanwhile
    if model is None:
        return _error(503, state.not_ready_reason())
    api = state.config.api
    try:
        payload = decode_json(await read_body(request, api.max_body_bytes))
        instances, batch = parse_instances(payload, model.schema, api.max_batch)
    except RequestError as exc:
        return _json(exc.body(), exc.status)
    try:
        scored = await predict_and_log(request, state, model, instances, batch)
    except Unscorable as exc:
        field = f"instances[{exc.index}]"
        return _error(422, f"{field}: {exc}", field)
    except LogRefused as refused:
        return _error(503, refused.message, headers={"Retry-After": refused.retry_after})
    return _json({"predictions": scored.response_items(model), "model": model.info()})


async def predict_and_log(
    request: Request, state: ApiState, model: ServedModel, instances: list[Any], model_input: Any
) -> Scored:
    """Score validated instances, log them (answer only once committed), count them: every protocol's path.

    Raises:
        Unscorable: the model's probabilities for an instance are not finite.
        LogRefused: the prediction log could not store the rows (answer 503 with Retry-After).
    """
    state.metrics.observe_out_of_range(model, model_input)  # served anyway: that is how drift shows
    scored = score(model, model_input)
    writer = state.writer
    if writer is not None:  # acknowledged means stored: answer only once the rows' transaction committed
        await writer.write(scored.log_rows(model, instances), state.config.prediction_store.commit_timeout_s)
    request.state.model_version = model.version
    state.metrics.observe_predictions(model, scored.class_counts(len(model.class_names)))
    unseen = unknown_categories(model_input, model.schema)
    if unseen:  # accepted unseen categories of open vocabularies, whichever protocol sent them
        state.metrics.observe_unknown_categories(model, unseen)
    return scored


class Refused(Exception):
    """A request refused before its body is read (authentication): status, message, headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


async def refused_response(_request: Request, exc: Exception) -> Response:
    """`Refused` in the API's one error shape: `{detail, field}`."""
    assert isinstance(exc, Refused)
    field = "Authorization" if exc.status == 401 else None
    return _error(exc.status, exc.detail, field, exc.headers)


def require_feedback_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(feedback_bearer)],
) -> None:
    """Check the feedback bearer token (constant time) before the body is parsed.

    A dependency runs before FastAPI validates the body, so an unauthenticated caller learns
    nothing about the request schema: 403 when feedback is disabled, 401 without the right token.
    """
    expected = _state(request).feedback_token
    if expected is None:
        raise Refused(
            403,
            f"feedback is disabled: set {FEEDBACK_TOKEN_ENV} on the predictor to enable POST /feedback "
            f"(the local runtime generates one into <state_dir>/{STATE_FEEDBACK_TOKEN})",
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        reason = "missing bearer token" if credentials is None else "wrong bearer token"
        raise Refused(
            401, f"{reason} (POST /feedback needs ${FEEDBACK_TOKEN_ENV})", {"WWW-Authenticate": "Bearer"}
        )


class FeedbackRequest(BaseModel):
    """Ground truth for a served prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$", description="`id` from a /predict response"
    )
    true_label: int = Field(description="the true class label (an integer label of the model's classes)")


@router.post(
    FEEDBACK_PATH,
    summary="Record the true label of a served prediction (feedback bearer token)",
    responses={200: {"description": "feedback stored"}, **_errors(400, 401, 403, 404, 422, 503)},  # type: ignore[dict-item]
    dependencies=[Depends(require_feedback_token)],
)
def feedback(body: FeedbackRequest, request: Request) -> Response:
    state = _state(request)
    model = state.model
    if state.store is None:
        return _error(503, "the prediction log is disabled (prediction_store.enabled=false): no feedback")
    if model is None:
        return _error(503, state.not_ready_reason())
    if body.true_label not in model.class_labels:
        known = ", ".join(f"{c.label} ({c.name})" for c in model.schema.classes)
        return _error(
            422, f"true_label {body.true_label} is not a class label; expected one of {known}", "true_label"
        )
    try:
        # Every acknowledged prediction is committed already: no buffer to look in.
        found = state.store.add_feedback(body.prediction_id, body.true_label, time.time())
    except Exception as exc:  # the store is down: the client may retry
        return _error(503, f"prediction store unavailable: {type(exc).__name__}")
    if not found:
        state.metrics.feedback.labels("unknown_prediction").inc()
        return _error(404, f"unknown prediction_id {body.prediction_id!r}", "prediction_id")
    state.metrics.feedback.labels("accepted").inc()
    return _json({"prediction_id": body.prediction_id, "true_label": body.true_label, "status": "accepted"})


@router.get(HEALTHZ_PATH, summary="Liveness: the process answers")
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get(
    READYZ_PATH,
    summary="Readiness: a model is loaded",
    responses={200: {"description": "serving"}, **_errors(503)},  # type: ignore[dict-item]
)
async def readyz(request: Request) -> Response:
    state = _state(request)
    model = state.model
    if model is None:
        return _error(503, state.not_ready_reason())
    return _json({"status": "ready", "model_version": model.version, "runtime": model.runtime})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@router.get(
    VERSION_PATH,
    summary="The served model and when it was loaded",
    responses=_errors(503),  # type: ignore[arg-type]
)
async def version(request: Request) -> Response:
    state = _state(request)
    model = state.model
    if model is None:
        return _error(503, state.not_ready_reason())
    return _json(
        {
            "model": model.info(),
            "loaded_at": _iso(model.loaded_at),
            "loaded_at_unix": model.loaded_at,
            "load_seconds": round(model.load_seconds, 3),
            "watching": f"models:/{model.name}@{model.alias}",
            "last_reload_error": state.watcher.last_error if state.watcher else None,
            # Each worker process loads and swaps the champion on its own: this is the one that answered.
            "worker": {"pid": os.getpid(), "workers": state.config.api.workers or 1},
        }
    )


@router.get(
    SCHEMA_PATH,
    summary="The served model's feature schema (the browser form is built from it)",
    responses=_errors(503),  # type: ignore[arg-type]
)
async def feature_schema(request: Request) -> Response:
    state = _state(request)
    model = state.model
    if model is None:
        return _error(503, state.not_ready_reason())
    return _json({**model.schema.to_dict(), "max_batch": state.config.api.max_batch, "model": model.info()})


@router.post(
    ADMIN_RELOAD_PATH,
    summary="Poll the alias now and load the version behind it (bearer token)",
    responses={200: {"description": "poll result"}, **_errors(401, 403, 503)},  # type: ignore[dict-item]
)
async def admin_reload(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    state = _state(request)
    if state.admin_token is None:
        return _error(403, f"admin endpoints are disabled: set {ADMIN_TOKEN_ENV} to enable them")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), state.admin_token.encode()):
        reason = "missing bearer token" if credentials is None else "wrong bearer token"
        return _error(401, reason, "Authorization", {"WWW-Authenticate": "Bearer"})
    if state.watcher is None:
        return _error(503, "this instance serves a fixed model; there is nothing to reload")
    result = await run_in_threadpool(state.watcher.poll_once, True)
    model = state.model
    body = {"result": result, "model": model.info() if model else None}
    if result == "failure":
        return _json({**body, "detail": f"reload failed: {state.watcher.last_error}", "field": None}, 503)
    return _json(body)


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics",
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


_FORM = resources.files("mlstack_api").joinpath("static/index.html")


@router.get("/", summary="Browser prediction form", response_class=HTMLResponse)
async def form() -> HTMLResponse:
    return HTMLResponse(_FORM.read_text(encoding="utf-8"))
