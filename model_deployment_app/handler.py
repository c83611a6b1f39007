"""The protocol-neutral request handler: cache, batch, predict.

The plain REST routes and the V2 routes both decode their payload into the model input (a
float64 array, or a `Table` of named columns) with a codec and call `DataPlane.infer`;
everything after decoding happens here, once.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model_deployment_app.batching import Batcher
from model_deployment_app.cache import PredictionCache
from model_deployment_app.errors import NotReady, PredictionFailed
from model_deployment_app.inputs import ModelInput, row_keys
from model_deployment_app.metrics import Metrics
from model_deployment_app.predictor import LoadedModel
from model_deployment_app.settings import Settings

log = logging.getLogger(__name__)


class DataPlane:
    def __init__(self, settings: Settings, metrics: Metrics, cache: PredictionCache | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cache = cache
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mda-predict")
        self._batcher = Batcher(
            self._call_model,
            self._executor,
            max_rows=settings.batching.max_batch_size,
            max_delay_seconds=settings.batching.max_batch_delay_ms / 1000,
            observe=metrics.observe_batch,
        )
        self._key_prefixes: dict[str, bytes] = {}

    @property
    def ready(self) -> bool:
        return self.model is not None

    def set_model(self, model: LoadedModel) -> None:
        self.model = model
        tag = f"mda:{model.sha256}:{model.schema.fingerprint}"
        self._key_prefixes = {o: f"{tag}:{o}:".encode() for o in model.outputs}
        self.metrics.model_load_seconds.set(model.load_seconds)
        self.metrics.model_ready.set(1)

    def require_model(self) -> LoadedModel:
        if self.model is None:
            raise NotReady(self.load_error or "the model is still loading; try again shortly")
        return self.model

    def _call_model(self, output: str, rows: ModelInput) -> np.ndarray:
        assert self.model is not None
        return self.model.run(output, rows)

    async def _compute(self, output: str, rows: ModelInput) -> np.ndarray:
        try:
            return await self._batcher.predict(output, rows)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("prediction failed")
            raise PredictionFailed(f"prediction failed: {type(error).__name__}: {error}") from None

    async def infer(self, rows: ModelInput, output: str) -> np.ndarray:
        """The model's `output` for each row of `rows`, from the cache where it can."""
        model = self.require_model()
        model.check_output(output)
        if self.cache is None:
            return await self._compute(output, rows)
        prefix = self._key_prefixes[output]
        keys = row_keys(rows, prefix)
        cached = await self.cache.get_many(keys)
        missing = [i for i, value in enumerate(cached) if value is None]
        self.metrics.cache_hits.inc(len(rows) - len(missing))
        if not missing:
            if len(cached) == 1:  # the common single-row request: skip np.stack
                return np.expand_dims(cached[0], 0)  # type: ignore[arg-type]
            return np.stack(cached)  # type: ignore[arg-type]
        self.metrics.cache_misses.inc(len(missing))
        if len(missing) == len(rows):
            computed = await self._compute(output, rows)
            self.cache.set_many(keys, computed)
            return computed
        computed = await self._compute(output, rows[missing])
        self.cache.set_many([keys[i] for i in missing], computed)
        for position, index in enumerate(missing):
            cached[index] = computed[position]
        return np.stack(cached)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._batcher.close()
        if self.cache is not None:
            await self.cache.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
