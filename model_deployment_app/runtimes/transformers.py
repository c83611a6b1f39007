"""transformers: a `save_pretrained` sequence-classification folder (`modelType: transformers`),
served as a `TextClassifier`.

Safety first: local files only (the hub is never contacted, offline mode is forced), no code
from the folder (a config asking for remote code is refused), weights from safetensors or
through torch's weights-only loader. A folder that is not a sequence-classification model, or
whose head does not fit the job, is refused in one line naming what is wrong.
"""

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from model_deployment_app.errors import StartupError
from model_deployment_app.runtimes import LoadContext, Runtime
from model_deployment_app.runtimes.text_classifier import TextClassifier
from model_deployment_app.runtimes.threads import threads_per_worker, use_threads
from model_deployment_app.settings import TextModelSettings

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StartupError(f"{path.name} in the model folder is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise StartupError(f"{path.name} in the model folder is not a JSON object")
    return data


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def find_folders(root: Path) -> tuple[Path, Path]:
    """The folder holding `config.json` and the weights, and the one holding the tokenizer:
    both `root` for a `save_pretrained` folder; inside it for MLflow's transformers flavour
    (`model/` and `components/tokenizer/`)."""
    if (root / "config.json").is_file():
        model = root
    else:
        found = sorted({p.parent for p in root.rglob("config.json")})
        if len(found) != 1:
            names = ", ".join(sorted(p.name for p in root.iterdir())) if root.is_dir() else ""
            raise StartupError(
                f"{root.name} is not a transformers model folder: expected one config.json "
                f"(written by save_pretrained), found {len(found)} in: {names or 'nothing'}"
            )
        model = found[0]
    if _has_tokenizer(model):
        return model, model
    candidates = sorted(p.parent for p in root.rglob("tokenizer_config.json"))
    if not candidates:
        raise StartupError(
            f"the model folder {root.name} has no tokenizer (tokenizer.json or "
            "tokenizer_config.json): save it with tokenizer.save_pretrained(folder)"
        )
    return model, candidates[0]


def _check_config(config: dict[str, Any], tokenizer_config: dict[str, Any], job: str) -> None:
    for where, data in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        asks = [key for key in ("auto_map", "trust_remote_code") if data.get(key)]
        if asks:
            raise StartupError(
                f"the model folder's {where} asks for remote code ({', '.join(asks)}): refused; "
                "only architectures that ship with transformers are served"
            )
    architectures = config.get("architectures") or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise StartupError(
            f"the model folder holds a {', '.join(architectures)}, not a sequence-classification "
            "model (a ...ForSequenceClassification, e.g. saved from "
            "AutoModelForSequenceClassification)"
        )
    labels = config.get("id2label") or {}
    count = len(labels) or int(config.get("num_labels", 2))
    problem = config.get("problem_type")
    if job == "classification":
        if problem == "regression" or (count < 2 and problem != "multi_label_classification"):
            raise StartupError(
                f"job is classification but the model has a regression head "
                f"(problem_type {problem or 'unset'}, {count} label(s)): set job: regression"
            )
    elif problem in ("single_label_classification", "multi_label_classification") or (
        problem is None and count > 1
    ):
        raise StartupError(
            f"job is regression but the model is a classifier ({count} labels, problem_type "
            f"{problem or 'unset'}): set job: classification, or problem_type regression"
        )


def _weights_format(folder: Path) -> bool:
    """True for safetensors; False for a PyTorch file (loaded weights-only)."""
    if any(folder.glob("*.safetensors")):
        return True
    if any(folder.glob("pytorch_model*.bin")):
        return False
    raise StartupError(
        f"the model folder {folder.name} has no weights (model.safetensors or pytorch_model.bin)"
    )


def _max_length(model: Any, tokenizer: Any, configured: int | None) -> int:
    limits = [configured or math.inf]
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    found = min(limits)
    return 512 if found == math.inf else int(found)


def _device(settings: TextModelSettings) -> Any:
    import torch

    wanted = settings.torch_device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        log.warning("MDA_TORCH_DEVICE=cuda but CUDA is not available; running on the CPU")
        wanted = "cpu"
    if settings.torch_dtype != "float32" and wanted != "cuda":
        raise StartupError(
            f"MDA_TORCH_DTYPE={settings.torch_dtype} needs a CUDA device; use float32 on the CPU"
        )
    return torch.device(wanted)


def load_text_classifier(
    root: Path, job: str, settings: TextModelSettings, workers: int = 1
) -> TextClassifier:
    """The folder at `root` as a `TextClassifier` ready to serve `job`."""
    for key, value in _OFFLINE.items():
        os.environ[key] = value
    if not root.is_dir():
        raise StartupError(
            f"{root} is not a folder: modelType transformers serves a folder written by "
            "save_pretrained (config.json, model.safetensors, the tokenizer files)"
        )
    model_dir, tokenizer_dir = find_folders(root)
    tokenizer_json = tokenizer_dir / "tokenizer_config.json"
    _check_config(
        _read_json(model_dir / "config.json"),
        _read_json(tokenizer_json) if tokenizer_json.is_file() else {},
        job,
    )
    safetensors = _weights_format(model_dir)
    try:
        import torch
        import transformers
    except ImportError as error:
        raise StartupError(
            f"modelType transformers needs the transformers extra ({error.name} is missing): "
            "from a checkout of the repository, pip install -e '.[transformers]' (torch's CPU "
            "build first: make install does both), or the image built with WITH_TRANSFORMERS=true "
            "(tag <version>-transformers)"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    device = _device(settings)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            tokenizer_dir, local_files_only=True, trust_remote_code=False
        )
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False, use_safetensors=safetensors
        )
    except StartupError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise StartupError(
            f"cannot load the transformers model in {root.name}: {type(error).__name__}: {first}"
        ) from None
    model = model.to(device=device, dtype=getattr(torch, settings.torch_dtype)).eval()
    threads = settings.torch_threads or threads_per_worker(workers)
    use_threads(torch.set_num_threads, threads, workers)
    log.info(
        "transformers model %s on %s (%s), %d torch thread(s) per worker",
        type(model).__name__, device, settings.torch_dtype, threads,
    )  # fmt: skip
    return TextClassifier(
        model,
        tokenizer,
        job=job,
        max_length=_max_length(model, tokenizer, settings.text_max_length),
        token_budget=settings.text_token_budget,
        device=device,
    )


class TransformersRuntime(Runtime):
    platform = "transformers"
    extra = "transformers"
    image_variant = "transformers"
    folder = True
    takes_text = True
    inline = False
    mlflow_flavor = "transformers"

    def load(self, path: Path, context: LoadContext) -> Any:
        settings = context.settings
        return load_text_classifier(
            path, context.config.job, settings.text, settings.server.workers
        )


RUNTIME = TransformersRuntime()
