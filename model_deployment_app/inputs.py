"""The one model-input type the data plane sees, whatever the wire form was.

A model that takes rows of numbers gets a float64 array of shape (rows, inputSize); a model
with named inputs gets a `Table`: one typed 1-D array per column. Both can be counted,
sliced by row, concatenated (batching) and keyed per row (the cache), with the functions here.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


class Table:
    """Named columns of equal length, each a 1-D array of the column's declared dtype
    (strings as an object array of `str`)."""

    __slots__ = ("columns",)

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, rows: Any) -> "Table":
        return Table({name: values[rows] for name, values in self.columns.items()})

    def __repr__(self) -> str:
        return f"Table({len(self)} rows: {', '.join(self.columns)})"

    def row_keys(self) -> list[bytes]:
        """Bytes that tell rows apart exactly: fixed-width values as their bytes, strings
        length-prefixed, so `("1", 1)` and `(1, "1")` never share a key."""
        count = len(self)
        fixed = [v for v in self.columns.values() if v.dtype != object]
        texts = [v for v in self.columns.values() if v.dtype == object]
        packed = (
            np.hstack([np.ascontiguousarray(v).view(np.uint8).reshape(count, -1) for v in fixed])
            if fixed
            else np.empty((count, 0), np.uint8)
        )
        if not texts:
            return [row.tobytes() for row in packed]
        keys = []
        for index in range(count):
            parts = [packed[index].tobytes()]
            for column in texts:
                encoded = column[index].encode("utf-8", "surrogatepass")
                parts.append(len(encoded).to_bytes(4, "little") + encoded)
            keys.append(b"".join(parts))
        return keys


ModelInput = np.ndarray | Table


def concat(parts: Sequence[ModelInput]) -> ModelInput:
    """One input holding the rows of every part, in order (one batch for the model)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, Table):
        return Table(
            {
                name: np.concatenate([p.columns[name] for p in parts])  # type: ignore[union-attr]
                for name in first.columns
            }
        )
    return np.concatenate(parts)  # type: ignore[arg-type]


# Rows longer than this (128 float64 features) are keyed by a 128-bit digest, so that a wide
# model's cache holds its answers, not copies of its inputs (a 1,000-feature row is 8 KB).
_LONGEST_RAW_KEY = 1024


def _compact(row: bytes) -> bytes:
    if len(row) <= _LONGEST_RAW_KEY:
        return b"r" + row
    return b"h" + hashlib.blake2b(row, digest_size=16).digest()


def row_keys(rows: ModelInput, prefix: bytes) -> list[bytes]:
    """One cache key per row: `prefix` (model, schema, output) + the row's exact bytes, or
    their 128-bit BLAKE2 digest for long rows."""
    if isinstance(rows, Table):
        return [prefix + _compact(key) for key in rows.row_keys()]
    if rows.shape[1] * rows.itemsize <= _LONGEST_RAW_KEY:
        return [prefix + b"r" + row.tobytes() for row in rows]
    return [prefix + _compact(row.tobytes()) for row in rows]
