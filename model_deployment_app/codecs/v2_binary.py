"""The V2 binary tensor data extension over HTTP, as Triton and KServe define it.

A request body is a JSON header of `Inference-Header-Content-Length` bytes, then the raw data
(see `raw`) of each input whose `parameters.binary_data_size` says how many bytes it takes,
in input order. A response carries an output the same way when the request asks for it
(`binary_data` on the output, or `binary_data_output` on the request).
"""

from typing import Any

import numpy as np
import orjson

from model_deployment_app.codecs.raw import to_raw
from model_deployment_app.codecs.v2 import Tensor, read_tensors
from model_deployment_app.errors import MalformedRequest

HEADER_LENGTH = b"inference-header-content-length"


def read_request(body: bytes, header_value: bytes, max_rows: int) -> tuple[Any, list[Tensor]]:
    """The JSON header and the input tensors of a binary request."""
    if not header_value.isdigit() or int(header_value) > len(body):
        raise MalformedRequest(
            f"Inference-Header-Content-Length {header_value.decode(errors='replace')!r} must be "
            f"a byte count within the body's {len(body)} bytes"
        )
    split = int(header_value)
    try:
        payload = orjson.loads(body[:split])
    except orjson.JSONDecodeError as error:
        raise MalformedRequest(f"malformed JSON in the binary request's header: {error}") from None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    offset = split
    for item in inputs if isinstance(inputs, list) else []:
        parameters = item.get("parameters") if isinstance(item, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        name = item.get("name")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedRequest(f"input {name!r}: binary_data_size must be a byte count")
        if offset + size > len(body):
            raise MalformedRequest(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(body) - offset} bytes left)"
            )
        item["data"] = body[offset : offset + size]
        offset += size
    if offset != len(body):
        raise MalformedRequest(
            f"{len(body) - offset} bytes of binary data follow the last input's binary_data_size"
        )
    return payload, read_tensors(payload, max_rows)


def wants_binary(payload: dict[str, Any], output: str) -> bool:
    """Whether the request asks for `output` as binary data."""
    default = False
    parameters = payload.get("parameters")
    if isinstance(parameters, dict):
        default = parameters.get("binary_data_output") is True
    for requested in payload.get("outputs") or ():
        if isinstance(requested, dict) and requested.get("name") == output:
            wanted = requested.get("parameters")
            if isinstance(wanted, dict) and "binary_data" in wanted:
                return wanted["binary_data"] is True
    return default


def encode_response(reply: dict[str, Any], binary: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """The body of a reply whose outputs named in `binary` go as raw data after the JSON
    header (their `data` left out), and the header's length."""
    chunks = []
    for tensor in reply["outputs"]:
        values = binary.get(tensor["name"])
        if values is None:
            continue
        raw = to_raw(values)
        tensor.pop("data", None)
        tensor.setdefault("parameters", {})["binary_data_size"] = len(raw)
        chunks.append(raw)
    header = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
    return header + b"".join(chunks), len(header)
