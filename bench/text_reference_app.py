"""The reference for text models: what the DistilBERT sentiment API does.

A `transformers.pipeline("text-classification")` built once, called per request from a
worker thread (as a FastAPI `def` endpoint is), `{"text": [...]}` in, every label's score
out: no cache, no batching across requests. The folder comes from `TEXT_MODEL_PATH`.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_classifier: Any = None


async def predict(request: Request) -> Response:
    texts = orjson.loads(await request.body())["text"]
    scores = await run_in_threadpool(_classifier, texts, top_k=None, truncation=True)
    return Response(orjson.dumps({"predictions": scores}), media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(status_code=200)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global _classifier
    from transformers import pipeline

    _classifier = pipeline("text-classification", model=os.environ["TEXT_MODEL_PATH"])
    yield


app = Starlette(
    routes=[Route("/predict", predict, methods=["POST"]), Route("/v2/health/ready", ready)],
    lifespan=lifespan,
)
