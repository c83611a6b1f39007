"""scikit-learn models compiled: converted by skl2onnx, run by ONNX Runtime on the CPU.

`compilation` offers `compiling` a double-precision graph (the `exact` candidate: linear
models and their pipelines reproduce scikit-learn to about 1e-16) and, under `approx`, a
float32 one (what tree ensembles need: ONNX's tree operators hold float thresholds), and the
rows to verify them on: zeros, the config's `examples:`, and a few hundred rows drawn around
them, for tree models right at and beside their split thresholds, where float32 would flip
a comparison.

The engine takes the server's decoded rows as they are (no DataFrame is built for named
columns) and declines what the model would treat otherwise: values past float32's range
for a float32 graph, and categories an encoder with `handle_unknown="error"` does not know
(scikit-learn then answers, and its 422 is the same as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from model_deployment_app.compiling import Compilation, NotCompiled
from model_deployment_app.inputs import ModelInput, Table

if TYPE_CHECKING:
    from model_deployment_app.runtimes import LoadContext
    from model_deployment_app.schema import InputSchema

VERIFICATION_ROWS = 300
# Probabilities this close may rank otherwise in float32 than in scikit-learn's float64.
_TIE = 1e-5


def preload() -> None:
    """Import the converter and ONNX Runtime, where installed (see `preload_compilation`)."""
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
        from skl2onnx.common.data_types import FloatTensorType  # noqa: F401
    except ImportError:
        pass


def compilation(
    estimator: Any, schema: InputSchema, context: LoadContext, mode: str
) -> Compilation:
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as error:
        raise NotCompiled(
            f"{error.name} is not installed (the onnx extra: pip install "
            "'model-deployment-app[onnx]')"
        ) from None
    if schema.layout == "text":
        raise NotCompiled("models of one text per row are not compiled")
    examples = context.config.examples or ()
    categories = _guarded_categories(estimator, schema)
    rows = verification_rows(estimator, schema, examples, categories)
    threads = context.threads

    def build(dtype: type[np.floating[Any]]) -> Any:
        return lambda: OnnxEngine(estimator, schema, dtype, categories, threads)

    candidates = [("double-precision graph", build(np.float64))]
    if mode == "approx":
        candidates.append(("float32 graph", build(np.float32)))
    return Compilation(rows, candidates)


class OnnxEngine:
    """The converted model in an ONNX Runtime session, fed the server's rows directly."""

    name = "onnxruntime"

    def __init__(
        self,
        estimator: Any,
        schema: InputSchema,
        dtype: type[np.floating[Any]],
        categories: dict[str, frozenset[Any]],
        threads: int,
    ) -> None:
        self.dtype = dtype
        self.schema = schema
        self.categories = categories
        self.classes = getattr(estimator, "classes_", None)
        if dtype is np.float32:
            estimator = _float32_thresholds(estimator)
        self.content = _convert(estimator, schema, dtype, self.classes is not None)
        self.session = self._session(threads)  # built in the serving process (after a fork)
        names = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if self.classes is not None else names[0]
        if self.output not in names:
            raise NotCompiled(f"the converted graph has no {self.output} output ({names})")
        if self.classes is not None:
            self.classes = np.asarray(self.classes)
        self.inputs = [(i.name, _feed_dtype(i.type)) for i in self.session.get_inputs()]

    def _session(self, threads: int) -> Any:
        from model_deployment_app.runtimes.onnx import cpu_session

        try:
            return cpu_session(self.content, threads)
        except Exception as error:
            raise NotCompiled(
                f"ONNX Runtime cannot load the converted graph: {_first(error)}"
            ) from None

    def run(self, output: str, rows: ModelInput) -> np.ndarray | None:
        feed = self._feed(rows)
        if feed is None:
            return None
        (found,) = self.session.run([self.output], feed)
        values = np.asarray(found, dtype=np.float64)
        if self.classes is None:
            return np.ascontiguousarray(values[:, 0] if values.shape[1:] == (1,) else values)
        if output == "predict":
            if values.shape[1] > 1:
                top = np.partition(values, -2, axis=1)
                if (top[:, -1] - top[:, -2] < _TIE).any():
                    return None  # a near tie: which class wins is scikit-learn's to say
            return self.classes[values.argmax(axis=1)]
        return np.ascontiguousarray(values)

    def _feed(self, rows: ModelInput) -> dict[str, np.ndarray] | None:
        if not isinstance(rows, Table):
            values = rows.astype(self.dtype, copy=False)
            if self.dtype is np.float32 and not np.isfinite(values).all():
                return None  # past float32's range: the model itself answers
            ((name, _),) = self.inputs
            return {name: values}
        feed = {}
        for name, dtype in self.inputs:
            column = rows.columns[name]
            known = self.categories.get(name)
            if known is not None and not known.issuperset(column.tolist()):
                return None  # an unknown category: the model's own error
            if dtype is np.float32 and not np.isfinite(column.astype(dtype)).all():
                return None
            feed[name] = column.reshape(-1, 1).astype(dtype, copy=False)
        return feed


def _feed_dtype(onnx_type: str) -> Any:
    return {"tensor(string)": object, "tensor(int64)": np.int64,
            "tensor(float)": np.float32}.get(onnx_type, np.float64)  # fmt: skip


def _first(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def _convert(estimator: Any, schema: InputSchema, dtype: Any, classifier: bool) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    number = DoubleTensorType if dtype is np.float64 else FloatTensorType
    if schema.layout == "tensor":
        initial = [("X", number([None, schema.width]))]
    else:
        kinds = {"O": StringTensorType, "f": number}
        initial = [(c.name, kinds.get(c.kind, Int64TensorType)([None, 1])) for c in schema]
    options = {id(_final_step(estimator)): {"zipmap": False}} if classifier else None
    try:
        graph = convert_sklearn(estimator, initial_types=initial, options=options)
    except Exception as error:
        raise NotCompiled(
            f"skl2onnx cannot convert {_describe(estimator)}: {_first(error)}"
        ) from None
    return bytes(graph.SerializeToString())


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return _final_step(steps[-1][1]) if steps else estimator


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return "Pipeline(" + ", ".join(_describe(step) for _, step in steps) + ")"
    return type(estimator).__name__


def _encoders(transformer: Any) -> list[Any]:
    steps = getattr(transformer, "steps", None)
    found = [s for _, s in steps] if steps else [transformer]
    return [s for s in found if hasattr(s, "categories_")]


def _guarded_categories(estimator: Any, schema: InputSchema) -> dict[str, frozenset[Any]]:
    """Column name -> the categories its encoder knows, for encoders that refuse unknown
    ones (the engine declines those rows, so the model's own error answers)."""
    if schema.layout != "table":
        return {}
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    if hasattr(first, "categories_"):  # one encoder of every raw column
        encoded = [(list(schema.names), first)]
    else:
        encoded = [(columns, encoder)
                   for _, transformer, columns in getattr(first, "transformers_", ())
                   for encoder in _encoders(transformer)]  # fmt: skip
    guarded: dict[str, frozenset[Any]] = {}
    for columns, encoder in encoded:
        if getattr(encoder, "handle_unknown", "error") != "error":
            continue
        if not isinstance(columns, list | tuple) or len(columns) != len(encoder.categories_):
            raise NotCompiled(
                f"cannot tell which columns {type(encoder).__name__} encodes, so its "
                "unknown categories could not be refused as scikit-learn does"
            )
        for column, known in zip(columns, encoder.categories_, strict=True):
            guarded[str(column)] = frozenset(np.asarray(known).tolist())
    return guarded


def _trees(estimator: Any) -> list[Any]:
    """The `tree_` of every tree of a tree model (none for other models)."""
    trees, stack = [], [estimator]
    while stack:
        found = stack.pop()
        if hasattr(found, "tree_"):
            trees.append(found.tree_)
        inner = getattr(found, "estimators_", None)
        if inner is not None:
            stack.extend(np.ravel(np.asarray(inner, dtype=object)))
    return trees


def _float32_thresholds(estimator: Any) -> Any:
    """A copy whose split thresholds are the largest float32 at or below each: scikit-learn
    compares float32 inputs with float64 thresholds, ONNX with float32 ones, and rounding a
    threshold to the nearest float32 (up, half the time) would send a row equal to it the
    other way. Rounded down, every float32 input takes the same branch in both."""
    import copy

    trees = _trees(estimator)
    if not trees:
        return estimator
    estimator = copy.deepcopy(estimator)
    for tree in _trees(estimator):
        threshold = tree.threshold
        nearest = threshold.astype(np.float32)
        above = nearest.astype(np.float64) > threshold
        nearest[above] = np.nextafter(nearest[above], np.float32(-np.inf))
        threshold[:] = nearest.astype(np.float64)
    return estimator


def _thresholds(estimator: Any, width: int) -> list[np.ndarray]:
    """Per feature, the split thresholds of a tree model's trees (empty lists otherwise)."""
    trees = _trees(estimator)
    if not trees:
        return [np.empty(0)] * width
    features = np.concatenate([t.feature for t in trees])
    values = np.concatenate([t.threshold for t in trees])
    split = features >= 0
    features, values = features[split], values[split]
    return [values[features == j] for j in range(width)]


def _near(values: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """Values at, one float step either side of, and a little around `values`."""
    choice = rng.integers(0, 4, size=values.shape)
    up = np.nextafter(values, np.inf)
    down = np.nextafter(values, -np.inf)
    noisy = values + rng.normal(0.0, spread, size=values.shape)
    return np.select([choice == 0, choice == 1, choice == 2], [values, up, down], noisy)


def verification_rows(
    estimator: Any,
    schema: InputSchema,
    examples: tuple[Any, ...],
    categories: dict[str, frozenset[Any]],
    count: int = VERIFICATION_ROWS,
) -> ModelInput:
    rng = np.random.default_rng(0)
    if schema.layout == "tensor":
        base = np.vstack([np.zeros((1, schema.width))] + [np.asarray([e], float) for e in examples])
        pools = []
        for j, thresholds in enumerate(_thresholds(estimator, schema.width)):
            pool = np.concatenate([base[:, j], thresholds])
            pools.append(pool)
        drawn = np.column_stack([rng.choice(pool, size=count) for pool in pools])
        spread = np.array([max(float(np.std(pool)), 1.0) * 0.1 for pool in pools])
        near = np.column_stack([_near(drawn[:, j], rng, spread[j]) for j in range(schema.width)])
        rows = np.vstack([base, near])
        if schema.value_limit is not None:
            rows = np.clip(rows, -schema.value_limit, schema.value_limit)
        return np.ascontiguousarray(rows, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    for column in schema:
        seen = [e[column.name] for e in examples if isinstance(e, dict)]
        if column.kind == "O":
            known = sorted(categories.get(column.name, ()), key=str) or seen or [""]
            picked = rng.choice(np.asarray(known + seen, dtype=object), size=count)
            columns[column.name] = np.concatenate([np.asarray(seen, dtype=object), picked])
        else:
            numbers = np.asarray(seen or [0.0], dtype=np.float64)
            width = max(float(np.std(numbers)), 1.0)
            drawn = rng.choice(numbers, size=count) + rng.normal(0, width, size=count)
            values = np.concatenate([np.asarray(seen, dtype=np.float64), drawn])
            if column.kind in "iub":
                values = np.rint(values)
                if column.kind != "i":
                    values = values > 0 if column.kind == "b" else np.maximum(values, 0)
            columns[column.name] = values.astype(column.dtype)
    return Table(columns)
