"""Compiled inference: a model's calls taken over by a faster engine, once it is proven to
give the model's own answers.

After a model is ready, and after every new version, its runtime may offer compiled
engines (`Runtime.compilation`; scikit-learn's: the model converted by skl2onnx and run by
ONNX Runtime). In a background thread each candidate is checked against the model itself
on verification rows; the first that agrees within `MDA_COMPILE`'s tolerance takes the
model's calls over in place. Until then, and for any rows the engine declines (values it
cannot represent, categories the model would refuse), the model itself answers: what a
client sees never depends on which engine answered, only how fast.

`exact`: within 1e-9 on every verification row; `approx`: within 1e-6 (probabilities
absolutely, regression outputs relative to their magnitude) and the same predicted class;
`off`: never compiled. A conversion that fails, disagrees, or takes longer than
`MDA_COMPILE_TIMEOUT_SECONDS` leaves the model as it was, with one log line saying why.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from model_deployment_app.inputs import ModelInput

if TYPE_CHECKING:
    from model_deployment_app.predictor import LoadedModel
    from model_deployment_app.runtimes import LoadContext, Runtime

log = logging.getLogger(__name__)

TOLERANCE = {"exact": 1e-9, "approx": 1e-6}


class Engine(Protocol):
    """A compiled model: the same outputs as the model, for the rows it accepts."""

    name: str
    """What metadata and metrics call it (`parameters.engine`), e.g. onnxruntime."""

    def run(self, output: str, rows: ModelInput) -> np.ndarray | None:
        """`output` for `rows`, in the model's own dtype and shape; None: not these rows
        (the model answers them)."""
        ...


class NotCompiled(Exception):
    """Why a model (or one candidate) cannot be compiled: one line."""


@dataclass
class Compilation:
    """What a runtime offers: verification rows, and candidate engines to try in order
    (built lazily: the second only if the first disagrees)."""

    rows: ModelInput
    candidates: list[tuple[str, Callable[[], Engine]]]  # (a description, what builds it)


def disagreement(model: LoadedModel, engine: Engine, rows: ModelInput, mode: str) -> str | None:
    """Where `engine` departs from the model on `rows` beyond the mode's tolerance; None when
    it agrees on every row and output."""
    tolerance = TOLERANCE[mode]
    for output in model.outputs:
        try:
            expected = model.run_estimator(output, rows)
        except Exception as error:
            raise NotCompiled(
                f"the model itself refuses the verification rows ({type(error).__name__}: {error})"
            ) from None
        found = engine.run(output, rows)
        if found is None:  # some rows it leaves to the model: compare it on the others
            found, expected = _row_by_row(engine, output, rows, expected)
            if found is None:
                return f"it declines every verification row ({output})"
        if found.shape != expected.shape:
            return f"{output} has shape {found.shape}, the model's {expected.shape}"
        if expected.dtype.kind not in "fc":  # labels: equal, row for row
            wrong = np.flatnonzero(np.asarray(found != expected).reshape(len(found), -1).any(1))
            if wrong.size:
                row = int(wrong[0])
                return (
                    f"predicts {found[row]!r} for verification row {row}, the model "
                    f"{expected[row]!r}"
                )
            continue
        scale = 1.0 if model.job == "classification" else np.maximum(np.abs(expected), 1.0)
        gap = np.abs(found.astype(np.float64) - expected) / scale
        worst = float(np.max(gap)) if gap.size else 0.0
        if not worst <= tolerance:  # NaN included
            row = int(np.unravel_index(np.nanargmax(gap), gap.shape)[0])
            return f"{output} differs by {worst:.1e} on verification row {row} (over {tolerance:g})"
    return None


def _row_by_row(
    engine: Engine, output: str, rows: ModelInput, expected: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """The engine's answers for the rows it takes, one at a time, and the model's for them."""
    taken, answers = [], []
    for index in range(len(rows)):
        found = engine.run(output, rows[index : index + 1])
        if found is not None:
            taken.append(index)
            answers.append(found)
    if not answers:
        return None, expected
    return np.concatenate(answers), expected[taken]


def compile_model(
    model: LoadedModel,
    runtime: Runtime,
    context: LoadContext,
    on_switch: Callable[[LoadedModel], None],
) -> None:
    """Try the runtime's engines for `model` (in a background thread) and switch to the first
    that agrees; one log line either way. Nothing here can fail the model."""
    settings = context.settings.compiling
    mode, bound = settings.compile, settings.compile_timeout_seconds
    started = time.perf_counter()
    reasons: list[str] = []
    try:
        _compile(model, runtime, context, on_switch, mode, bound, started, reasons)
    finally:
        # What conversion imported (onnx, skl2onnx: many objects) joins the start-up heap
        # out of the collector's reach, as `server` froze it: full collections stay short.
        gc.freeze()


def _compile(
    model: LoadedModel,
    runtime: Runtime,
    context: LoadContext,
    on_switch: Callable[[LoadedModel], None],
    mode: str,
    bound: float,
    started: float,
    reasons: list[str],
) -> None:
    try:
        compilation = runtime.compilation(model.estimator, model.schema, context, mode)
        if compilation is None:  # the family has no compiled engine: nothing to say
            return
        for description, engine in _candidates(compilation, reasons):
            reason = disagreement(model, engine, compilation.rows, mode)
            if reason is not None:
                reasons.append(f"{description}: {reason}")
                continue
            took = time.perf_counter() - started
            if took > bound:
                reasons.append(
                    f"converting and verifying took {took:.1f}s, longer than "
                    f"MDA_COMPILE_TIMEOUT_SECONDS={bound:g}"
                )
                break
            model.engine = engine
            on_switch(model)
            log.info(
                "%s %s now answered by %s (%s, MDA_COMPILE=%s): agrees with %s on %d "
                "verification rows; converted and verified in %.2fs",
                model.name, model.version, engine.name, description, mode, model.platform,
                len(compilation.rows), took,
            )  # fmt: skip
            return
    except NotCompiled as error:
        reasons.append(str(error))
    except Exception as error:  # a converter's own bug must never take the model down
        reasons.append(f"{type(error).__name__}: {error}")
    log.info(
        "%s %s stays on %s (MDA_COMPILE=%s): %s",
        model.name, model.version, model.platform, mode, "; ".join(reasons) or "no engine",
    )  # fmt: skip


def _candidates(compilation: Compilation, reasons: list[str]) -> Iterator[tuple[str, Engine]]:
    """The candidates built in order; one that cannot be built is a reason, and the next is
    tried."""
    for description, build in compilation.candidates:
        try:
            yield description, build()
        except NotCompiled as error:
            reasons.append(f"{description}: {error}")
