"""A bare V2 gRPC server: an empty `ModelInfer` answering one fixed message, nothing else.

    python grpc_bare.py asyncio|threads PORT

What grpcio itself costs per call, the physical limit of each kind of grpcio server on this
machine: the real service's gRPC figures read as a fraction of these. `asyncio`: grpcio's
asyncio server on uvloop (as `mda serve` runs it); `threads`: grpcio's thread-pool server.
"""

import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc

THREADS = 4  # the pool size that answered fastest here (2, 4, 8 and 16 were tried)

_REPLY = pb.ModelInferResponse(model_name="logreg", model_version="1")
_REPLY.outputs.add(name="predict_proba", datatype="FP64", shape=[1, 2])
_REPLY.raw_output_contents.append(np.array([0.5, 0.5]).tobytes())


class AsyncServicer(pb_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        return _REPLY


class ThreadServicer(pb_grpc.GRPCInferenceServiceServicer):
    def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        return _REPLY


async def serve_asyncio(address: str) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(AsyncServicer(), server)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    address = f"127.0.0.1:{port}"
    if kind == "asyncio":
        import uvloop

        uvloop.run(serve_asyncio(address))
        return
    server = grpc.server(futures.ThreadPoolExecutor(THREADS))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(ThreadServicer(), server)
    server.add_insecure_port(address)
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
