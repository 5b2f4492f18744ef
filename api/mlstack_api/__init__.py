"""The mlstack predictor: a FastAPI service (`python -m mlstack_api` serves `mlstack_api.main:app`)."""

API_VERSION = "1.0.0"  # the HTTP API's version (OpenAPI document, Open Inference Protocol server metadata)
