"""The reference: what a small hand-written prediction server does, in Starlette + orjson.

Parse `{"instances": [[...]]}` (or records, `[{...}]`, as `pd.DataFrame(records)`), call
`predict_proba` once per request, reply with the probabilities: no validation, no cache, no
batching. The model path comes from `REFERENCE_MODEL_PATH`.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_model: Any = None


async def predict(request: Request) -> Response:
    instances = orjson.loads(await request.body())["instances"]
    if isinstance(instances[0], dict):
        rows: Any = pd.DataFrame(instances)
    else:
        rows = np.asarray(instances, dtype=np.float64)
    body = {"predictions": _model.predict_proba(rows).tolist(), "classes": _model.classes_.tolist()}
    return Response(orjson.dumps(body), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(status_code=200)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global _model
    _model = joblib.load(os.environ["REFERENCE_MODEL_PATH"])
    yield


app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
    ],
    lifespan=lifespan,
)
