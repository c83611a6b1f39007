"""ONNX: a `.onnx` graph (`modelType: onnx`) run by ONNX Runtime on the CPU.

The graph takes one float tensor `[n, inputSize]`, or named inputs matching the config's
`inputs:` (one `[n, 1]` tensor a column, as skl2onnx converts a ColumnTransformer). A
classifier answers its probabilities as a tensor or as skl2onnx's default ZipMap (a list of
maps), and its labels as `predict`; a regressor answers its first float output (`[n, 1]` as
`[n]`, as scikit-learn's `predict` does). ONNX Runtime's threads are the worker's share of
the CPU budget; its session is built again in each pre-forked worker, since its thread pool
does not survive a fork.
"""

from pathlib import Path
from typing import Any

import numpy as np

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime, unreadable
from model_deployment_app.runtimes.labels import class_labels
from model_deployment_app.runtimes.threads import use_threads

# ONNX tensor element types and the numpy dtype each is fed as.
_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
    "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(string)": np.object_,
    "tensor(float16)": np.float16, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
}  # fmt: skip


def _recorded_labels(content: bytes) -> list[Any] | None:
    """The class labels an ai.onnx.ml classifier node (or skl2onnx's ZipMap) records."""
    import onnx

    graph = onnx.load_model_from_string(content).graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_int64s" and attribute.ints:
                return list(attribute.ints)
            if attribute.name == "classlabels_strings" and attribute.strings:
                return [s.decode() for s in attribute.strings]
    return None


def cpu_session(content: bytes, threads: int) -> Any:
    """An ONNX Runtime session of `content` on the CPU with `threads` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An ONNX Runtime session behind the estimator interface."""

    def __init__(self, content: bytes, name: str, job: str, configured: Any) -> None:
        self.content = content
        self.name = name
        self.job = job
        self.session = self._session(1)
        self.inputs = [(i.name, i.type, i.shape) for i in self.session.get_inputs()]
        outputs = self.session.get_outputs()
        self.probabilities: str | None = None
        self.label: str | None = None
        self.zipmap = False
        if job == "classification":
            for output in outputs:
                if output.type.startswith("seq(map("):
                    self.probabilities, self.zipmap = output.name, True
                elif output.type in ("tensor(float)", "tensor(double)") and len(output.shape) == 2:
                    self.probabilities = self.probabilities or output.name
                elif len(output.shape) == 1 and self.label is None:
                    self.label = output.name
            if self.probabilities is None:
                raise StartupError(
                    f"job is classification but {name} has no probabilities output (a float "
                    f"tensor [n, classes] or a ZipMap); its outputs: {_describe(outputs)}"
                )
            recorded = _recorded_labels(content)
            count = len(recorded) if recorded is not None else self._width(outputs)
            if count is None:
                raise StartupError(
                    f"{name} records no class labels and its probabilities' width is not "
                    "fixed: name them with classes: in the config"
                )
            self.classes_ = class_labels(recorded, configured, count)
            self.relabel = configured is not None or recorded is None
        else:
            floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
            if not floats:
                raise StartupError(
                    f"job is regression but {name} has no float output; its outputs: "
                    f"{_describe(outputs)}"
                )
            self.label = floats[0].name
        if len(self.inputs) == 1:
            shape = self.inputs[0][2]
            width = shape[1] if len(shape) == 2 else None
            self.n_features_in_ = width if isinstance(width, int) else None
        else:
            self.feature_names_in_ = np.asarray([n for n, _, _ in self.inputs], dtype=object)

    def _width(self, outputs: Any) -> int | None:
        for output in outputs:
            if output.name == self.probabilities and not self.zipmap:
                width = output.shape[1]
                return width if isinstance(width, int) else None
        return None

    def _session(self, threads: int) -> Any:
        return cpu_session(self.content, threads)

    def use_threads(self, threads: int) -> None:
        if threads != 1:
            self.session = self._session(threads)

    def _feed(self, features: Any) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1:
            name, kind, _ = self.inputs[0]
            values = np.asarray(features)
            if values.ndim == 1:  # one text (or value) per row
                values = values.reshape(-1, 1)
            return {name: values.astype(_DTYPES.get(kind, np.float32), copy=False)}
        feed: dict[str, np.ndarray] = {}
        for name, kind, _ in self.inputs:  # a DataFrame of the named columns
            column = np.asarray(features[name]).reshape(-1, 1)
            feed[name] = column.astype(_DTYPES.get(kind, np.float32), copy=False)
        return feed

    def predict_proba(self, features: Any) -> np.ndarray:
        (found,) = self.session.run([self.probabilities], self._feed(features))
        if self.zipmap:
            return np.array([[row[c] for c in self.classes_] for row in found], dtype=np.float64)
        return np.asarray(found)

    def predict(self, features: Any) -> np.ndarray:
        if self.job == "classification" and (self.relabel or self.label is None):
            return self.classes_[self.predict_proba(features).argmax(axis=1)]
        (found,) = self.session.run([self.label], self._feed(features))
        values = np.asarray(found)
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _describe(outputs: Any) -> str:
    return ", ".join(f"{o.name} {o.type} {o.shape}" for o in outputs) or "none"


class OnnxRuntime(Runtime):
    platform = "onnx"
    extra = "onnx"
    image_variant = "onnx"
    mlflow_flavor = "onnx"
    suffixes = (".onnx",)
    library = "onnxruntime"

    def load(self, path: Path, context: LoadContext) -> Any:
        self.import_library()
        try:
            import onnx  # noqa: F401  (reads the class labels a graph records)
        except ImportError as error:
            raise self.missing_library(error.name or "onnx") from None
        file = self.native_file(path)
        content = file.read_bytes()
        config = context.config
        try:
            model = OnnxModel(content, file.name, config.job, config.classes)
        except StartupError:
            raise
        except Exception as error:
            raise unreadable(file, "an ONNX model ONNX Runtime can run", error) from None
        _check_inputs(model, config.input_size, config.inputs)
        return model

    def adopt(self, estimator: Any, context: LoadContext) -> Any:
        workers = context.settings.server.workers
        use_threads(estimator.use_threads, context.threads, workers)
        return estimator

    def computes_in_float32(self, estimator: Any) -> bool:
        return any(kind == "tensor(float)" for _, kind, _ in estimator.inputs)


def _check_inputs(model: OnnxModel, input_size: int | None, inputs: Any) -> None:
    graph = ", ".join(f"{name} {kind} {shape}" for name, kind, shape in model.inputs)
    if input_size is not None and len(model.inputs) != 1:
        raise StartupError(
            f"inputSize is {input_size} but {model.name} takes {len(model.inputs)} inputs "
            f"({graph}): declare them with inputs: instead"
        )
    if inputs is not None and len(model.inputs) > 1:
        declared = sorted(spec.name for spec in inputs)
        if declared != sorted(name for name, _, _ in model.inputs):
            raise StartupError(
                f"inputs ({', '.join(declared)}) do not match the inputs of {model.name} ({graph})"
            )


RUNTIME = OnnxRuntime()
