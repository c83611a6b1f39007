"""Drive a server with a real V2 client library, as its users would, and print what it got.

    v2_clients.py CLIENT URL SPEC

CLIENT: triton-http | triton-grpc | kserve-rest | kserve-grpc. URL: host:port (HTTP or gRPC).
SPEC (JSON): {"model": name, "version": "" or a version, "binary": bool,
              "inputs": [{"name", "datatype", "data": nested list}], "outputs": [names]}.
Prints {"ready": ..., "metadata": {...}, "outputs": {name: {"shape", "data"}}}; BYTES come
back decoded as UTF-8 strings.
"""

import asyncio
import json
import sys
from typing import Any

import numpy as np

_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
          "BOOL": np.bool_, "BYTES": np.object_}  # fmt: skip


def arrays(spec: dict[str, Any]) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for item in spec["inputs"]:
        values = item["data"]
        if item["datatype"] == "BYTES":
            array = np.array([v.encode() for v in np.ravel(values)], dtype=np.object_)
            array = array.reshape(np.shape(values))
        else:
            array = np.array(values, dtype=_NUMPY[item["datatype"]])
        out.append((item["name"], item["datatype"], array))
    return out


def plain(array: np.ndarray) -> dict[str, Any]:
    if array.dtype == np.object_:
        data = [v.decode() if isinstance(v, bytes) else v for v in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"shape": list(array.shape), "data": data}


def triton(kind: str, url: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "http":
        import tritonclient.http as client_lib
    else:
        import tritonclient.grpc as client_lib  # type: ignore[no-redef]
    client = client_lib.InferenceServerClient(url=url)
    version = spec.get("version", "")
    inputs = []
    for name, datatype, array in arrays(spec):
        tensor = client_lib.InferInput(name, list(array.shape), datatype)
        if kind == "http":
            tensor.set_data_from_numpy(array, binary_data=spec.get("binary", True))
        else:
            tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    if kind == "http":
        outputs = [client_lib.InferRequestedOutput(n, binary_data=spec.get("binary", True))
                   for n in spec["outputs"]]  # fmt: skip
    else:
        outputs = [client_lib.InferRequestedOutput(n) for n in spec["outputs"]]
    result = client.infer(spec["model"], inputs, model_version=version, outputs=outputs or None)
    as_json = {"as_json": True} if kind == "grpc" else {}
    names = spec["outputs"] or [o["name"] for o in result.get_response(**as_json)["outputs"]]
    metadata = client.get_model_metadata(spec["model"], model_version=version, **as_json)
    return {
        "ready": client.is_server_ready() and client.is_model_ready(spec["model"], version),
        "metadata": metadata,
        "outputs": {n: plain(result.as_numpy(n)) for n in names},
    }


async def kserve(kind: str, url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from kserve import (
        InferenceGRPCClient,
        InferenceRESTClient,
        InferInput,
        InferRequest,
        RESTConfig,
    )
    from kserve.protocol.infer_type import RequestedOutput

    inputs = []
    for name, datatype, array in arrays(spec):
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=spec.get("binary", True) and kind == "rest")
        inputs.append(tensor)
    requested = [RequestedOutput(n, parameters={"binary_data": spec.get("binary", True)})
                 for n in spec["outputs"]] or None  # fmt: skip
    request = InferRequest(spec["model"], inputs, request_outputs=requested,
                           model_version=spec.get("version") or None)  # fmt: skip
    if kind == "rest":
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        response = await client.infer(f"http://{url}", request, model_name=spec["model"])
        ready = await client.is_model_ready(f"http://{url}", spec["model"])
    else:
        client = InferenceGRPCClient(url, retries=0)
        response = await client.infer(request)
        ready = await client.is_model_ready(spec["model"])
    await client.close()
    return {
        "ready": ready,
        "metadata": {},
        "outputs": {o.name: plain(o.as_numpy()) for o in response.outputs},
    }


def main() -> None:
    client, url, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    family, kind = client.split("-")
    result = triton(kind, url, spec) if family == "triton" else asyncio.run(kserve(kind, url, spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
