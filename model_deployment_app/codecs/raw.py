"""Raw tensor bytes, as the V2 binary extension and gRPC's `raw_*_contents` carry them:
little-endian, row-major; `BOOL` one byte per element; `BYTES` each element's 4-byte
little-endian length, then its bytes."""

import math

import numpy as np

from model_deployment_app.errors import MalformedRequest
from model_deployment_app.schema import DTYPES


def element_count(shape: list[int]) -> int:
    return math.prod(shape)


def _strings(raw: bytes, shape: list[int], name: str) -> np.ndarray:
    count = element_count(shape)
    if count * 4 > len(raw):  # a 4-byte length each: checked before count sizes the array
        raise MalformedRequest(
            f"input {name!r}: shape {shape} of BYTES needs at least {count * 4} bytes, "
            f"got {len(raw)}"
        )
    values = np.empty(count, dtype=object)
    view, offset = memoryview(raw), 0
    for index in range(count):
        if offset + 4 > len(raw):
            raise MalformedRequest(
                f"input {name!r}: BYTES element {index} has no length prefix: the data ends "
                f"at byte {len(raw)}"
            )
        length = int.from_bytes(view[offset : offset + 4], "little")
        offset += 4
        if offset + length > len(raw):
            raise MalformedRequest(
                f"input {name!r}: BYTES element {index} says {length} bytes, past the end of "
                f"its {len(raw)} bytes of data"
            )
        values[index] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise MalformedRequest(
            f"input {name!r}: {len(raw) - offset} bytes left after its {count} BYTES elements"
        )
    return values


def from_raw(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """A flat array of the tensor's elements from its raw bytes; 400 when they do not hold
    exactly `shape`'s count of `datatype` elements."""
    if datatype == "BYTES":
        return _strings(raw, shape, name)
    count = element_count(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise MalformedRequest(
            f"input {name!r}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype)


def to_raw(values: np.ndarray) -> bytes:
    """An output's raw bytes: fixed-size values little-endian, anything else as BYTES."""
    flat = values.ravel()
    if flat.dtype.kind in "fiub":
        return flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
    parts = []
    for value in flat:
        encoded = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(encoded).to_bytes(4, "little") + encoded)
    return b"".join(parts)
