"""Turn decoded JSON into one float64 array of shape (rows, inputSize), or say what is wrong.

The fast path is one `numpy.array` call; only when it fails do we walk the rows to name the
first bad one.
"""

import math
from itertools import chain
from typing import Any

import numpy as np

from model_deployment_app.errors import InvalidInput, PayloadTooLarge, as_sent

_NUMERIC_KINDS = frozenset("iuf")
_VALUES_LOOKED_AT = 64  # up to this many, the bool check reads the values themselves


def _first_problem(rows: list[Any], width: int) -> str:
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            return f"row {index}: expected a list of {width} numbers, got {type(row).__name__}"
        if len(row) != width:
            return f"row {index}: expected {width} features (inputSize), got {len(row)}"
        for column, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"row {index}, feature {column}: expected a number, got {as_sent(value)}"
            try:
                finite = math.isfinite(value)
            except OverflowError:
                finite = False
            if not finite:
                shown = as_sent(value)
                return f"row {index}, feature {column}: expected a finite number, got {shown}"
    return "rows must be lists of numbers"


def check_row_total(count: int, max_rows: int) -> None:
    """At least one row, at most `max_rows`."""
    if not count:
        raise InvalidInput("empty batch: send at least one row")
    if count > max_rows:
        raise PayloadTooLarge(f"{count} rows in one request; the limit is {max_rows}")


def check_count(rows: Any, max_rows: int, what: str = "rows") -> None:
    """A non-empty list of at most `max_rows` items (every codec's first check)."""
    if not isinstance(rows, list):
        raise InvalidInput(f"expected a list of {what}, got {type(rows).__name__}")
    check_row_total(len(rows), max_rows)


def to_rows(rows: Any, width: int, max_rows: int) -> np.ndarray:
    """Validate `rows` (a list of rows of `width` numbers) into a float64 array."""
    check_count(rows, max_rows)
    try:
        array = np.array(rows)
    except (ValueError, TypeError):
        raise InvalidInput(_first_problem(rows, width)) from None
    if array.dtype.kind not in _NUMERIC_KINDS or array.ndim != 2 or array.shape[1] != width:
        raise InvalidInput(_first_problem(rows, width))
    # numpy reads true and false as 1 and 0. A few values are quicker to look at than to
    # compare; in more, only where a 1 or a 0 is can one have been (count_nonzero: a C loop,
    # where .any() goes through Python first).
    if (
        array.size <= _VALUES_LOOKED_AT or np.count_nonzero((array == 0) | (array == 1))
    ) and bool in set(map(type, chain.from_iterable(rows))):
        raise InvalidInput(_first_problem(rows, width))
    array = array.astype(np.float64, copy=False)
    if np.count_nonzero(np.isfinite(array)) != array.size:
        raise InvalidInput(_first_problem(rows, width))
    return array


def check_range(rows: np.ndarray, limit: float | None) -> np.ndarray:
    """Refuse values past the magnitude the model computes with (float32 for trees), naming
    the first: the model would fail on them, and fail every request batched with them."""
    if limit is not None:
        inside = np.abs(rows) <= limit
        if not inside.all():
            row, feature = (int(i) for i in np.argwhere(~inside)[0])
            raise InvalidInput(
                f"row {row}, feature {feature}: {rows[row, feature]:g} is past what the model "
                f"computes with (float32, at most ±{limit:.4g})"
            )
    return rows
