"""Call every RPC the server offers with tritonclient's gRPC client, sync or asyncio, as its
users would, and print what came back.

    triton_grpc_rpcs.py sync|aio HOST:PORT MODEL ROWS_JSON

Prints {"live", "ready", "server", "model_ready", "metadata", "index", "proba", "classes",
"unknown_model", "load"}: `unknown_model` and `load` are the status codes and messages of an
infer for a model the server lacks and of a repository load without an admin token.
"""

import asyncio
import json
import sys
from typing import Any

import numpy as np


def _inputs(client_lib: Any, rows: np.ndarray) -> list[Any]:
    tensor = client_lib.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    return [tensor]


def _refusal(error: Any) -> dict[str, str]:
    return {"status": str(error.status()), "message": error.message()}


def sync(url: str, model: str, rows: np.ndarray) -> dict[str, Any]:
    import tritonclient.grpc as client_lib
    from tritonclient.utils import InferenceServerException

    client = client_lib.InferenceServerClient(url)
    outputs = [client_lib.InferRequestedOutput(n) for n in ("predict_proba", "classes")]
    result = client.infer(model, _inputs(client_lib, rows), outputs=outputs, client_timeout=30)
    found: dict[str, Any] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "server": client.get_server_metadata(as_json=True),
        "model_ready": client.is_model_ready(model),
        "metadata": client.get_model_metadata(model, as_json=True),
        "index": client.get_model_repository_index(as_json=True),
        "proba": result.as_numpy("predict_proba").tolist(),
        "classes": [c.decode() for c in result.as_numpy("classes").tolist()],
    }
    try:
        client.infer("no-such-model", _inputs(client_lib, rows))
    except InferenceServerException as error:
        found["unknown_model"] = _refusal(error)
    try:
        client.load_model(model)
    except InferenceServerException as error:
        found["load"] = _refusal(error)
    client.close()
    return found


async def aio(url: str, model: str, rows: np.ndarray) -> dict[str, Any]:
    import tritonclient.grpc as client_lib
    import tritonclient.grpc.aio as aio_lib
    from tritonclient.utils import InferenceServerException

    client = aio_lib.InferenceServerClient(url)
    outputs = [client_lib.InferRequestedOutput(n) for n in ("predict_proba", "classes")]
    result = await client.infer(
        model, _inputs(client_lib, rows), outputs=outputs, client_timeout=30
    )
    found: dict[str, Any] = {
        "live": await client.is_server_live(),
        "ready": await client.is_server_ready(),
        "server": await client.get_server_metadata(as_json=True),
        "model_ready": await client.is_model_ready(model),
        "metadata": await client.get_model_metadata(model, as_json=True),
        "index": await client.get_model_repository_index(as_json=True),
        "proba": result.as_numpy("predict_proba").tolist(),
        "classes": [c.decode() for c in result.as_numpy("classes").tolist()],
    }
    try:
        await client.infer("no-such-model", _inputs(client_lib, rows))
    except InferenceServerException as error:
        found["unknown_model"] = _refusal(error)
    try:
        await client.load_model(model)
    except InferenceServerException as error:
        found["load"] = _refusal(error)
    await client.close()
    return found


def main() -> None:
    kind, url, model, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    array = np.array(rows, dtype=np.float64)
    found = sync(url, model, array) if kind == "sync" else asyncio.run(aio(url, model, array))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
