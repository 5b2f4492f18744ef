"""The predictor app: `create_app()` builds it; `app` is what uvicorn serves (`mlstack_api.main:app`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mlstack.config import Config, load_config
from mlstack.logs import configure_package_logging
from mlstack_api import API_VERSION
from mlstack_api.metrics import RequestMetricsMiddleware
from mlstack_api.model import ServedModel
from mlstack_api.protocol_routes import router as protocol_router
from mlstack_api.protocols import protocol_components
from mlstack_api.request_validation import openapi_components
from mlstack_api.routes import Refused, refused_response, router
from mlstack_api.state import ApiState, admin_token_from_env, feedback_token_from_env

log = logging.getLogger(__name__)
_FROM_ENV = object()


def _configure_logging() -> None:
    """Send the project's INFO logs to stderr when nothing else (uvicorn only sets its own) does."""
    configure_package_logging("mlstack", "mlstack_api")


def create_app(
    config: Config | None = None,
    *,
    model: ServedModel | None = None,
    admin_token: str | object | None = _FROM_ENV,
    feedback_token: str | object | None = _FROM_ENV,
) -> FastAPI:
    """Build the predictor.

    Nothing is loaded here: the lifespan opens the prediction store and starts the model
    watcher, so importing the module (uvicorn, tests) is cheap and needs no MLflow.

    Args:
        config: the effective config; `load_config()` (file + env) when None.
        model: serve this fixed model instead of following the registry alias (unit tests).
        admin_token: bearer token for /admin/reload; read from $MLSTACK_ADMIN_TOKEN by default.
        feedback_token: bearer token for /feedback; read from $MLSTACK_FEEDBACK_TOKEN by default.
    """
    _configure_logging()
    config = config or load_config()
    token = admin_token_from_env() if admin_token is _FROM_ENV else admin_token
    state = ApiState(config, token if isinstance(token, str) and token else None, fixed_model=model)
    labels = feedback_token_from_env() if feedback_token is _FROM_ENV else feedback_token
    state.feedback_token = labels if isinstance(labels, str) and labels else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(
        title="mlstack predictor",
        version=API_VERSION,
        description=(
            f"Serves `models:/{config.project.registered_model}@{config.project.champion_alias}`. "
            "The request schema of POST /predict is derived from the served model's feature schema."
        ),
        lifespan=lifespan,
    )
    app.state.api = state
    app.include_router(router)
    app.include_router(protocol_router)
    static_dir = resources.files("mlstack_api").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    app.add_middleware(RequestMetricsMiddleware, metrics=state.metrics, current_version=state.model_version)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Refused, refused_response)
    _install_openapi(app, state)
    return app


async def _validation_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's body validation errors in the API's one error shape: `{detail, field}`."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(location) or "body"
    message = first.get("msg", "invalid request")
    return Response(
        orjson.dumps({"detail": f"{field}: {message}", "field": field}), 422, media_type="application/json"
    )


def _install_openapi(app: FastAPI, state: ApiState) -> None:
    """Describe /predict with the served model's features; rebuilt when the served version changes."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        model = state.model
        key = model.version if model else None
        if cache.get("key") != key or "doc" not in cache:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            schema = model.schema if model else None
            components.update(openapi_components(schema, state.config.api.max_batch))
            components.update(protocol_components(schema, state.config.api.max_batch))
            served_version = model.version if model else None
            _name_path_parameters(doc, state.config.project.registered_model, served_version)
            if model is not None:  # the labels /feedback accepts are the served model's
                feedback = components["FeedbackRequest"]["properties"]["true_label"]
                feedback["enum"] = list(model.class_labels)
            cache.update(key=key, doc=doc)
        document: dict[str, Any] = cache["doc"]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _name_path_parameters(doc: dict[str, Any], model_name: str, version: str | None) -> None:
    """The v2 routes' `{model_name}` (and `{model_version}`) can only be the served model's."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "model_name":
                    parameter["schema"] = {"type": "string", "enum": [model_name]}
                elif parameter.get("name") == "model_version" and version is not None:
                    parameter["schema"] = {"type": "string", "enum": [version]}


app = create_app()
