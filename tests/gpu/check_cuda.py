"""The PyTorch path on a CUDA device: run by hand where a GPU is (it is no part of `make test`,
which runs where there is none; there the CPU fallback is tested instead).

    python tests/gpu/check_cuda.py

Checks, each against the same module's answers on the CPU: `PyTorchEstimator(device="cuda")`
predicts on the GPU; its pickle (a `torch.export` program) loads in a fresh process without
the module's class and runs there on the GPU; `device="auto"` picks the GPU; chunks of
`batch_size` rows give the same answers; and the served app (cache off, batching merging
concurrent requests in its worker thread) answers `/predict` and V2 with the GPU's numbers.
Then the same for a transformers text classifier (`modelType: transformers`, a DistilBERT
built here with random weights): on CUDA in fp32 its answers equal the CPU's within 1e-4,
in float16 within 1e-2, and texts per second on both devices for a DistilBERT-base size.
Prints one line per check and a throughput line; exit status 0 only when all passed.
"""

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from model_deployment_app.model import PyTorchEstimator  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)
    return ok


LOAD_ELSEWHERE = """
import sys, joblib, numpy as np, torch
sys.path.insert(0, {root!r})
estimator = joblib.load({path!r})
rows = np.load({rows!r})
proba = estimator.predict_proba(rows)
module, device = estimator._runnable()
print(device.type, next(iter(module.parameters()), torch.zeros(0, device=device)).device.type)
np.save({out!r}, proba)
"""


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (the CPU fallback is tested by make test)")
        return 1
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
    torch.manual_seed(0)
    rows = np.random.default_rng(0).normal(size=(5000, 16))
    cpu = PyTorchEstimator(Net(), classes=["a", "b", "c"], device="cpu")
    expected = cpu.predict_proba(rows)
    results = []

    gpu = PyTorchEstimator(cpu.module, classes=["a", "b", "c"], device="cuda", batch_size=700)
    got = gpu.predict_proba(rows)
    module, device = gpu._runnable()
    on_gpu = device.type == "cuda" and next(module.parameters()).is_cuda
    results.append(check("device='cuda' runs on the GPU", on_gpu, str(device)))
    results.append(check("GPU answers equal the CPU's, in chunks of 700 rows",
                         np.allclose(got, expected, atol=1e-5),
                         f"max diff {np.abs(got - expected).max():.2e}"))  # fmt: skip
    labels = np.asarray(["a", "b", "c"])[expected.argmax(1)]
    results.append(check("predict gives the classes of the GPU's argmax",
                         bool((gpu.predict(rows) == labels).all())))  # fmt: skip
    auto = PyTorchEstimator(cpu.module, classes=["a", "b", "c"], device="auto")
    results.append(check("device='auto' picks the GPU", auto._runnable()[1].type == "cuda"))

    with tempfile.TemporaryDirectory() as tmp:
        path, data, out = Path(tmp) / "m.joblib", Path(tmp) / "rows.npy", Path(tmp) / "out.npy"
        joblib.dump(PyTorchEstimator(Net().eval(), classes=["a", "b", "c"], device="cuda"), path)
        reference = joblib.load(path)  # this process, to compare with
        np.save(data, rows)
        script = LOAD_ELSEWHERE.format(root=str(ROOT), path=str(path), rows=str(data), out=str(out))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if done.returncode != 0:
            results.append(check("the pickle loads elsewhere", False, done.stderr[-500:]))
        else:
            elsewhere = np.load(out)
            same = np.allclose(elsewhere, reference.predict_proba(rows), atol=1e-5)
            results.append(check("the pickle loads in a fresh process, without Net, on the GPU",
                                 same and done.stdout.split()[:2] == ["cuda", "cuda"],
                                 done.stdout.strip()))  # fmt: skip

    results.append(served(gpu, rows[:64], expected[:64]))

    big = np.random.default_rng(1).normal(size=(200_000, 16))
    for estimator in (cpu, PyTorchEstimator(cpu.module, classes=["a", "b", "c"], device="cuda")):
        estimator.predict_proba(big[:1000])
        started = time.perf_counter()
        estimator.predict_proba(big)
        seconds = time.perf_counter() - started
        print(f"info  {estimator.device}: {len(big) / seconds:,.0f} rows/s on 200,000 rows",
              flush=True)  # fmt: skip
    results += check_transformers()
    return 0 if all(results) else 1


def check_transformers() -> list[bool]:
    from model_deployment_app.runtimes.transformers import load_text_classifier
    from model_deployment_app.settings import TextModelSettings
    from tests.text_models import BASE, SENTENCES, build_text_classifier

    results = []
    texts = [" ".join(SENTENCES[i % len(SENTENCES)].split()[: 5 + i % 30]) for i in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_text_classifier(Path(tmp) / "tiny")
        cpu = load_text_classifier(folder, "classification", TextModelSettings(torch_device="cpu"))
        expected = cpu.predict_proba(texts)
        gpu = load_text_classifier(folder, "classification", TextModelSettings(torch_device="cuda"))
        results.append(
            check("transformers: device cuda runs on the GPU", gpu.device.type == "cuda")
        )
        got = gpu.predict_proba(texts)
        results.append(check("transformers: fp32 GPU answers equal the CPU's within 1e-4",
                             np.allclose(got, expected, atol=1e-4),
                             f"max diff {np.abs(got - expected).max():.2e}"))  # fmt: skip
        half = load_text_classifier(
            folder, "classification", TextModelSettings(torch_device="cuda", torch_dtype="float16")
        )
        got = half.predict_proba(texts)
        results.append(check("transformers: float16 answers within 1e-2",
                             np.allclose(got, expected, atol=1e-2),
                             f"max diff {np.abs(got - expected).max():.2e}"))  # fmt: skip
        base = build_text_classifier(Path(tmp) / "base", size=BASE, vocab_size=30522)
        for device in ("cpu", "cuda"):
            model = load_text_classifier(
                base, "classification", TextModelSettings(torch_device=device)
            )
            model.predict_proba(texts[:20])
            started = time.perf_counter()
            model.predict_proba(texts)
            seconds = time.perf_counter() - started
            print(f"info  transformers {device}: {len(texts) / seconds:,.0f} texts/s "
                  "(DistilBERT-base size, 200 texts in one call)", flush=True)  # fmt: skip
    return results


def served(estimator: PyTorchEstimator, rows: np.ndarray, expected: np.ndarray) -> bool:
    """The app in-process: concurrent single-row requests batched onto the GPU."""
    try:
        import httpx

        from model_deployment_app.api import create_app
        from model_deployment_app.config import parse_config
        from model_deployment_app.predictor import prepare
        from model_deployment_app.settings import CacheSettings, Settings
    except ImportError as error:
        return check("served through the app", False, f"missing {error.name}")
    config = parse_config(
        {"name": "net", "modelType": "joblib", "job": "classification", "inputSize": 16,
         "model": {"method": "LOCAL", "path": "/unused"}}
    )  # fmt: skip
    model = prepare(estimator, config, sha256="0" * 64)
    app = create_app(Settings(cache=CacheSettings(cache_enabled=False)), model=model)

    async def go() -> tuple[list[dict], dict]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gpu") as client,
        ):
            replies = await asyncio.gather(
                *(client.post("/predict", json=[row.tolist()]) for row in rows)
            )
            tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP32",
                      "data": rows.astype(np.float32).ravel().tolist()}  # fmt: skip
            v2 = await client.post("/v2/models/net/infer", json={"inputs": [tensor]})
        return [r.json() for r in replies], v2.json()

    replies, v2 = asyncio.run(go())
    rest = np.asarray([r["predictions"][0] for r in replies])
    v2_values = np.reshape(v2["outputs"][0]["data"], v2["outputs"][0]["shape"])
    same = np.allclose(rest, expected, atol=1e-5) and np.allclose(v2_values, expected, atol=1e-5)
    return check("served: 64 concurrent /predict and one V2 infer answer with the GPU's numbers",
                 bool(same))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
