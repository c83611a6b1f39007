"""New model versions without a redeploy: poll the source, load a new version in the
background, check it as start-up does, swap it in, or refuse it and keep the old one.

Each worker process runs its own watcher (they are forked from one parent but poll, load and
swap on their own); a refused version is remembered until the source changes again, so a bad
artifact costs one log line, not one per poll.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from model_deployment_app import storage
from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import StartupError
from model_deployment_app.handler import DataPlane
from model_deployment_app.predictor import LoadedModel, load_model
from model_deployment_app.settings import Settings

log = logging.getLogger(__name__)

Outcome = Literal["unchanged", "loaded", "refused"]


@dataclass
class ReloadResult:
    outcome: Outcome
    version: str  # the version serving after the check
    error: str | None = None


class ModelWatcher:
    def __init__(
        self,
        plane: DataPlane,
        config: ModelConfig,
        settings: Settings,
        load: Callable[[ModelConfig], LoadedModel] | None = None,
    ) -> None:
        """`load`: how a version is loaded (default `load_model`; a pool measures it)."""
        self.plane = plane
        self.config = config
        self.settings = settings
        self.load = load or (lambda config: load_model(config, settings))
        self.refused_token: str | None = None
        self._lock = asyncio.Lock()

    @property
    def refresh_seconds(self) -> float | None:
        return self.config.model.refresh_seconds

    async def run(self) -> None:
        """Check every `refreshSeconds` for as long as the server runs."""
        assert self.refresh_seconds is not None
        while True:
            await asyncio.sleep(self.refresh_seconds)
            if not self.plane.ready:  # still loading the first version
                continue
            try:
                await self.check()
            except Exception as error:  # a watcher that dies would stop every future version
                log.warning("model refresh check failed: %s: %s", type(error).__name__, error)

    async def check(self, force: bool = False) -> ReloadResult:
        """Load and swap in the source's current version if it is new (or, with `force`,
        whatever it is); refuse it, keeping the current one, if it does not pass."""
        async with self._lock:
            current = self.plane.require_model()
            metrics = self.plane.metrics
            try:
                token = await asyncio.to_thread(
                    storage.probe,
                    self.config.model,
                    self.settings.server.load_timeout_seconds,
                    folder=self.config.is_folder,
                )
            except StartupError as error:
                log.warning("cannot check %s for a new version: %s", self.config.name, error)
                return ReloadResult("unchanged", current.version, str(error))
            if not force and token in (current.source_token, self.refused_token):
                return ReloadResult("unchanged", current.version)
            try:
                candidate = await asyncio.to_thread(self.load, self.config)
            except StartupError as error:
                self.refused_token = token
                metrics.model_reload_failures.inc()
                log.warning(
                    "refused a new version of %s (source version %s): %s; still serving %s",
                    self.config.name, token, error, current.version,
                )  # fmt: skip
                return ReloadResult("refused", current.version, str(error))
            if candidate.sha256 == current.sha256:  # touched, not changed
                current.source_token = candidate.source_token
                return ReloadResult("unchanged", current.version)
            self.plane.set_model(candidate)
            self.refused_token = None
            metrics.model_reloads.inc()
            log.info(
                "now serving version %s of %s (was %s)",
                candidate.version, self.config.name, current.version,
            )  # fmt: skip
            return ReloadResult("loaded", candidate.version)
