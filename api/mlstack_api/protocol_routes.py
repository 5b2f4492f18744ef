"""Routes of the protocols users already speak: `mlflow models serve`'s and Open Inference Protocol v2.

Each decodes its format into instances (`protocols.py`) and then takes `/predict`'s own path:
the same validation, model, prediction log (answered only once committed) and metrics. Errors use
the protocol's own body shape, plus the predictor's `detail` and `field`.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from mlstack.contract import (
    HEALTH_PATH,
    INVOCATIONS_PATH,
    PING_PATH,
    V2_INFER_PATH,
    V2_LIVE_PATH,
    V2_MODEL_PATH,
    V2_MODEL_READY_PATH,
    V2_READY_PATH,
    V2_SERVER_PATH,
    V2_VERSION_INFER_PATH,
    V2_VERSION_PATH,
    V2_VERSION_READY_PATH,
)
from mlstack.prediction_log import LogRefused
from mlstack_api import API_VERSION
from mlstack_api.model import ServedModel
from mlstack_api.predictions import Unscorable
from mlstack_api.protocols import (
    CSV,
    JSON,
    Decoded,
    decode_mlflow,
    decode_v2,
    mlflow_response,
    v2_model_metadata,
    v2_response,
)
from mlstack_api.request_validation import RequestError, decode_json, model_input
from mlstack_api.routes import predict_and_log, read_body
from mlstack_api.state import ApiState

router = APIRouter()
SERVER_NAME = "mlstack"
MLFLOW_ERROR_CODES = {503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR"}


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _responses(ok: str, error: str, *codes: int) -> dict[str, Any]:
    meaning = {
        400: "not a valid request of this protocol, or a value the model cannot take (`field` names it)",
        404: "no such model (or version) on this server",
        413: "body larger than api.max_body_bytes",
        415: "unsupported content type",
        503: "no model loaded yet, or the prediction log cannot store the predictions (Retry-After)",
    }
    return {
        "200": {"description": ok, "content": _content(ok)},
        **{str(code): {"description": meaning[code], "content": _content(error)} for code in codes},
    }


# ------------------------------------------------------------------------- MLflow scoring protocol


def _mlflow_error(
    status: int, message: str, field: str | None, headers: dict[str, str] | None = None
) -> Response:
    """MLflow's error body (`error_code`, `message`) plus the predictor's `detail` and `field`."""
    code = MLFLOW_ERROR_CODES.get(status, "BAD_REQUEST")
    return _json({"error_code": code, "message": message, "detail": message, "field": field}, status, headers)


@router.post(
    INVOCATIONS_PATH,
    summary="Score rows in `mlflow models serve`'s formats (dataframe_split/records, instances, inputs, CSV)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                **_content("MlflowRequest"),
                CSV: {"schema": {"$ref": "#/components/schemas/MlflowCsv"}},
            },
        },
        "responses": _responses("MlflowResponse", "MlflowError", 400, 413, 415, 503),
    },
)
async def invocations(request: Request) -> Response:
    """A drop-in for `mlflow models serve`'s `/invocations`: the same inputs, `{"predictions": [labels]}`."""
    state = _state(request)
    model = state.model
    if model is None:
        return _mlflow_error(503, state.not_ready_reason(), None)
    api = state.config.api
    try:
        body = await read_body(request, api.max_body_bytes)
        decoded = decode_mlflow(body, request.headers.get("content-type"), model.schema, api.max_batch)
        return _json(mlflow_response(await _serve(request, state, model, decoded)))
    except RequestError as exc:  # MLflow answers invalid input with 400 (BAD_REQUEST), not 422
        return _mlflow_error(400 if exc.status == 422 else exc.status, exc.message, exc.field)
    except LogRefused as refused:
        return _mlflow_error(503, refused.message, None, {"Retry-After": refused.retry_after})


async def _serve(request: Request, state: ApiState, model: ServedModel, decoded: Decoded) -> Any:
    instances, batch = model_input(decoded.instances, model.schema, decoded.locate)
    try:
        return await predict_and_log(request, state, model, instances, batch)
    except Unscorable as exc:
        where = decoded.row(exc.index)
        raise RequestError(422, f"{where}: {exc}", where) from None


async def _ping(request: Request) -> Response:
    state = _state(request)
    if state.model is None:
        return _json({"status": "not ready", "detail": state.not_ready_reason(), "field": None}, 503)
    # `mlflow models serve` answers "\n" labelled application/json; its clients read only the status.
    return _json({"status": "ok"})


router.add_api_route(
    PING_PATH,
    _ping,
    methods=["GET"],
    summary="MLflow's health check: 200 once a model is loaded",
    responses={200: {"description": "a model is loaded"}, 503: {"description": "no model loaded yet"}},
)
router.add_api_route(
    HEALTH_PATH,
    _ping,
    methods=["GET"],
    summary="Same as /ping (MLflow)",
    responses={200: {"description": "a model is loaded"}, 503: {"description": "no model loaded yet"}},
)


# ------------------------------------------------------------------------- Open Inference Protocol v2


def _v2_error(
    status: int, message: str, field: str | None, headers: dict[str, str] | None = None
) -> Response:
    """The protocol's error body (`error`) plus the predictor's `detail` and `field`."""
    return _json({"error": message, "detail": message, "field": field}, status, headers)


def _served(request: Request, model_name: str, model_version: str | None) -> ServedModel | Response:
    """The served model when the path names it, else the protocol's answer (404, or 503 before a load)."""
    state = _state(request)
    expected = state.config.project.registered_model
    if model_name != expected:
        return _v2_error(
            404, f"model {model_name!r} not found; this server serves {expected!r}", "model_name"
        )
    model = state.model
    if model is None:
        return _v2_error(503, state.not_ready_reason(), None)
    if model_version is not None and model_version != model.version:
        return _v2_error(
            404,
            f"version {model_version!r} of {model_name!r} is not served; it serves version {model.version!r}",
            "model_version",
        )
    return model


@router.get(V2_LIVE_PATH, summary="Open Inference Protocol: the server is live")
async def v2_live() -> Response:
    return _json({"live": True})


@router.get(
    V2_READY_PATH,
    summary="Open Inference Protocol: the server is ready (a model is loaded); 400 when not",
    responses={200: {"description": "ready"}, 400: {"description": "not ready yet"}},
)
async def v2_ready(request: Request) -> Response:
    state = _state(request)
    if state.model is None:  # the protocol answers "not ready" with a 4xx
        return _json({"ready": False, "error": state.not_ready_reason()}, 400)
    return _json({"ready": True})


@router.get(V2_SERVER_PATH, summary="Open Inference Protocol: server metadata")
async def v2_server() -> Response:

    return _json({"name": SERVER_NAME, "version": API_VERSION, "extensions": []})


async def _model_metadata(request: Request, model_name: str, model_version: str | None = None) -> Response:
    served = _served(request, model_name, model_version)
    return served if isinstance(served, Response) else _json(v2_model_metadata(served))


async def _model_ready(request: Request, model_name: str, model_version: str | None = None) -> Response:
    served = _served(request, model_name, model_version)
    if isinstance(served, Response):
        if (
            served.status_code == 503
        ):  # known model, not loaded yet: "not ready" (a 4xx, as the protocol says)
            return _json(
                {"name": model_name, "ready": False, "error": _state(request).not_ready_reason()}, 400
            )
        return served
    return _json({"name": served.name, "ready": True})


async def _infer(request: Request, model_name: str, model_version: str | None = None) -> Response:
    served = _served(request, model_name, model_version)
    if isinstance(served, Response):
        return served
    state = _state(request)
    api = state.config.api
    try:
        payload = decode_json(await read_body(request, api.max_body_bytes))
        decoded = decode_v2(payload, served.schema, api.max_batch)
        return _json(v2_response(served, await _serve(request, state, served, decoded), decoded.extra))
    except RequestError as exc:  # the protocol answers a failed inference request with 400
        return _v2_error(400 if exc.status == 422 else exc.status, exc.message, exc.field)
    except LogRefused as refused:
        return _v2_error(503, refused.message, None, {"Retry-After": refused.retry_after})


_METADATA_RESPONSES = _responses("V2ModelMetadata", "V2Error", 404, 503)
_READY_RESPONSES = {
    200: {"description": "ready"},
    400: {"description": "not ready yet"},
    404: {"description": "no such model"},
}
_INFER_EXTRA = {
    "requestBody": {"required": True, "content": _content("V2InferenceRequest")},
    "responses": _responses("V2InferenceResponse", "V2Error", 400, 404, 413, 503),
}
for path, version in ((V2_MODEL_PATH, False), (V2_VERSION_PATH, True)):
    suffix = " (this version)" if version else ""
    router.add_api_route(
        path,
        _model_metadata,
        methods=["GET"],
        summary=f"Open Inference Protocol: model metadata{suffix}",
        openapi_extra={"responses": _METADATA_RESPONSES},
    )
for path, version in ((V2_MODEL_READY_PATH, False), (V2_VERSION_READY_PATH, True)):
    router.add_api_route(
        path,
        _model_ready,
        methods=["GET"],
        summary="Open Inference Protocol: the model is ready" + (" (this version)" if version else ""),
        responses=_READY_RESPONSES,  # type: ignore[arg-type]
    )
for path, version in ((V2_INFER_PATH, False), (V2_VERSION_INFER_PATH, True)):
    router.add_api_route(
        path,
        _infer,
        methods=["POST"],
        summary="Open Inference Protocol: inference" + (" (this version)" if version else ""),
        openapi_extra=_INFER_EXTRA,
    )
