"""The pool's density figures (issue 27): 100 small models in one pod against one model alone.

The models: 50 logistic regressions and 50 10-tree forests on 20 features, each trained on its
own data. Every server runs with the cache off and `MDA_COMPILE=approx` (see COMPILE), each
load starting once every model answers with ONNX Runtime, on the pinned core when the
tabular scenarios pin theirs.
Measured in one run:
- PSS: the pool with every model loaded, against one single-model server (target <= 2x);
- 50 clients over the 100 models with Zipf popularity (s = 1.1), single uncached rows, against
  the single-model server under the same load on its one model (target >= 0.8x);
- a hot model's p99 at 10 clients while 10 requests a second ask models that are not loaded
  (each a load, with the budget holding about 20 of the 100), against its p99 alone (<= 1.5x);
- a cold load: a small model's first request after it was unloaded, less its next one
  (median of 15; target <= 100 ms).
"""

import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import interrupt
import joblib
import loadgen
import numpy as np
import servers
import yaml
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

MODELS = 100
FEATURES = 20
ZIPF_S = 1.1
BUDGET_HOLDS = 20  # models the budget of the cold-load figures holds
COLD_PER_S = 10  # requests a second for models not loaded, beside the hot model's load
# Every server answers with its compiled engine (ONNX Runtime: logistic regressions exactly,
# forests within 1e-6), as a one-model chart with `compile: approx` does: a pool cannot batch
# one model's requests with another's, so what each model call costs is what it serves.
COMPILE = "approx"


@dataclass
class PoolFigures:
    rows: list[tuple[str, float, float, int]] = field(default_factory=list)  # req/s, p99, errors
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, float, str, bool]] = field(default_factory=list)


def _train(workdir: Path) -> tuple[Path, Path, list[str], np.ndarray]:
    """The pool's config, a config of its first model alone, the names, and rows to ask."""
    entries, names = [], []
    for index in range(MODELS):
        X, y = make_classification(
            n_samples=400, n_features=FEATURES, n_informative=8, random_state=index
        )
        if index % 2 == 0:
            name, model = f"logreg-{index}", LogisticRegression(max_iter=500).fit(X, y)
        else:
            name = f"forest-{index}"
            model = RandomForestClassifier(n_estimators=10, random_state=index).fit(X, y)
        joblib.dump(model, workdir / f"{name}.joblib")
        names.append(name)
        entries.append({
            "name": name, "modelType": "joblib", "job": "classification",
            "inputSize": FEATURES, "model": {"method": "LOCAL", "path": f"{name}.joblib"},
        })  # fmt: skip
    pool = workdir / "pool.yaml"
    pool.write_text(yaml.safe_dump({"models": entries}))
    single = workdir / "single.yaml"
    single.write_text(yaml.safe_dump(entries[0]))
    rows = np.random.default_rng(7).normal(size=(2000, FEATURES)).round(4)
    return pool, single, names, rows


def _bodies(rows: np.ndarray) -> list[bytes]:
    return [json.dumps({"instances": [row]}).encode() for row in rows.tolist()]


def _zipf_requests(port: int, names: list[str], bodies: list[bytes], count: int) -> list[bytes]:
    weights = 1.0 / np.arange(1, len(names) + 1) ** ZIPF_S
    picks = np.random.default_rng(11).choice(len(names), size=count, p=weights / weights.sum())
    return [
        loadgen.post_request(servers.HOST, port, f"/{names[pick]}/predict", bodies[i % len(bodies)])
        for i, pick in enumerate(picks)
    ]


def _load(port: int, requests: list[bytes], clients: int, duration: float,
          warmup: float) -> loadgen.LoadResult:  # fmt: skip
    if warmup > 0:
        interrupt.run(loadgen.run_load(servers.HOST, port, requests, clients, warmup))
    return interrupt.run(loadgen.run_load(servers.HOST, port, requests, clients, duration))


def _wait_compiled(port: int, count: int | None = None, timeout_s: float = 300.0) -> float:
    """Wait until `count` models (default: every model loaded) answer with ONNX Runtime; the
    seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        text = httpx.get(f"http://{servers.HOST}:{port}/metrics").text
        compiled = sum(
            1 for line in text.splitlines()
            if line.startswith("mda_model_engine{") and 'engine="onnxruntime"' in line
            and line.endswith(" 1.0")
        )  # fmt: skip
        wanted = len(_loaded(port)) if count is None else count
        if compiled >= wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"pool: {compiled} of {wanted} models compiled after {timeout_s:.0f} s")


def _sizes(port: int, names: list[str]) -> dict[str, float]:
    text = httpx.get(f"http://{servers.HOST}:{port}/metrics").text
    sizes = {}
    for line in text.splitlines():
        if line.startswith('mda_model_memory_bytes{model="'):
            sizes[line.split('"')[1]] = float(line.split()[-1])
    return {name: sizes.get(name, 0.0) for name in names}


def run(workdir: Path, duration: float, warmup: float, failures: list[str]) -> PoolFigures:
    figures = PoolFigures()
    print(f"training {MODELS} small models for the pool", file=sys.stderr, flush=True)
    pool_config, single_config, names, rows = _train(workdir)
    bodies = _bodies(rows)
    try:
        port = servers.free_port()
        single_requests = [
            loadgen.post_request(servers.HOST, port, "/predict", body) for body in bodies
        ]
        launch = servers.mda_serve(single_config, port, cache=False, compile=COMPILE)
        with servers.running("pool: one model alone", launch) as pid:
            _wait_compiled(port, 1)
            alone = _load(port, single_requests, 50, duration, warmup)
            single_pss = servers.pss_bytes(pid)
        figures.rows.append(("one model alone, 50 clients", alone.requests_per_s,
                             alone.percentile_ms(99), alone.errors))  # fmt: skip

        port = servers.free_port()
        started = time.monotonic()
        with servers.running("pool: 100 models",
                             servers.mda_serve(pool_config, port, cache=False, compile=COMPILE),
                             timeout_s=300) as pid:  # fmt: skip
            ready = time.monotonic() - started
            compiled = _wait_compiled(port, MODELS)
            figures.notes.append(
                f"the pool of {MODELS}: ready in {ready:.1f} s, every model compiled "
                f"{compiled:.1f} s later"
            )
            zipf = _load(port, _zipf_requests(port, names, bodies, 20000), 50, duration, warmup)
            pool_pss = servers.pss_bytes(pid)
            sizes = _sizes(port, names)
        figures.rows.append((f"pool of {MODELS}, Zipf over them, 50 clients", zipf.requests_per_s,
                             zipf.percentile_ms(99), zipf.errors))  # fmt: skip
        mib = 1 << 20
        figures.notes.append(
            f"PSS: one model alone {single_pss / mib:.0f} MiB, the pool of {MODELS} "
            f"{pool_pss / mib:.0f} MiB (the models' own {sum(sizes.values()) / mib:.1f} MiB)"
        )
        figures.targets.append(("pool PSS / one model's PSS", pool_pss / single_pss, "<= 2.0",
                                pool_pss / single_pss <= 2.0))  # fmt: skip
        ratio = zipf.requests_per_s / alone.requests_per_s
        figures.targets.append(("Zipf pool req/s / one model's", ratio, ">= 0.8", ratio >= 0.8))

        _cold_figures(figures, pool_config, names, bodies, sizes, duration, warmup)
    except RuntimeError as error:
        failures.append(str(error))
        print(f"FAILED {error}", file=sys.stderr, flush=True)
    return figures


def _cold_figures(
    figures: PoolFigures, pool_config: Path, names: list[str], bodies: list[bytes],
    sizes: dict[str, float], duration: float, warmup: float,
) -> None:  # fmt: skip
    """A budget that holds about BUDGET_HOLDS models: the hot model's p99 while the others
    load on demand, and what one cold load adds to its request."""
    budget = int(sum(sizes.values()) * BUDGET_HOLDS / MODELS)  # about BUDGET_HOLDS of them
    port = servers.free_port()
    hot = names[0]
    hot_requests = [loadgen.post_request(servers.HOST, port, f"/{hot}/predict", b) for b in bodies]
    cold_names = names[BUDGET_HOLDS:]
    launch = servers.mda_serve(
        pool_config, port, cache=False, memory_budget=str(budget), compile=COMPILE
    )
    with servers.running("pool: within a budget of 20", launch, timeout_s=300):
        _wait_compiled(port)
        alone = _load(port, hot_requests, 10, duration, warmup)

        async def hot_while_cold() -> tuple[loadgen.LoadResult, list[float]]:
            cold = asyncio.ensure_future(_paced_cold_stream(port, cold_names, bodies, duration))
            hot = await loadgen.run_load(servers.HOST, port, hot_requests, 10, duration)
            return hot, await cold

        busy, cold = interrupt.run(hot_while_cold())
        loads = _sum_metric(port, "mda_model_loads_total")
        added = _cold_load_ms(port, cold_names, bodies[0])
    figures.rows.append(("hot model alone, 10 clients", alone.requests_per_s,
                         alone.percentile_ms(99), alone.errors))  # fmt: skip
    figures.rows.append(("hot model while others load cold", busy.requests_per_s,
                         busy.percentile_ms(99), busy.errors))  # fmt: skip
    figures.rows.append((f"  the cold stream, {COLD_PER_S} loads/s", len(cold) / duration,
                         max(cold, default=float("nan")), 0))  # fmt: skip
    figures.notes.append(
        f"budget {budget / (1 << 20):.1f} MiB ({100 * BUDGET_HOLDS // MODELS} % of what "
        "all models hold); "
        f"{loads:.0f} loads in all"
    )
    p99 = busy.percentile_ms(99) / alone.percentile_ms(99)
    figures.targets.append(("hot p99 with cold loads / alone", p99, "<= 1.5", p99 <= 1.5))
    figures.targets.append(("cold load added to a request (ms)", added, "<= 100", added <= 100))


async def _paced_cold_stream(
    port: int, names: list[str], bodies: list[bytes], duration: float
) -> list[float]:
    """COLD_PER_S requests a second, each for the least recently asked of `names` (so, with
    a budget that holds fewer, each a load); their latencies in ms."""
    latencies: list[float] = []
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://{servers.HOST}:{port}", timeout=30) as client:
        started = time.monotonic()
        for index in range(int(duration * COLD_PER_S)):
            await asyncio.sleep(max(0.0, started + index / COLD_PER_S - time.monotonic()))
            name = names[index % len(names)]
            sent = time.perf_counter()
            reply = await client.post(f"/{name}/predict", content=bodies[index], headers=headers)
            if reply.status_code != 200:
                raise RuntimeError(f"pool: cold request to {name}: {reply.status_code}")
            latencies.append((time.perf_counter() - sent) * 1000)
    return latencies


def _sum_metric(port: int, name: str) -> float:
    text = httpx.get(f"http://{servers.HOST}:{port}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _loaded(port: int) -> list[str]:
    index = httpx.post(f"http://{servers.HOST}:{port}/v2/repository/index").json()
    return [entry["name"] for entry in index if entry["state"] == "READY"]


def _cold_load_ms(port: int, cold_names: list[str], body: bytes) -> float:
    """Median over 15 of `cold_names` not loaded now of a first request less the next."""
    added: list[float] = []
    with httpx.Client(base_url=f"http://{servers.HOST}:{port}", timeout=30) as client:
        loaded = set(_loaded(port))
        for name in cold_names:
            if name in loaded or len(added) == 15:
                continue
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                reply = client.post(f"/{name}/predict", content=body,
                                    headers={"content-type": "application/json"})  # fmt: skip
                timings.append((time.perf_counter() - started) * 1000)
                if reply.status_code != 200:
                    raise RuntimeError(f"pool: cold load of {name}: {reply.status_code}")
            added.append(timings[0] - timings[1])
    if not added:
        raise RuntimeError("pool: every model was loaded: no cold load to time")
    return statistics.median(added)


def print_figures(figures: PoolFigures) -> None:
    print(f"\nModel pool: {MODELS} small models (logistic regressions, 10-tree forests) in one pod")
    print(f"  {'':<46} {'req/s':>8} {'p99 ms':>8} {'errors':>6}")
    for name, rps, p99, errors in figures.rows:
        print(f"  {name:<46} {rps:>8.0f} {p99:>8.2f} {errors:>6}")
    for note in figures.notes:
        print(f"  {note}")
    for name, value, goal, met in figures.targets:
        print(f"  {name:<46} {value:>8.2f}  (target {goal}): {'met' if met else 'MISS'}")
