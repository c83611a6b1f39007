"""The Open Inference Protocol's semantics, shared by its HTTP (`api/v2.py`) and gRPC
(`api/grpc.py`) transports: which model and version a request names, its metadata, which
outputs it asks for, and their values."""

import json
from typing import Any

import numpy as np

from model_deployment_app import __version__
from model_deployment_app.codecs.v2 import Tensor, as_declared, datatype_of, decode_inputs
from model_deployment_app.errors import InvalidInput, ModelNotFound, ReloadRefused
from model_deployment_app.handler import DataPlane
from model_deployment_app.lifecycle import ModelWatcher, ReloadResult
from model_deployment_app.predictor import PREDICT_PROBA, LoadedModel

CLASSES = "classes"  # an output a classifier offers: its labels, in predict_proba's order
EXTENSIONS = ("binary_tensor_data",)


def server_metadata() -> dict[str, Any]:
    return {"name": "model_deployment_app", "version": __version__, "extensions": EXTENSIONS}


async def model_for(plane: DataPlane, name: str, version: str | None = None) -> LoadedModel:
    """The served model, if `name` (and `version`, when given) are its own; else 404. In a
    pool, a model not loaded now is loaded first."""
    model = await plane.acquire()
    if name != model.name:
        raise ModelNotFound(f"model {name!r} not found; this server serves {model.name!r}")
    if version and version != model.version:
        raise ModelNotFound(
            f"model {name!r} has no version {version!r}; it serves version {model.version!r}"
        )
    return model


def offered_outputs(model: LoadedModel) -> tuple[str, ...]:
    return (*model.outputs, CLASSES) if model.classes is not None else model.outputs


def _input_metadata(model: LoadedModel) -> list[dict[str, Any]]:
    schema = model.schema
    if schema.layout == "tensor":
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, schema.width]}]
    return [{"name": c.name, "datatype": c.datatype, "shape": [-1]} for c in schema]


def _output_metadata(model: LoadedModel, name: str) -> dict[str, Any]:
    if name == CLASSES:
        labels = np.asarray(model.classes)
        return {"name": name, "datatype": datatype_of(labels), "shape": [len(labels)]}
    if name == PREDICT_PROBA or model.job == "regression":
        width = model.output_width
        return {"name": name, "datatype": "FP64", "shape": [-1] if width is None else [-1, width]}
    labels = np.asarray(model.classes)
    return {"name": name, "datatype": datatype_of(labels), "shape": [-1]}


def metadata(model: LoadedModel) -> dict[str, Any]:
    """Model metadata; `parameters` hold scalars only, as the protocol allows (the classes
    as a JSON list in a string, and as the `classes` output)."""
    parameters: dict[str, Any] = {
        "job": model.job, "sha256": model.sha256, "engine": model.engine_name,
    }  # fmt: skip
    if model.classes is not None:
        parameters[CLASSES] = json.dumps(model.classes)
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": model.platform,
        "inputs": _input_metadata(model),
        "outputs": [_output_metadata(model, name) for name in offered_outputs(model)],
        "parameters": parameters,
    }


def requested_outputs(names: list[str], model: LoadedModel) -> list[str]:
    """The outputs asked for by name (default: the job's own), each one the model offers."""
    offered = offered_outputs(model)
    for name in names:
        if name not in offered:
            raise InvalidInput(f"unknown output {name!r}: this model offers {', '.join(offered)}")
    return names or [model.default_output]


async def infer(
    plane: DataPlane, model: LoadedModel, tensors: list[Tensor], outputs: list[str]
) -> list[tuple[str, np.ndarray]]:
    """Each requested output's values for the request's inputs."""
    rows = decode_inputs(tensors, model.schema, plane.settings.server.max_rows)
    results = []
    for name in outputs:
        if name == CLASSES:
            results.append((name, as_declared(np.asarray(model.classes))))
        else:
            results.append((name, as_declared(await plane.infer(model, rows, name))))
    return results


async def load(plane: DataPlane, watcher: ModelWatcher | None, name: str) -> ReloadResult:
    """The repository extension's load: the source's current version of `name` now, not at
    the next poll (a no-op when it is the one serving). A new version the checks refuse is a
    409, and the old one serves on."""
    await model_for(plane, name)  # in a pool, loaded first if it is not
    if watcher is None:
        raise ModelNotFound(f"model {name!r} has no source to reload from")
    result = await watcher.check(force=True)
    if result.outcome == "refused":
        raise ReloadRefused(
            f"the new version was refused: {result.error}; still serving {result.version}"
        )
    return result
