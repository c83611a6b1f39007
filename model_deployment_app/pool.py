"""A model pool: many models in one server within a memory budget (a config of `models:`).

At start every model is loaded once, one at a time, and what each adds to the process's
resident memory is measured (a load that imports modules is made twice, so the libraries it
imports are not counted as the model's own). Those that fit stay loaded, in config
order; the rest load on their first request. Loading a model that would not fit first unloads
the least recently used ones, and their freed pages go back to the system (`memory.give_back`).
Loads run one at a time; requests for a model being loaded share its load.

With several workers the budget is the pod's: each worker holds its own models within
budget / workers (what the parent loaded before the fork is shared copy-on-write until a
worker drops it, and the parent lets go of every model once its workers run).
"""

import asyncio
import logging
import sys
from collections.abc import Iterator
from functools import partial

from model_deployment_app.cache import PredictionCache, build_cache
from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import NotReady, StartupError
from model_deployment_app.handler import DataPlane
from model_deployment_app.memory import container_memory_limit, give_back, resident_bytes
from model_deployment_app.metrics import Metrics
from model_deployment_app.predictor import LoadedModel, load_model
from model_deployment_app.settings import Settings

log = logging.getLogger(__name__)

# A model loaded on demand is compiled once it has answered this many requests: a conversion
# costs a core for tens of milliseconds, more than a model asked now and then ever gains.
COMPILE_AFTER_REQUESTS = 100


def mebibytes(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def pod_budget(settings: Settings) -> int | None:
    """`MDA_MEMORY_BUDGET`, else half the container's memory limit, else none."""
    if settings.pool.memory_budget is not None:
        return settings.pool.memory_budget
    limit = container_memory_limit()
    return limit // 2 if limit else None


class ModelPool:
    def __init__(
        self,
        configs: tuple[ModelConfig, ...],
        settings: Settings,
        metrics: Metrics | None = None,
        cache: PredictionCache | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics = metrics or Metrics()
        self.cache = cache = cache or build_cache(settings.cache, settings.server.workers)
        self.configs = {config.name: config for config in configs}
        self.planes = {c.name: DataPlane(settings, metrics, cache, c.name) for c in configs}
        for name, plane in self.planes.items():
            plane.on_demand = partial(self._on_demand, name)
            plane.on_grown = partial(self._grown, name)
        self.budget = pod_budget(settings)
        self.worker_budget = self.budget // settings.server.workers if self.budget else None
        self.sizes: dict[str, int] = {}  # each model's footprint, as last measured
        self.started = False  # every model loaded once, and those that fit kept
        self._loads: dict[str, asyncio.Future[LoadedModel]] = {}
        self._lock: asyncio.Lock | None = None

    # --- start-up: size every model, keep what fits -------------------------------------

    def start(self) -> None:
        """Load each model once and measure it; keep those that fit. A model that cannot
        load is unavailable (alone); one bigger than the budget stops the pool."""
        for name, config in self.configs.items():
            plane = self.planes[name]
            try:
                model = self.measured_load(config)
            except StartupError as error:
                plane.load_error = f"model {name!r} cannot be served: {error}"
                log.error("%s", plane.load_error)
                continue
            size = model.memory_bytes
            if self.budget is not None and size > self.worker_budget:  # type: ignore[operator]
                share = "" if self.budget == self.worker_budget else " per worker"
                raise StartupError(
                    f"model {name!r} takes {mebibytes(size)}, more than the pool's memory budget "
                    f"of {mebibytes(self.worker_budget)}{share} (MDA_MEMORY_BUDGET): raise the "  # type: ignore[arg-type]
                    "budget, or serve that model on its own"
                )
            if self.worker_budget is None or self.loaded_bytes() + size <= self.worker_budget:
                plane.set_model(model)
                plane.metrics.model_loads.inc()
            else:
                del model
                give_back()
        self.started = True
        log.info(
            "pool of %d models: %d loaded (%s of %s), the rest load on demand",
            len(self.planes), sum(p.ready for p in self.planes.values()),
            mebibytes(self.loaded_bytes()),
            "no budget" if self.worker_budget is None else mebibytes(self.worker_budget),
        )  # fmt: skip

    def measured_load(self, config: ModelConfig) -> LoadedModel:
        """`load_model`, and the resident memory it added (remembered as its size). A load
        that imported modules (the first model of a family, or of a class no model before
        it used) is made again, so that what the imports hold is not counted as its own."""
        model, size, imported = self._sized_load(config)
        if imported:
            del model
            model, size, _ = self._sized_load(config)
        model.memory_bytes = self.sizes[config.name] = size
        return model

    def _sized_load(self, config: ModelConfig) -> tuple[LoadedModel, int, bool]:
        """A load, the resident memory it added, and whether it imported modules."""
        give_back()
        modules, before = len(sys.modules), resident_bytes()
        model = load_model(config, self.settings)
        return model, max(0, resident_bytes() - before), len(sys.modules) != modules

    def release(self) -> None:
        """Let go of every model (the parent of pre-forked workers, once they hold them)."""
        for plane in self.planes.values():
            plane.unload()
        give_back()

    # --- serving -------------------------------------------------------------------------

    def loaded(self) -> Iterator[DataPlane]:
        return (plane for plane in self.planes.values() if plane.model is not None)

    def loaded_bytes(self) -> int:
        return sum(plane.footprint for plane in self.loaded())

    def loading(self, name: str) -> bool:
        return name in self._loads or (not self.started and name not in self.sizes)

    async def _on_demand(self, name: str) -> LoadedModel:
        """The model, loaded if it is not; every request for it meanwhile waits for that one
        load, within the load timeout."""
        future = self._loads.get(name)
        if future is None:
            future = asyncio.ensure_future(self._bring_in(name))
            self._loads[name] = future
            future.add_done_callback(lambda _: self._loads.pop(name, None))
        timeout = self.settings.server.load_timeout_seconds
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise NotReady(
                f"model {name!r} is still loading after {timeout:g}s (MDA_LOAD_TIMEOUT_SECONDS)"
            ) from None

    async def _bring_in(self, name: str) -> LoadedModel:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one load at a time: room is made, then filled
            plane = self.planes[name]
            if plane.model is not None:
                return plane.model
            if self._make_room(self.sizes.get(name, 0), keep=name):
                await asyncio.to_thread(give_back, False)
            try:
                model = await asyncio.to_thread(load_model, self.configs[name], self.settings)
            except StartupError as error:
                log.warning("cannot load model %r on demand: %s", name, error)
                raise NotReady(f"model {name!r} cannot be loaded now: {error}") from None
            # Its size as measured when nothing else ran (at start, or when its version
            # changed): the resident memory of a load among requests says more about them.
            model.memory_bytes = self.sizes.get(name, 0)
            plane.set_model(model, compile_after=COMPILE_AFTER_REQUESTS)
            plane.metrics.model_loads.inc()
            log.info("loaded model %r on demand (%s)", name, mebibytes(model.memory_bytes))
            return model

    def _grown(self, name: str) -> None:
        """A model's compiled engine came in (on the serving loop): the least recently used
        others make room for it, as for a load."""
        if self._make_room(0, keep=name):
            asyncio.get_running_loop().run_in_executor(None, give_back, False)

    def _make_room(self, needed: int, keep: str) -> bool:
        """Unload the least recently used models (never `keep`) until `needed` more bytes
        fit; whether any was unloaded."""
        budget = self.worker_budget
        if budget is None:
            return False
        total = self.loaded_bytes()
        unloaded = False
        for plane in sorted(self.loaded(), key=lambda p: p.last_used):
            if total + needed <= budget:
                break
            if plane.name == keep:
                continue
            total -= plane.footprint
            plane.unload()
            plane.metrics.model_evictions.inc()
            unloaded = True
            log.info("unloaded model %r to make room (memory budget)", plane.name)
        return unloaded

    def index_entry(self, plane: DataPlane) -> dict[str, str]:
        """The repository index's entry for one model: its state and why."""
        name = plane.name
        model = plane.model
        version = model.version if model is not None else ""
        if model is not None:
            return {"name": name, "version": version, "state": "READY", "reason": ""}
        if plane.load_error is not None:
            return {"name": name, "version": "", "state": "UNAVAILABLE", "reason": plane.load_error}
        if self.loading(name):
            return {"name": name, "version": "", "state": "LOADING", "reason": "loading"}
        return {
            "name": name, "version": "", "state": "UNAVAILABLE",
            "reason": "unloaded (memory budget): it loads on its next request",
        }  # fmt: skip

    async def close(self) -> None:
        for plane in self.planes.values():
            await plane.stop()
