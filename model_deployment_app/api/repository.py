"""The model repository extension's load call, as MLServer and Triton name it: reload the
served model from its source now, without waiting for the next `refreshSeconds` poll."""

from fastapi import APIRouter
from starlette.responses import Response

from model_deployment_app import v2
from model_deployment_app.api.body import json_response
from model_deployment_app.api.errors import documented_errors
from model_deployment_app.errors import ModelNotFound, ReloadRefused
from model_deployment_app.handler import DataPlane
from model_deployment_app.lifecycle import ModelWatcher


def repository_router(plane: DataPlane, watcher: ModelWatcher | None) -> APIRouter:
    router = APIRouter(prefix="/v2/repository", tags=["v2"])

    @router.post("/models/{name}/load", responses=documented_errors(401, 403, 404, 409, 429, 503))
    async def load(name: str) -> Response:
        """Load the source's current version of the model now (a no-op when it is the one
        serving); 409, with the old version still serving, when the new one is refused."""
        v2.model_for(plane, name)
        if watcher is None:
            raise ModelNotFound(f"model {name!r} has no source to reload from")
        result = await watcher.check(force=True)
        if result.outcome == "refused":
            raise ReloadRefused(
                f"the new version was refused: {result.error}; still serving {result.version}"
            )
        return json_response(
            {"name": name, "version": result.version, "loaded": result.outcome == "loaded"}
        )

    return router
