"""The framework's ceiling: the predictor's server stack with no work behind it, for `make bench`.

FastAPI on the uvicorn command line the predictor uses (benchmarks/serving.py swaps only the app),
reading and parsing the same JSON body with the same parser (orjson), then answering a constant.
Our predictor's req/s as a share of this app's says how much of the budget validation, inference
and the durable prediction log take, and how much is HTTP and ASGI that no handler code can save.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(title="bare app (benchmark ceiling)", docs_url=None, redoc_url=None, openapi_url=None)
ANSWER = orjson.dumps({"predictions": [{"label": 0}]})


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Parse the body (as the predictor does) and answer a constant."""
    payload = orjson.loads(await request.body())
    if not isinstance(payload, dict) or "instances" not in payload:
        return Response(b'{"detail": "no instances"}', status_code=422, media_type="application/json")
    return Response(ANSWER, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status": "ok"}', media_type="application/json")
