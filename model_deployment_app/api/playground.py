"""The playground: a page at `/` where a person tries the model, and the facts it is drawn
from. The page is one self-contained file shipped in the package (no script, style or font
from another host); it asks `playground/model` for the model's inputs, classes and examples,
and `predict` for answers, with relative URLs, so it works under any prefix."""

from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app.api.body import json_response
from model_deployment_app.config import ModelConfig
from model_deployment_app.handler import DataPlane
from model_deployment_app.repository import Repository


@cache
def page() -> bytes:
    return files("model_deployment_app.playground").joinpath("index.html").read_bytes()


async def model_facts(plane: DataPlane, config: ModelConfig | None) -> dict[str, Any]:
    """What the page draws its form from."""
    model = await plane.acquire()
    schema = model.schema
    return {
        "name": model.name,
        "version": model.version,
        "job": model.job,
        "layout": schema.layout,
        "width": schema.width,
        "inputs": [{"name": c.name, "datatype": c.datatype} for c in schema],
        "classes": model.classes,
        "examples": list(config.examples or ()) if config is not None else [],
    }


def playground_router(repository: Repository) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def playground() -> Response:
        return Response(
            page(),
            media_type="text/html; charset=utf-8",
            headers={
                # The page runs only its own inline script and style, and talks only to
                # this server: nothing is fetched from another host.
                "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "Cache-Control": "no-cache",
            },
        )

    @router.get("/playground/model")
    async def facts(request: Request) -> Response:
        plane = repository.for_scope(request.scope)
        return json_response(await model_facts(plane, repository.configs.get(plane.name)))

    return router
