"""The text-model benchmark: a DistilBERT-base-sized classifier behind `/predict`.

Ten clients (the DistilBERT API's ten virtual users), each request one text of 5 to 40 words
drawn from 1,000 distinct sentences, against:
- the ceiling: the same model's own batched forward pass in this process (tokenize and run
  batches of 10 of the same texts, no HTTP);
- the reference: what the DistilBERT project does, a Starlette endpoint calling
  `transformers.pipeline` per request (`text_reference_app.py`), on the same folder.
Then that project's grading load (95 % of requests repeat a few texts) on both, the memory of
two workers against one, and the start-up time of the 268 MB folder. Weights are random,
built here in seconds; nothing is downloaded.
"""

import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import interrupt
import loadgen
import numpy as np
import orjson
import servers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.text_models import BASE, SENTENCES, build_text_classifier

CLIENTS = 10
DISTINCT = 1000


@dataclass
class TextFigures:
    rows: list[tuple[str, float, float, int]] = field(default_factory=list)  # name, rps, p99, errs
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, float, float]] = field(default_factory=list)  # name, ratio, goal


def sentences(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = sorted(set(" ".join(SENTENCES).split()))
    return [" ".join(rng.choice(words, int(rng.integers(5, 41)))) for _ in range(count)]


def bodies(texts: list[str], count: int, seed: int, repeated: float = 0.0) -> list[bytes]:
    """`count` one-text bodies; with `repeated`, that share of them from ten popular texts."""
    rng = np.random.default_rng(seed)
    popular = texts[:10]
    chosen = [
        popular[rng.integers(10)] if rng.random() < repeated else texts[rng.integers(len(texts))]
        for _ in range(count)
    ]
    return [orjson.dumps({"text": [t]}) for t in chosen]


def ceiling(folder: Path, texts: list[str], seconds: float) -> float:
    """Texts per second of the model's own batched forward pass (batches of 10), in-process."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    done, started, index = 0, time.perf_counter(), 0
    with torch.inference_mode():
        while time.perf_counter() - started < seconds:
            batch = [texts[(index + i) % len(texts)] for i in range(10)]
            index += 10
            model(**tokenizer(batch, padding=True, truncation=True, return_tensors="pt"))
            done += len(batch)
    return done / (time.perf_counter() - started)


def expected_probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    from tests.text_models import forward

    logits = forward(folder, texts)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _load(port: int, requests: list[bytes], duration: float, warmup: float) -> Any:
    built = [loadgen.post_request(servers.HOST, port, "/predict", body) for body in requests]
    if warmup > 0:
        interrupt.run(loadgen.run_load(servers.HOST, port, built, CLIENTS, warmup))
    return interrupt.run(loadgen.run_load(servers.HOST, port, built, CLIENTS, duration))


def _check_answers(port: int, folder: Path, texts: list[str]) -> float:
    """The largest difference between the server's answers and the forward pass."""
    import http.client

    connection = http.client.HTTPConnection(servers.HOST, port, timeout=60)
    got = []
    for text in texts:
        connection.request("POST", "/predict", orjson.dumps({"text": [text]}),
                           {"Content-Type": "application/json"})  # fmt: skip
        got.append(orjson.loads(connection.getresponse().read())["predictions"][0])
    connection.close()
    return float(np.abs(np.asarray(got) - expected_probabilities(folder, texts)).max())


def _config(folder: Path, workdir: Path) -> Path:
    import yaml

    path = workdir / "text-config.yaml"
    path.write_text(yaml.safe_dump({
        "name": "sentiment", "modelType": "transformers", "job": "classification",
        "model": {"method": "LOCAL", "path": str(folder)},
    }))  # fmt: skip
    return path


def run(workdir: Path, duration: float, warmup: float, failures: list[str]) -> TextFigures:
    figures = TextFigures()
    print("building a DistilBERT-base-sized classifier (random weights)", file=sys.stderr)
    folder = build_text_classifier(workdir / "distilbert", size=BASE, vocab_size=30522)
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
    texts = sentences(DISTINCT, seed=5)
    uncached = bodies(texts, 3000, seed=6)
    grading = bodies(texts, 3000, seed=7, repeated=0.95)
    top = ceiling(folder, texts, max(duration, 3.0))
    figures.rows.append(("ceiling: batched forward, in-process", top, float("nan"), 0))
    config = _config(folder, workdir)
    measured: dict[str, Any] = {}
    env = {"TEXT_MODEL_PATH": str(folder)}
    launches = {
        "reference": partial(servers.uvicorn_app, "text_reference_app:app", env=env),
        "mda uncached": partial(servers.mda_serve, config, cache=False),
    }
    for name, launch in launches.items():
        port = servers.free_port()
        try:
            started = time.perf_counter()
            with servers.running(f"text: {name}", launch(port), timeout_s=300):
                if name == "mda uncached":
                    figures.notes.append(
                        f"start-up to ready, {size_mb:.0f} MB folder from local disk: "
                        f"{time.perf_counter() - started:.1f} s"
                    )
                    worst = _check_answers(port, folder, texts[:50])
                    figures.notes.append(f"largest difference from the forward pass: {worst:.1e}")
                measured[name] = _load(port, uncached, duration, warmup)
                measured[f"{name} grading"] = _load(port, grading, duration, warmup)
        except RuntimeError as error:
            failures.append(str(error))
    cached_port = servers.free_port()
    try:
        with servers.running(
            "text: mda cached", servers.mda_serve(config, cached_port, cache=True)
        ):
            measured["mda cached grading"] = _load(cached_port, grading, duration, warmup)
    except RuntimeError as error:
        failures.append(str(error))
    memory = {}
    for workers in (1, 2):
        port = servers.free_port()
        try:
            with servers.running(
                f"text: {workers} worker(s)",
                servers.mda_serve(config, port, cache=False, workers=workers),
                timeout_s=300,
            ) as pid:
                _load(port, uncached[:200], 1.0, 0)
                memory[workers] = servers.pss_bytes(pid)
        except RuntimeError as error:
            failures.append(str(error))
    for name, result in measured.items():
        figures.rows.append((name, result.requests_per_s, result.percentile_ms(99), result.errors))
        if result.errors:
            failures.append(f"text: {name}: {result.errors} requests failed")
    ref = measured.get("reference")
    mda = measured.get("mda uncached")
    if ref and mda:
        figures.targets += [
            ("uncached / ceiling", mda.requests_per_s / top, 0.8),
            ("uncached / reference (req/s)", mda.requests_per_s / ref.requests_per_s, 1.4),
            (
                "reference p99 / uncached p99",
                ref.percentile_ms(99) / mda.percentile_ms(99),
                1 / 0.6,
            ),
        ]
    graded, ref_graded = measured.get("mda cached grading"), measured.get("reference grading")
    if graded and ref_graded:
        figures.targets.append(
            (
                "grading load, cached / reference",
                graded.requests_per_s / ref_graded.requests_per_s,
                20,
            )
        )
        figures.notes.append(
            f"grading load (95 % repeated texts), cached: {graded.requests_per_s:.0f} req/s, "
            f"p99 {graded.percentile_ms(99):.0f} ms (its bar: >= 10 req/s, p99 < 2000 ms)"
        )
    if 1 in memory and 2 in memory:
        figures.targets.append(("1 worker PSS / 2 workers PSS", memory[1] / memory[2], 1 / 1.3))
        figures.notes.append(
            f"PSS: 1 worker {memory[1] / 2**20:.0f} MiB, 2 workers {memory[2] / 2**20:.0f} MiB"
        )
    return figures


def print_figures(figures: TextFigures) -> None:
    print("\nText model (DistilBERT-base size), 10 clients, one text per request")
    print(f"  {'':<40} {'req/s':>8} {'p99 ms':>8} {'errors':>6}")
    for name, rps, p99, errors in figures.rows:
        print(f"  {name:<40} {rps:>8.1f} {p99:>8.0f} {errors:>6}")
    for note in figures.notes:
        print(f"  {note}")
    for name, ratio, goal in figures.targets:
        verdict = "met" if ratio >= goal else "MISS"
        print(f"  {name:<40} {ratio:>6.2f} x  (target >= {goal:.2f}): {verdict}")
