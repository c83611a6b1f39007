"""The models a server serves, by name: its one model, or a pool's. Every route asks this which
model a request is for (from the `/<name>` prefix the fast path took off, or V2's own name)
and nothing else resolves a name."""

from collections.abc import Mapping
from typing import Any

from model_deployment_app.api.middleware import MODEL_KEY
from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import ModelNotFound
from model_deployment_app.handler import DataPlane
from model_deployment_app.lifecycle import ModelWatcher
from model_deployment_app.pool import ModelPool
from model_deployment_app.settings import Settings


class Repository:
    def __init__(
        self,
        planes: Mapping[str, DataPlane],
        configs: Mapping[str, ModelConfig],
        watchers: Mapping[str, ModelWatcher],
        pool: ModelPool | None = None,
    ) -> None:
        self.planes = dict(planes)
        self.configs = dict(configs)  # where each model comes from (none for a model given)
        self.watchers = dict(watchers)
        self.pool = pool
        self.only = next(iter(self.planes.values())) if pool is None else None
        # The path prefixes the fast path takes off: a pool's model names.
        self.prefixes = frozenset(self.planes) if pool is not None else frozenset()

    @property
    def settings(self) -> Settings:
        return next(iter(self.planes.values())).settings

    @property
    def ready(self) -> bool:
        """The server's readiness: its model loaded; a pool's every model loaded once
        (those that did not fit load on demand)."""
        if self.only is not None:
            return self.only.ready
        assert self.pool is not None
        return self.pool.started

    def version_of(self, name: str) -> str:
        """The version `name` serves now ("" when none): a refused request's record."""
        plane = self.planes.get(name)
        model = plane.model if plane is not None else None
        return model.version if model is not None else ""

    def _unknown(self, name: str) -> ModelNotFound:
        names = sorted(self.planes)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return ModelNotFound(f"model {name!r} not found; this pool serves {shown}")

    def named(self, name: str) -> DataPlane:
        """The model V2 names (`/v2/models/<name>`, gRPC `model_name`). A one-model server
        answers with its model, whose own name the V2 layer then checks (one message)."""
        if self.only is not None:
            return self.only
        plane = self.planes.get(name)
        if plane is None:
            raise self._unknown(name)
        return plane

    def for_scope(self, scope: Mapping[str, Any]) -> DataPlane:
        """The model of a route that names none (`/predict`, the playground): the one model,
        or in a pool the one whose `/<name>` prefix the request came under."""
        if self.only is not None:
            return self.only
        name = scope.get(MODEL_KEY)
        if name is None:
            raise ModelNotFound(
                f"this server is a pool of {len(self.planes)} models: each answers under its "
                f"name, e.g. /{next(iter(self.planes))}/predict (POST /v2/repository/index "
                "lists them)"
            )
        return self.planes[name]

    def for_v2(self, scope: Mapping[str, Any], name: str) -> DataPlane:
        """The model a V2 route names, under a pool's `/<prefix>` only its own."""
        prefix = scope.get(MODEL_KEY)
        if prefix is not None and prefix != name:
            raise ModelNotFound(f"model {name!r} not found under /{prefix}: its path is /{name}")
        return self.named(name)

    def index(self) -> list[dict[str, str]]:
        """The repository extension's index: every model, its state and why."""
        if self.pool is not None:
            return [self.pool.index_entry(plane) for plane in self.planes.values()]
        plane = self.only
        assert plane is not None
        model = plane.model
        if model is not None:
            entry = {"name": model.name, "version": model.version, "state": "READY", "reason": ""}
        elif plane.load_error is not None:
            entry = {"name": plane.name, "version": "", "state": "UNAVAILABLE",
                     "reason": plane.load_error}  # fmt: skip
        else:
            entry = {"name": plane.name, "version": "", "state": "LOADING", "reason": "loading"}
        return [entry]
