"""Open Inference Protocol (V2) tensors: request inputs into the model input, results into
output tensors.

A model of `inputSize` numbers takes one tensor `[rows, inputSize]` of any numeric datatype.
A model with named inputs takes one tensor per column, named like it, of shape `[rows]` or
`[rows, 1]` (the pandas layout MLServer's and KServe's clients send), or, when the one tensor
is not named after a column, `[rows, columns]` in column order. A tensor's `data` is JSON
(flat or nested) or, from the binary extension, an already typed array.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from model_deployment_app.codecs import tables
from model_deployment_app.codecs.columns import from_array, to_column
from model_deployment_app.codecs.raw import element_count, from_raw
from model_deployment_app.codecs.rows import check_range, check_row_total, to_rows
from model_deployment_app.errors import InvalidInput, PayloadTooLarge, as_sent
from model_deployment_app.inputs import ModelInput, Table
from model_deployment_app.schema import DTYPES, Column, InputSchema

_NUMERIC = frozenset(d for d, t in DTYPES.items() if t.kind in "iuf")


@dataclass
class Tensor:
    """One input tensor as received."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | np.ndarray

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1


def _check_declared_rows(label: str, shape: list[int], max_rows: int) -> None:
    """A shape is a client's number: its rows are held to `max_rows` before anything is
    read (raw bytes are held to the element count in `raw`, JSON values one by one later)."""
    rows = shape[0] if shape else 1
    if rows > max_rows:
        raise PayloadTooLarge(
            f"{label}: shape {shape} declares {rows} rows; the limit is {max_rows} a request"
        )


def _check_integer_range(label: str, datatype: str, data: Any) -> None:
    """Values sent as JSON or gRPC's wider typed contents hold to the tensor's own integer
    datatype: a 1000 in an INT8 tensor, or 1.5 in an INT32 one, is refused (raw bytes are
    of that type already)."""
    dtype = DTYPES[datatype]
    if dtype.kind not in "iu" or (isinstance(data, np.ndarray) and data.dtype == dtype):
        return
    try:
        values = np.asarray(data).ravel()
    except (ValueError, TypeError):
        return  # ragged or mixed: the layout's own checks name the bad value
    info = np.iinfo(dtype)
    if values.dtype.kind in "iu":
        good = (values >= info.min) & (values <= info.max)
    elif values.dtype.kind == "f":  # the bound past the top is a power of two: exact in floats
        past_top = 2.0 ** (dtype.itemsize * 8 - (dtype.kind == "i"))
        good = (values >= info.min) & (values < past_top) & (values == np.floor(values))
    elif values.dtype.kind == "O":
        good = np.array(
            [not isinstance(v, int) or info.min <= v <= info.max for v in values], dtype=bool
        )
    else:
        return
    if not good.all():
        index = int(np.argmin(good))
        raise InvalidInput(
            f"{label}: value {as_sent(values[index])} (element {index}) is not an {datatype}: "
            f"expected integers in [{info.min}, {info.max}]"
        )


def read_tensors(payload: Any, max_rows: int) -> list[Tensor]:
    """The `inputs` of a request, structurally checked; an input's `data` may be JSON or the
    raw bytes the binary extension or gRPC carried. No shape sizes an allocation before it is
    checked against `max_rows` and the data sent."""
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('expected "inputs": a list of tensors {name, shape, datatype, data}')
    tensors = []
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInput(f"inputs[{index}]: expected a tensor object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        label = f"input {name!r}" if isinstance(name, str) else f"inputs[{index}]"
        if not isinstance(name, str):
            raise InvalidInput(f"{label}: a tensor needs a string name")
        if datatype not in DTYPES:
            raise InvalidInput(f"{label}: datatype {datatype!r} is not one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise InvalidInput(f"{label}: shape must be a list of sizes, got {shape!r}")
        data = item.get("data")
        _check_declared_rows(label, shape, max_rows)
        if not isinstance(data, bytes):
            _check_integer_range(label, datatype, data)
        if isinstance(data, bytes):
            data = from_raw(name, datatype, shape, data)
        elif isinstance(data, np.ndarray) and data.size != element_count(shape):
            raise InvalidInput(
                f"{label}: shape {shape} needs {element_count(shape)} values, got {data.size}"
            )
        elif not isinstance(data, list | np.ndarray):
            raise InvalidInput(f"{label}: data must be a list, flat or nested")
        tensors.append(Tensor(name, datatype, shape, data))
    return tensors


def _flat(tensor: Tensor) -> list[Any]:
    """Row-major values of nested JSON data."""
    data = tensor.data
    assert isinstance(data, list)
    while data and isinstance(data[0], list):
        data = [value for part in data for value in part]
    return data


def _split_rows(flat: list[Any], shape: list[int]) -> list[list[Any]]:
    """Flat row-major values as the rows of a `[rows, width]` shape."""
    if len(flat) != element_count(shape):
        raise InvalidInput(
            f"input shape {shape} needs {element_count(shape)} values, got {len(flat)}"
        )
    rows, width = shape
    return [flat[i * width : (i + 1) * width] for i in range(rows)]


def _tensor_rows(tensor: Tensor, schema: InputSchema, max_rows: int) -> np.ndarray:
    """One `[rows, inputSize]` numeric tensor."""
    shape, width = tensor.shape, schema.width
    if tensor.datatype not in _NUMERIC:
        raise InvalidInput(
            f"input {tensor.name!r}: datatype {tensor.datatype} is not numeric; "
            "this model takes numbers (FP64, FP32, INT64, ...)"
        )
    if len(shape) != 2 or shape[1] != width:
        raise InvalidInput(
            f"input {tensor.name!r}: shape {shape}, expected [rows, {width}] (inputSize)"
        )
    check_row_total(shape[0], max_rows)
    if isinstance(tensor.data, np.ndarray):
        rows = tensor.data.reshape(shape).astype(np.float64)
        if not np.isfinite(rows).all():
            row = int(np.argmin(np.isfinite(rows).all(axis=1)))
            raise InvalidInput(f"row {row}: expected finite numbers, got {rows[row].tolist()}")
        return rows
    data = tensor.data
    if data and not isinstance(data[0], list):
        data = _split_rows(data, shape)
    rows = to_rows(data, width, max_rows)
    if len(rows) != shape[0]:
        raise InvalidInput(f"input shape {shape} declares {shape[0]} rows, data has {len(rows)}")
    return rows


def _column(tensor: Tensor, column: Column) -> np.ndarray:
    """A `[rows]` or `[rows, 1]` tensor as the column's values."""
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise InvalidInput(
            f"input {tensor.name!r}: shape {tensor.shape}, expected [rows] or [rows, 1]"
        )
    values = tensor.data.reshape(-1) if isinstance(tensor.data, np.ndarray) else _flat(tensor)
    if len(values) != tensor.shape[0]:
        raise InvalidInput(
            f"input {tensor.name!r}: shape {tensor.shape} needs {tensor.shape[0]} values, "
            f"got {len(values)}"
        )
    if isinstance(values, np.ndarray):
        return from_array(values, column)
    return to_column(values, column)


def _by_position(tensor: Tensor, schema: InputSchema, max_rows: int) -> Table:
    """One `[rows, columns]` tensor holding the columns in the schema's order."""
    shape, width = tensor.shape, schema.width
    if len(shape) != 2 or shape[1] != width:
        raise InvalidInput(
            f"input {tensor.name!r} is not one of the model's inputs ({', '.join(schema.names)}); "
            f"as one tensor of every column its shape must be [rows, {width}], got {shape}"
        )
    check_row_total(shape[0], max_rows)
    if isinstance(tensor.data, np.ndarray):
        matrix = tensor.data.reshape(shape)
        return Table({c.name: from_array(matrix[:, j], c) for j, c in enumerate(schema)})
    return tables.from_rows(_split_rows(_flat(tensor), shape), schema, max_rows)


def _by_name(tensors: list[Tensor], schema: InputSchema, max_rows: int) -> Table:
    by_name = {t.name: t for t in tensors}
    for column in schema:
        if column.name not in by_name:
            raise InvalidInput(
                f"missing input {column.name!r}: send one tensor per column "
                f"({', '.join(schema.names)})"
            )
    unknown = [t.name for t in tensors if t.name not in schema.names]
    if unknown or len(by_name) != len(tensors):
        problem = f"unknown input {unknown[0]!r}" if unknown else "an input is sent twice"
        raise InvalidInput(f"{problem}; the model takes {', '.join(schema.names)}")
    counts = {t.name: t.rows for t in tensors}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{n!r} has {c}" for n, c in counts.items())
        raise InvalidInput(f"ragged inputs: every column needs the same number of rows ({shown})")
    check_row_total(tensors[0].rows, max_rows)
    return Table({c.name: _column(by_name[c.name], c) for c in schema})


def decode_inputs(tensors: list[Tensor], schema: InputSchema, max_rows: int) -> ModelInput:
    """The model input the request's tensors carry, for `schema`."""
    if schema.layout == "tensor":
        if len(tensors) != 1:
            raise InvalidInput(
                f"expected one input tensor [rows, {schema.width}], got {len(tensors)}"
            )
        return check_range(_tensor_rows(tensors[0], schema, max_rows), schema.value_limit)
    if len(tensors) == 1 and tensors[0].name not in schema.names:
        if len(schema.columns) == 1:
            only = tensors[0]
            check_row_total(only.rows, max_rows)
            return Table({schema.columns[0].name: _column(only, schema.columns[0])})
        return _by_position(tensors[0], schema, max_rows)
    return _by_name(tensors, schema, max_rows)


def as_declared(values: np.ndarray) -> np.ndarray:
    """An output widened to the datatype the model metadata declares for it (`datatype_of`):
    float32 (XGBoost's `predict`) to float64, int32 or unsigned labels to int64, so the type
    every wire form names is the width its bytes have. No copy when already that wide."""
    kind = values.dtype.kind
    if kind == "f" and values.dtype != np.float64:
        return values.astype(np.float64)
    if kind in "iu" and values.dtype != np.int64:
        return values.astype(np.int64)
    return values


def datatype_of(values: np.ndarray) -> str:
    """The V2 datatype of an output array (strings and other objects are BYTES); an array
    passed through `as_declared` is exactly as wide as the datatype says."""
    kind = values.dtype.kind
    if kind == "f":
        return "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"
