"""A loaded model: the estimator plus what the server needs to know about it.

Built once at start-up by `load_model`, which refuses (with one line) an artifact that cannot
serve the configured job or width, so a bad model never reports ready.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_deployment_app import compiling, runtimes, storage
from model_deployment_app.compiling import Engine
from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import InvalidInput, StartupError
from model_deployment_app.inputs import ModelInput
from model_deployment_app.runtimes import LoadContext, Runtime
from model_deployment_app.schema import InputSchema, schema_for
from model_deployment_app.settings import Settings

log = logging.getLogger(__name__)

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


@dataclass(eq=False)  # compared and hashed by identity: a batch key, one per loaded version
class LoadedModel:
    """An estimator ready to serve, and its facts: job, inputs, classes, digest."""

    name: str
    job: str
    estimator: Any
    schema: InputSchema
    sha256: str
    classes: list[Any] | None = None
    output_width: int | None = None  # columns per row of the default output; None: scalar
    platform: str = "sklearn"
    inline: bool = True  # a quick call may run on the event loop (the runtime says)
    load_seconds: float = 0.0
    outputs: tuple[str, ...] = field(default=())
    source_token: str = ""  # what the source said its version was when this was fetched
    engine: Engine | None = None  # a compiled engine, once verified (see `compiling`)
    compiler: Callable[[Callable[["LoadedModel"], None]], None] | None = None
    memory_bytes: int = 0  # what loading it added to the process (measured by a pool)
    _prefixes: dict[str, bytes] = field(default_factory=dict, repr=False)

    def cache_prefix(self, output: str) -> bytes:
        """Cache keys of this artifact, schema and output: another version (or the same
        artifact served with other column types) never shares cached answers."""
        prefix = self._prefixes.get(output)
        if prefix is None:
            prefix = f"mda:{self.sha256}:{self.schema.fingerprint}:{output}:".encode()
            self._prefixes[output] = prefix
        return prefix

    @property
    def version(self) -> str:
        """The version V2 advertises: the artifact's sha256, shortened."""
        return self.sha256[:12]

    @functools.cached_property
    def version_bytes(self) -> bytes:
        """The version as a response header's value."""
        return self.version.encode()

    @property
    def default_output(self) -> str:
        return PREDICT_PROBA if self.job == "classification" else PREDICT

    def check_output(self, output: str) -> str:
        if output not in self.outputs:
            raise InvalidInput(
                f"unknown output {output!r}: this model offers {', '.join(self.outputs)}"
            )
        return output

    @property
    def engine_name(self) -> str:
        """What answers: the compiled engine's name, else the runtime's platform."""
        engine = self.engine
        return self.platform if engine is None else engine.name

    def run(self, output: str, rows: ModelInput) -> np.ndarray:
        """`output` for `rows`: from the compiled engine when it takes them, else the
        estimator's."""
        engine = self.engine
        if engine is not None:
            found = engine.run(output, rows)
            if found is not None:
                return found
        return self.run_estimator(output, rows)

    def run_estimator(self, output: str, rows: ModelInput) -> np.ndarray:
        """Call the estimator on `rows`, in the form its schema says it takes."""
        features = self.schema.to_model(rows)
        if output == PREDICT_PROBA:
            return np.ascontiguousarray(self.estimator.predict_proba(features), dtype=np.float64)
        return np.ascontiguousarray(self.estimator.predict(features))


def prepare(
    estimator: Any, config: ModelConfig, sha256: str, runtime: Runtime | None = None
) -> LoadedModel:
    """Check the estimator fits the config and learn its output shape with one warm-up call.
    `runtime` is the family serving it (default: the one `config.modelType` and the object
    itself name)."""
    what = type(estimator).__name__
    if not callable(getattr(estimator, "predict", None)):
        raise StartupError(f"the artifact ({what}) has no predict method")
    runtime = runtime or runtimes.serving(config.model_type, estimator)
    schema = schema_for(config, estimator, runtime)
    model = LoadedModel(
        name=config.name,
        job=config.job,
        estimator=estimator,
        schema=schema,
        sha256=sha256,
        platform=runtime.platform,
        inline=runtime.inline,
    )
    if config.job == "classification":
        if not callable(getattr(estimator, "predict_proba", None)):
            raise StartupError(f"job is classification but the model ({what}) has no predict_proba")
        model.outputs = (PREDICT_PROBA, PREDICT)
    else:
        model.outputs = (PREDICT,)
    warm = _warm_up(model)
    if config.job == "classification":
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise StartupError(f"job is classification but the model ({what}) has no classes_")
        model.classes = _class_labels(config, classes)
        if warm is not None and (warm.ndim != 2 or warm.shape[1] != len(model.classes)):
            raise StartupError(
                f"predict_proba returns {warm.shape[1:]} columns for {len(model.classes)} classes"
            )
        model.output_width = len(model.classes)
    elif warm is not None:
        model.output_width = warm.shape[1] if warm.ndim == 2 else None
    return model


def _class_labels(config: ModelConfig, recorded: Any) -> list[Any]:
    """The labels of the probability columns. A runtime whose files record none labels them
    with the config's `classes`; an estimator that has its own keeps them."""
    labels = np.asarray(recorded).tolist()
    if config.classes is not None and labels != list(config.classes):
        raise StartupError(
            f"classes: the model's own labels are {labels}; classes names the labels of "
            "native files that record none (set it there, or leave it out)"
        )
    return labels


def _warm_up(model: LoadedModel) -> np.ndarray | None:
    """One call on placeholder rows (zeros, empty strings): proves a model of numbers serves
    its width, and learns the output's shape. A model with named inputs may rightly refuse
    placeholders (an encoder that knows only its categories): then it is served unwarmed."""
    what = type(model.estimator).__name__
    try:
        return model.run(model.default_output, model.schema.placeholder())
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
        if model.schema.layout == "tensor":
            raise StartupError(
                f"the model ({what}) fails on rows of inputSize={model.schema.width}: {problem}"
            ) from None
        log.info("warm-up skipped: the model refuses placeholder rows (%s)", problem)
        return None


_CAUSE_GRACE_SECONDS = 2.0


def load_model(config: ModelConfig, settings: Settings) -> LoadedModel:
    """Fetch, load and check the configured model within `MDA_LOAD_TIMEOUT_SECONDS`;
    StartupError names what is wrong, whatever went wrong."""
    outcome: list[LoadedModel | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_load(config, settings))
        except BaseException as error:  # handed to the waiting thread below
            outcome.append(error)

    # A daemon thread: one stuck past the deadline never keeps the process from exiting.
    worker = threading.Thread(target=work, name="mda-load", daemon=True)
    worker.start()
    # The download's own retries stop at the same deadline and then name their cause (GCS
    # unreachable, say): a moment's grace lets that message, not this generic one, be the line.
    timeout = settings.server.load_timeout_seconds
    worker.join(timeout + _CAUSE_GRACE_SECONDS)
    if not outcome:
        raise StartupError(
            f"loading the model took longer than {timeout:g}s (MDA_LOAD_TIMEOUT_SECONDS)"
        )
    result = outcome[0]
    if isinstance(result, StartupError):
        raise result
    if isinstance(result, BaseException):
        raise StartupError(f"cannot load the model: {type(result).__name__}: {result}") from None
    return result


def _load(config: ModelConfig, settings: Settings) -> LoadedModel:
    started = time.perf_counter()
    server = settings.server
    artifact = storage.fetch(
        config.model, server.download_dir, server.load_timeout_seconds,
        folder=config.is_folder, progress_seconds=server.progress_seconds,
    )  # fmt: skip
    context = LoadContext(config, settings)
    try:
        estimator, runtime = runtimes.load(artifact.path, context)
    finally:
        artifact.discard_download()  # in memory now (or refused): the file is not needed
    model = prepare(estimator, config, artifact.sha256, runtime)
    model.source_token = artifact.token
    if settings.compiling.compile != "off":
        model.compiler = functools.partial(compiling.compile_model, model, runtime, context)
        # Its libraries imported now, before ready: an import in the background would hold
        # the import lock and the GIL for seconds while the server answers (and, with several
        # workers, be made once per worker instead of shared from before the fork).
        runtime.preload_compilation()
    model.load_seconds = time.perf_counter() - started
    log.info(
        "loaded %s (%s, %s, %s) from %s in %.2fs, sha256 %s",
        config.name, type(estimator).__name__, runtime.platform, config.job, artifact.uri,
        model.load_seconds, artifact.sha256[:12],
    )  # fmt: skip
    return model
