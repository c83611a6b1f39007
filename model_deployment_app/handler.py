"""The protocol-neutral request handler: cache, batch, predict.

The plain REST routes and the V2 routes both decode their payload into the model input (a
float64 array, or a `Table` of named columns) with a codec and call `DataPlane.infer`;
everything after decoding happens here, once.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model_deployment_app.batching import Batcher
from model_deployment_app.cache import PredictionCache
from model_deployment_app.errors import InvalidInput, NotReady, PredictionFailed
from model_deployment_app.inputs import ModelInput, row_keys
from model_deployment_app.memory import resident_bytes
from model_deployment_app.metrics import Metrics
from model_deployment_app.payload_log.exchange import CURRENT
from model_deployment_app.predictor import LoadedModel
from model_deployment_app.settings import Settings
from model_deployment_app.tracing import Tracing

log = logging.getLogger(__name__)

# scikit-learn calls quicker than this run on the event loop (see `batching`): a millisecond's
# wait at most for the requests behind it, less than one GIL switch interval (5 ms).
INLINE_CALL_SECONDS = 0.001

# One conversion at a time in a process: a pool's models never all convert at once, and the
# memory each engine adds is measured on its own.
_COMPILING = threading.Lock()

OnDemand = Callable[[], Awaitable[LoadedModel]]


class DataPlane:
    """One model's serving: its slot (the version serving), its batcher and model thread.
    The cache and the metrics registry are the server's, shared by every model it serves."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        cache: PredictionCache | None,
        name: str = "model",
    ) -> None:
        self.settings = settings
        self.name = name
        self.metrics = metrics.of(name)
        self.cache = cache
        self.track = settings.server.track
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        self.on_demand: OnDemand | None = None  # a pool's loader, for a model not loaded now
        self.on_grown: Callable[[], None] | None = None  # a pool's, once an engine is compiled
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop (on_grown's)
        self.last_used = 0.0  # monotonic seconds of the last request (a pool's LRU order)
        self.engine_bytes = 0  # what the compiled engine of the model serving added
        self.compile_countdown = 0  # requests before the model serving is compiled (0: now)
        self._tracing: Tracing | None = None
        self._serving = False  # set in the process that serves (a pre-forked worker)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mda-predict")
        self._batcher = Batcher(
            self._call_model,
            self._executor,
            max_rows=settings.batching.max_batch_size,
            max_delay_seconds=settings.batching.max_batch_delay_ms / 1000,
            observe=self._observe_batch,
            inline_below_seconds=INLINE_CALL_SECONDS,
            inline=self._may_inline,
        )

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def loadable(self) -> bool:
        """Loaded, or a pool loads it on its next request."""
        return self.model is not None or (self.on_demand is not None and self.load_error is None)

    @property
    def footprint(self) -> int:
        """Memory the model serving holds: its objects, and its compiled engine."""
        model = self.model
        return 0 if model is None else model.memory_bytes + self.engine_bytes

    def set_model(self, model: LoadedModel, compile_after: int = 0) -> None:
        """Serve `model` from now on: one reference swap. Requests already under way keep the
        model they started with (they hold it); cache keys carry each model's digest.
        `compile_after`: compile it only once it has answered that many requests (a pool's
        model loaded on demand: a model asked once need not cost a conversion)."""
        previous, self.model = self.model, model
        self.load_error = None
        self.metrics.model_load_seconds.set(model.load_seconds)
        self.metrics.model_ready.set(1)
        if previous is not None and previous.version != model.version:
            self.metrics.serving(previous.version, self.track, 0)
            self.metrics.engine(previous.version, previous.engine_name, 0)
        self.metrics.serving(model.version, self.track, 1)
        self.metrics.engine(model.version, model.engine_name, 1)
        if previous is not None and previous.version != model.version:
            self.engine_bytes = 0
        self.metrics.model_memory.set(self.footprint)
        self.compile_countdown = compile_after if model.compiler is not None else 0
        if self._serving and not self.compile_countdown:
            self._compile(model)

    def unload(self) -> None:
        """Stop serving the model (a pool making room): requests under way finish with it,
        and its memory is freed once they have."""
        model, self.model = self.model, None
        if model is None:
            return
        model.compiler = None  # a conversion not yet run never will
        self.metrics.model_ready.set(0)
        self.metrics.serving(model.version, self.track, 0)
        self.metrics.engine(model.version, model.engine_name, 0)
        self.engine_bytes = 0
        self.metrics.model_memory.set(0)

    async def acquire(self) -> LoadedModel:
        """The model serving now; in a pool, loaded first if it is not (the request waits)."""
        model = self.model
        if model is None:
            if self.on_demand is None or self.load_error is not None:
                raise NotReady(self.load_error or "the model is still loading; try again shortly")
            model = await self.on_demand()
        self.last_used = time.monotonic()
        if self.compile_countdown:
            self.compile_countdown -= 1
            if not self.compile_countdown:
                self._compile(model)
        return model

    def start_serving(self) -> None:
        """Called once the process serves (in each pre-forked worker, after the fork: an
        ONNX Runtime session's threads do not survive one): compile the model from here on."""
        self._serving = True
        self._loop = asyncio.get_running_loop()
        if self.model is not None:
            self._compile(self.model)

    def _compile(self, model: LoadedModel) -> None:
        """Convert and verify `model` in the background while it serves as it is."""
        if model.compiler is None or model.engine is not None:
            return
        compiler, model.compiler = model.compiler, None  # once per loaded version

        def convert() -> None:
            with _COMPILING:
                if self.model is not model:  # replaced or unloaded while it waited
                    return
                before = resident_bytes()
                compiler(self._engine_switched)
                if model.engine is not None and self.model is model:
                    self.engine_bytes = max(0, resident_bytes() - before)
                    self.metrics.model_memory.set(self.footprint)
                    if self.on_grown is not None and self._loop is not None:
                        self._loop.call_soon_threadsafe(self.on_grown)

        threading.Thread(target=convert, name="mda-compile", daemon=True).start()

    def _engine_switched(self, model: LoadedModel) -> None:
        self.metrics.engine(model.version, model.platform, 0)
        self.metrics.engine(model.version, model.engine_name, 1)

    def require_model(self) -> LoadedModel:
        if self.model is None:
            raise NotReady(self.load_error or "the model is still loading; try again shortly")
        return self.model

    @staticmethod
    def _may_inline(key: Hashable) -> bool:
        """Where the model's runtime allows it (torch keeps a thread pool per calling thread:
        its calls stay on the one model thread)."""
        model: LoadedModel = key[0]  # type: ignore[index]  # the batch key infer() builds
        return model.inline

    def _observe_batch(self, key: Hashable, answers: np.ndarray, seconds: float) -> None:
        model: LoadedModel = key[0]  # type: ignore[index]  # the batch key infer() builds
        output: str = key[1]  # type: ignore[index]
        self.metrics.observe_batch(len(answers), seconds)
        self.metrics.observe_answers(output, answers, model.classes is not None)

    @staticmethod
    def _call_model(key: Hashable, rows: ModelInput) -> np.ndarray:
        model, output = key  # type: ignore[misc]  # the batch key infer() builds
        return model.run(output, rows)  # type: ignore[has-type]

    async def _compute(
        self, model: LoadedModel, output: str, rows: ModelInput, positions: list[int] | None = None
    ) -> np.ndarray:
        """The model's output for `rows` (the request's rows at `positions`, default all).

        A `ValueError`, `TypeError`, `ArithmeticError` (or a warning raised as an error) from
        the model is its verdict on the values it was given: a 422 naming the first row it
        refuses. Anything else is a 500. Either way one
        log line, and only this request fails (the batcher isolates it)."""
        try:
            if self._tracing is None:
                return await self._batcher.predict((model, output), rows)
            return await self._traced_predict(model, output, rows, self._tracing)
        except asyncio.CancelledError:
            raise
        except (ValueError, TypeError, ArithmeticError, Warning) as error:
            first = await self._first_refused_row(model, output, rows)
            row = positions[first] if positions is not None else first
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            log.warning("the model refused row %d of a request: %s", row, reason)
            raise InvalidInput(f"row {row}: the model cannot take it: {reason}") from None
        except Exception as error:
            log.error("prediction failed: %s: %s", type(error).__name__, error)
            raise PredictionFailed(f"prediction failed: {type(error).__name__}: {error}") from None

    async def _traced_predict(
        self, model: LoadedModel, output: str, rows: ModelInput, tracing: Tracing
    ) -> np.ndarray:
        timing: list[int] = []
        asked = time.time_ns()
        result = await self._batcher.predict((model, output), rows, timing)
        if timing:
            started, ended, batch_rows = timing
            tracing.past("batch wait", asked, started, **{"mda.rows": len(rows)})
            tracing.past("model call", started, ended, **{
                "mda.model": self.name, "mda.version": model.version,
                "mda.batch.rows": batch_rows, "mda.engine": model.engine_name,
            })  # fmt: skip
        return result

    async def _first_refused_row(self, model: LoadedModel, output: str, rows: ModelInput) -> int:
        """The shortest failing prefix, by bisection: log2(rows) model calls."""
        loop = asyncio.get_running_loop()

        async def fails(count: int) -> bool:
            try:
                await loop.run_in_executor(
                    self._executor, self._call_model, (model, output), rows[:count]
                )
            except Exception:
                return True
            return False

        low, high = 1, len(rows)  # rows[:high] is known to fail
        while low < high:
            middle = (low + high) // 2
            if await fails(middle):
                high = middle
            else:
                low = middle + 1
        return high - 1

    def trace(self, tracing: Tracing) -> None:
        """Add the cache look-up, the batcher's wait and the model call to requests' traces."""
        self._tracing = tracing

    def log_payloads(self) -> None:
        """Note each answer in the request's payload exchange (`payload_log.CURRENT`): from
        now on `infer` is `_logged_infer` (when the log is off, requests pay nothing)."""
        self.infer = self._logged_infer  # type: ignore[method-assign]

    async def _logged_infer(self, model: LoadedModel, rows: ModelInput, output: str) -> np.ndarray:
        values = await DataPlane.infer(self, model, rows, output)
        exchange = CURRENT.get()
        if exchange is not None:
            exchange.saw(model.version, model.schema.frame_columns, rows, output, values)
        return values

    async def infer(self, model: LoadedModel, rows: ModelInput, output: str) -> np.ndarray:
        """`model`'s `output` for each row of `rows`, from the cache where it can. The caller
        passes the model it decoded the rows for, so a swap mid-request changes nothing."""
        model.check_output(output)
        if self.cache is None:
            return await self._compute(model, output, rows)
        keys = row_keys(rows, model.cache_prefix(output))
        if self._tracing is None:
            cached = await self.cache.get_many(keys)
        else:
            with self._tracing.step("cache lookup", **{"mda.rows": len(keys)}):
                cached = await self.cache.get_many(keys)
        missing = [i for i, value in enumerate(cached) if value is None]
        self.metrics.cache_hits.inc(len(rows) - len(missing))
        if not missing:
            if len(cached) == 1:  # the common single-row request: skip np.stack
                return cached[0][np.newaxis]  # type: ignore[index]  # an array, labels too
            return np.stack(cached)  # type: ignore[arg-type]
        self.metrics.cache_misses.inc(len(missing))
        if len(missing) == len(rows):
            computed = await self._compute(model, output, rows)
            self.cache.set_many(keys, computed)
            return computed
        computed = await self._compute(model, output, rows[missing], missing)
        self.cache.set_many([keys[i] for i in missing], computed)
        for position, index in enumerate(missing):
            cached[index] = computed[position]
        return np.stack(cached)  # type: ignore[arg-type]

    async def stop(self) -> None:
        """Stop the batcher and the model thread (the shared cache stays open)."""
        await self._batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        await self.stop()
        if self.cache is not None:
            await self.cache.close()
