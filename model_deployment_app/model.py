"""`PyTorchEstimator`: a torch `nn.Module` behind the scikit-learn estimator interface.

It pickles (and joblib-dumps) its module as a `torch.export` program, so the server loads it
without the training script that defined the module's class. Torch is imported lazily: this
module imports without torch, which only the artifact's loading needs.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator

log = logging.getLogger(__name__)

Job = Literal["classification", "regression"]


class PyTorchEstimator(BaseEstimator):
    """Wrap `module` (logits for classification, outputs for regression).

    `classes` labels the logits in order (default 0..k-1); `device` is "cpu", "cuda" (used
    when available, else CPU with a warning) or "auto"; `batch_size` bounds the rows in one
    forward pass; `n_features` is the row width, inferred from the first `nn.Linear` or the
    first `predict` when not given.
    """

    def __init__(
        self,
        module: Any = None,
        job: Job = "classification",
        classes: Any = None,
        device: str = "cpu",
        batch_size: int = 4096,
        n_features: int | None = None,
    ) -> None:
        self.module = module
        self.job = job
        self.classes = classes
        self.device = device
        self.batch_size = batch_size
        self.n_features = n_features

    # --- the estimator interface -------------------------------------------------------

    def fit(self, X: Any = None, y: Any = None) -> PyTorchEstimator:
        """Training belongs to the user's loop; `fit` only records what serving needs."""
        if X is not None:
            self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        outputs = self._forward(X)
        if self.job == "classification":
            return np.asarray(self.classes_)[outputs.argmax(axis=1)]
        return outputs[:, 0] if outputs.ndim == 2 and outputs.shape[1] == 1 else outputs

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.job != "classification":
            raise AttributeError("predict_proba is only available for job='classification'")
        logits = self._forward(X)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    @property
    def classes_(self) -> np.ndarray:
        if self.job != "classification":
            raise AttributeError("classes_ is only defined for job='classification'")
        if self.classes is not None:
            return np.asarray(self.classes)
        return np.arange(self._n_outputs())

    # --- torch -------------------------------------------------------------------------

    def _torch_device(self) -> Any:
        import torch

        wanted = self.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            log.warning("CUDA was asked for but is not available; running on the CPU")
            wanted = "cpu"
        return torch.device(wanted)

    def _runnable(self) -> Any:
        """The module on its device, in eval mode, moved once and remembered. The module the
        estimator was given is copied first when it must be moved or switched to eval mode:
        `Module.to` and `eval` change it in place, and it may be shared or still training."""
        runnable = self.__dict__.get("_runnable_module")
        if runnable is None:
            import copy

            device = self._torch_device()
            module = self.module
            if _is_graph_module(module):  # our own, unpickled: move it as it is
                module = module.to(device)
            elif _device_of(module) != device or module.training:
                module = copy.deepcopy(module).to(device).eval()
            runnable = (module, device)
            self.__dict__["_runnable_module"] = runnable
        return runnable

    def _forward(self, X: Any) -> np.ndarray:
        import torch

        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError(f"expected a 2-D array of rows, got {rows.ndim} dimensions")
        self.n_features_in_ = rows.shape[1]
        module, device = self._runnable()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                chunk = torch.from_numpy(rows[start : start + self.batch_size]).to(device)
                parts.append(module(chunk).detach().to("cpu", torch.float64).numpy())
        outputs = np.concatenate(parts) if parts else np.empty((0, self._n_outputs()))
        if outputs.ndim == 1:
            outputs = outputs[:, None]
        self.__dict__["_outputs_width"] = outputs.shape[1]
        return outputs

    def _n_outputs(self) -> int:
        width = self.__dict__.get("_outputs_width")
        if width is None:
            self._forward(np.zeros((1, self._input_width())))
            width = self.__dict__["_outputs_width"]
        return int(width)

    def _input_width(self) -> int:
        width = self.n_features or getattr(self, "n_features_in_", None)
        if width:
            return int(width)
        for layer in getattr(self.module, "modules", list)():
            if hasattr(layer, "in_features"):
                return int(layer.in_features)
        raise ValueError(
            "cannot tell the module's input width: pass n_features=... to PyTorchEstimator"
        )

    # --- pickling: the module travels as an exported program ---------------------------

    def __getstate__(self) -> dict[str, Any]:
        import torch

        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_runnable")}
        module = state.pop("module")
        if module is not None and not _is_graph_module(module):
            width = self._input_width()
            module = module.to("cpu").eval()
            example = torch.zeros(2, width)
            batch = torch.export.Dim.DYNAMIC
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            buffer = io.BytesIO()
            torch.export.save(program, buffer)
            state["_exported_program"] = buffer.getvalue()
            state["n_features"] = width
        elif module is not None:
            state["_exported_program"] = state.pop("_exported_bytes")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        exported = state.pop("_exported_program", None)
        self.__dict__.update(state)
        self.module = None
        if exported is not None:
            import torch

            self.module = torch.export.load(io.BytesIO(exported)).module()
            self.__dict__["_exported_bytes"] = exported


def _device_of(module: Any) -> Any:
    """Where the module's first parameter or buffer lives (CPU when it has none)."""
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _is_graph_module(module: Any) -> bool:
    return type(module).__name__ == "GraphModule"
