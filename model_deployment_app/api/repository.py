"""The model repository extension, as MLServer and Triton name it: the index of the models
served and their states (read-only: it follows the API tokens), and the load call (admin):
reload a model from its source now, without waiting for the next `refreshSeconds` poll."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from model_deployment_app import v2
from model_deployment_app.api.body import json_response
from model_deployment_app.api.errors import documented_errors
from model_deployment_app.repository import Repository


def repository_router(repository: Repository) -> APIRouter:
    router = APIRouter(prefix="/v2/repository", tags=["v2"])

    @router.post("/index", responses=documented_errors(401, 429))
    async def index() -> Response:
        """Every model served, with its state (READY, LOADING, UNAVAILABLE) and the reason."""
        return json_response(repository.index())

    @router.post("/models/{name}/load", responses=documented_errors(401, 403, 404, 409, 429, 503))
    async def load(request: Request, name: str) -> Response:
        """Load the source's current version of the model now (a no-op when it is the one
        serving); 409, with the old version still serving, when the new one is refused."""
        plane = repository.for_v2(request.scope, name)
        result = await v2.load(plane, repository.watchers.get(plane.name), name)
        return json_response(
            {"name": name, "version": result.version, "loaded": result.outcome == "loaded"}
        )

    return router
