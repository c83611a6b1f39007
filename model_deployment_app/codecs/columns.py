"""One column's values, checked against its declared datatype, as a 1-D array of its dtype.

Every codec for named inputs ends here, so a string in a numeric column, a number in a
`BYTES` one, `true` among numbers, an integer out of its type's range or a non-finite float
get the same 422 whichever wire form they came in, naming the row and the column.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from model_deployment_app.errors import InvalidInput, as_sent
from model_deployment_app.schema import Column

# Python types a JSON value may have in a column of each kind (bool is not a number here).
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "b": (bool,),
    "i": (int,),
    "u": (int,),
    "f": (int, float),
    "O": (str,),
}
_EXPECTED = {
    "b": "true or false",
    "i": "an integer",
    "u": "a non-negative integer",
    "f": "a number",
    "O": "a string",
}
_WIDE: dict[str, type] = {"b": np.bool_, "i": np.int64, "u": np.uint64, "f": np.float64}


def _refuse(column: Column, row: int, value: Any, expected: str | None = None) -> InvalidInput:
    expected = expected or f"{_EXPECTED[column.kind]} ({column.datatype})"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return InvalidInput(
        f"row {row}, column {column.name!r}: expected {expected}, got {as_sent(value)}"
    )


def _first(values: Any, bad: Callable[[Any], bool]) -> int:
    return next((i for i, v in enumerate(values) if bad(v)), 0)


def _overflows(value: Any, dtype: Any) -> bool:
    try:
        np.array(value, dtype=dtype)
    except (OverflowError, ValueError):
        return True
    return False


def _narrow(wide: np.ndarray, column: Column) -> np.ndarray:
    """Cast a numeric or bool array to the column's dtype, refusing values the dtype cannot
    hold rather than letting them wrap around or turn infinite."""
    dtype = column.dtype
    if column.kind == "f":
        wide = wide.astype(np.float64, copy=False)
        finite = np.isfinite(wide)
        if not finite.all():
            row = int(np.argmin(finite))
            raise _refuse(column, row, wide[row], f"a finite number ({column.datatype})")
        limit = np.finfo(dtype).max
        if dtype != np.float64 and not (inside := np.abs(wide) <= limit).all():
            row = int(np.argmin(inside))
            raise _refuse(
                column, row, wide[row], f"a number within ±{limit:.4g} ({column.datatype})"
            )
    elif column.kind in "iu":
        info = np.iinfo(dtype)
        if not (inside := (wide >= info.min) & (wide <= info.max)).all():
            row = int(np.argmin(inside))
            expected = f"an integer in [{info.min}, {info.max}] ({column.datatype})"
            raise _refuse(column, row, wide[row], expected)
    return wide.astype(dtype, copy=False)


def _texts(values: np.ndarray, column: Column) -> np.ndarray:
    """Strings as `str`; `bytes` (binary tensors) decoded as UTF-8."""
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise _refuse(column, row, value[:40], "UTF-8 text (BYTES)") from None
        elif not isinstance(value, str):
            raise _refuse(column, row, value)
        out[row] = value
    return out


def from_array(values: np.ndarray, column: Column) -> np.ndarray:
    """A typed array (a binary tensor) into the column: its dtype must be of a compatible
    kind (any number for a float column, integers for an integer one), its values in range."""
    kind = values.dtype.kind
    if column.kind == "O":
        if kind not in "OSU":
            raise _refuse(column, 0, values[0] if len(values) else None)
        return _texts(values, column)
    if kind not in {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}[column.kind]:
        raise _refuse(column, 0, values[0] if len(values) else None)
    return _narrow(values, column)


def to_column(values: list[Any], column: Column) -> np.ndarray:
    """JSON values (a list) into the column, or a 422 naming the first bad row."""
    accepted = _ACCEPTED[column.kind]
    if not set(map(type, values)).issubset(accepted):
        row = _first(values, lambda v: type(v) not in accepted)
        raise _refuse(column, row, values[row])
    if column.kind == "O":
        return np.array(values, dtype=object)
    wide_type = _WIDE[column.kind]
    try:
        wide: np.ndarray = np.array(values, dtype=wide_type)
    except (OverflowError, ValueError):
        row = _first(values, lambda v: _overflows(v, wide_type))
        expected = f"a value within {column.datatype}"
        if column.kind in "iu":
            info = np.iinfo(column.dtype)
            expected = f"an integer in [{info.min}, {info.max}] ({column.datatype})"
        raise _refuse(column, row, values[row], expected) from None
    return _narrow(wide, column)
