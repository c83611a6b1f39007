"""What the model takes: its input schema, built from the config and checked against the model.

Three layouts:
- `tensor`: rows of `inputSize` numbers, a float64 array (the config's `inputSize`);
- `table`: named, typed columns, given to the model as a pandas DataFrame (`inputs:`);
- `text`: one `BYTES` input for a model without column names (a text pipeline), given to
  the model as a 1-D array of strings.
"""

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from model_deployment_app.config import ModelConfig
from model_deployment_app.errors import StartupError
from model_deployment_app.inputs import ModelInput, Table

if TYPE_CHECKING:
    from model_deployment_app.runtimes import Runtime

# The Open Inference Protocol's datatypes and the numpy dtype each becomes.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

Layout = Literal["tensor", "table", "text"]


@dataclass(frozen=True)
class Column:
    name: str
    datatype: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return DTYPES[self.datatype]

    @property
    def kind(self) -> str:
        """numpy's kind letter: b (bool), i, u, f, or O (strings)."""
        return self.dtype.kind


@dataclass(frozen=True)
class InputSchema:
    layout: Layout
    width: int
    columns: tuple[Column, ...] = ()
    frame_columns: tuple[str, ...] | None = None  # tensor rows handed over as a named DataFrame
    value_limit: float | None = None  # largest magnitude the model computes with (float32)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @functools.cached_property  # computed once: every cache key carries it
    def fingerprint(self) -> str:
        """Short digest of the schema: part of every cache key, since the same artifact
        served with other column types must not share cached answers."""
        text = f"{self.layout}:{self.width}:" + ",".join(f"{c.name}={c.datatype}" for c in self)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def __iter__(self) -> Any:
        return iter(self.columns)

    def to_model(self, rows: ModelInput) -> Any:
        """What the estimator is called with."""
        if isinstance(rows, Table):
            if self.layout == "text":
                return rows.columns[self.columns[0].name]
            import pandas as pd

            return pd.DataFrame(rows.columns, copy=False)
        if self.frame_columns is not None:
            import pandas as pd

            return pd.DataFrame(rows, columns=list(self.frame_columns), copy=False)
        return rows

    def placeholder(self, count: int = 2) -> ModelInput:
        """`count` rows of zeros (and empty strings): the warm-up call's input."""
        if self.layout == "tensor":
            return np.zeros((count, self.width))
        return Table(
            {
                c.name: np.array([""] * count, dtype=object)
                if c.kind == "O"
                else np.zeros(count, dtype=c.dtype)
                for c in self.columns
            }
        )


def schema_for(config: ModelConfig, estimator: Any, runtime: "Runtime") -> InputSchema:
    """The schema the config declares, checked against (and ordered like) the model's own
    feature names where it has them; StartupError names any mismatch."""
    what = type(estimator).__name__
    if runtime.takes_text:  # one text per row, named `text` unless declared
        spec = config.inputs[0] if config.inputs else None
        return InputSchema("text", 1, (Column(spec.name if spec else "text", "BYTES"),))
    names = runtime.feature_names(estimator)
    if config.inputs is None:
        assert config.input_size is not None
        width = runtime.feature_count(estimator)
        if width is not None and width != config.input_size:
            raise StartupError(
                f"inputSize is {config.input_size} but the model ({what}) expects {width} features"
            )
        # Trained on a DataFrame of numbers: hand it one, so it sees the names it knows.
        frame = tuple(names) if names and len(names) == config.input_size else None
        limit = float(np.finfo(np.float32).max) if runtime.computes_in_float32(estimator) else None
        return InputSchema("tensor", config.input_size, frame_columns=frame, value_limit=limit)
    declared = {spec.name: spec.datatype for spec in config.inputs}
    if names is not None:
        missing = [n for n in names if n not in declared]
        unknown = [n for n in declared if n not in names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"the model needs {', '.join(missing)}, missing from inputs")
            if unknown:
                parts.append(f"inputs has {', '.join(unknown)}, unknown to the model")
            raise StartupError(f"inputs do not match the model ({what}): {'; '.join(parts)}")
        columns = tuple(Column(n, declared[n]) for n in names)  # the model's own order
    else:
        columns = tuple(Column(spec.name, spec.datatype) for spec in config.inputs)
    text = names is None and len(columns) == 1 and columns[0].datatype == "BYTES"
    return InputSchema("text" if text else "table", len(columns), columns)
