"""`make bench BASELINE=<git ref>`: this working tree against an earlier version of itself.

The ref is checked out in a temporary git worktree and served by the same interpreter and
dependencies, with its own package first on the path. The two are run interleaved (current,
baseline, current, ...: several rounds), each round on a fresh server, on the same model and
bodies; each figure is the median over rounds, and the ratio the median of each round's own
current / baseline (paired, so a machine that drifts between rounds moves both alike). With
`PIN=1` (the default) the server runs on one core and the load generator on another, as a pod
under `limits.cpu: 1` would; `PIN=0` lets them share every core.
"""

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import interrupt
import loadgen
import models
import servers

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    bodies: list[bytes]
    clients: int
    rows: int = 1
    cache: bool = False
    headers: tuple[tuple[str, str], ...] = ()


def cases(model: str) -> list[Case]:
    single = models.prediction_bodies(3000, seed=1)
    batch = models.prediction_bodies(300, rows_per_body=64, seed=3)
    binary, header_length = models.binary_v2_bodies(300, rows_per_body=64, seed=3)
    binary_headers = (("Content-Type", "application/octet-stream"),
                      ("Inference-Header-Content-Length", str(header_length)))  # fmt: skip
    return [
        Case("single row, uncached", "/predict", single, 10),
        Case("single row, uncached", "/predict", single, 50),
        Case(
            "single row, cached", "/predict", models.prediction_bodies(100, seed=2), 10, cache=True
        ),
        Case("64-row JSON, uncached", "/predict", batch, 10, rows=64),
        Case(
            "64-row V2 binary, uncached",
            f"/v2/models/{model}/infer",
            binary,
            10,
            64,
            headers=binary_headers,
        ),
    ]


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mda-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(folder), ref],
                   cwd=ROOT, check=True)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT,
                       check=False)  # fmt: skip


def launch(source: Path, config: Path, port: int, cache: bool, pin: bool) -> servers.Launch:
    """`mda serve` of the package in `source`, pinned to core 0 when `pin`."""
    env = {
        "PYTHONPATH": str(source), "MDA_CONFIG_PATH": str(config), "PORT": str(port),
        "MDA_HOST": servers.HOST, "MDA_CACHE_ENABLED": "true" if cache else "false",
        "MDA_GRPC_PORT": "0", "MDA_LOG_LEVEL": "warning",
    }  # fmt: skip
    # -P: the working directory (this checkout) never shadows the package on PYTHONPATH.
    command = [sys.executable, "-P", "-m", "model_deployment_app", "serve"]
    return servers.Launch((["taskset", "-c", "0"] if pin else []) + command, env, port)


def measure(case: Case, port: int, seconds: float, warmup: float) -> float | None:
    """Rows per second (requests per second for single rows); None when the version cannot
    serve the case (an older one without the binary extension, say)."""
    requests = [loadgen.post_request(servers.HOST, port, case.path, body, dict(case.headers))
                for body in case.bodies]  # fmt: skip
    interrupt.run(loadgen.run_load(servers.HOST, port, requests, case.clients, warmup))
    result = interrupt.run(loadgen.run_load(servers.HOST, port, requests, case.clients, seconds))
    if result.errors or not result.ok:
        return None
    return result.requests_per_s * case.rows


def run(
    ref: str,
    workdir: Path,
    rounds: int,
    seconds: float,
    warmup: float,
    pin: bool,
    charts_folder: Path | None = None,
) -> int:
    if pin:
        if len(os.sched_getaffinity(0)) < 2:
            print("PIN=1 needs two cores; running unpinned", file=sys.stderr)
            pin = False
        else:
            os.sched_setaffinity(0, {1})  # the load generator on core 1, the server on core 0
    logreg = next(m for m in models.train(workdir) if m.name == "logreg")
    figures: dict[tuple[str, str, int], list[float]] = {}
    with worktree(ref) as baseline:
        sources = {"current": ROOT, "baseline": baseline}
        for round_number in range(rounds):
            for label, source in sources.items():
                for cache in (False, True):
                    port = servers.free_port()
                    chosen = [c for c in cases(logreg.name) if c.cache == cache]
                    with servers.running(
                        f"{label} (round {round_number + 1})",
                        launch(source, logreg.config, port, cache, pin),
                    ):
                        for case in chosen:
                            rate = measure(case, port, seconds, warmup)
                            if rate is not None:
                                key = (label, case.name, case.clients)
                                figures.setdefault(key, []).append(rate)
                print(f"  round {round_number + 1}: {label} done", file=sys.stderr, flush=True)
    print(f"\nthis tree / {ref}, {'server pinned to one core' if pin else 'unpinned'}, "
          f"median of {rounds} interleaved rounds of {seconds:g} s")  # fmt: skip
    print(f"  {'scenario':<30} {'clients':>7} {'current':>10} {'baseline':>10} {'ratio':>7}")
    failed = 0
    drawn: list[tuple[str, float, float, float]] = []
    for case in cases(logreg.name):
        unit = "rows/s" if case.rows > 1 else "req/s"
        mine = figures.get(("current", case.name, case.clients))
        theirs = figures.get(("baseline", case.name, case.clients))
        if not mine:
            failed += 1
        if not mine or not theirs:
            shown = f"{statistics.median(mine):>10.0f}" if mine else f"{'failed':>10}"
            print(f"  {case.name:<30} {case.clients:>7} {shown} {'n/a':>10}   n/a   ({unit})")
            continue
        current, old = statistics.median(mine), statistics.median(theirs)
        # Each round's own ratio (its two runs are minutes apart at most), then their median:
        # a machine that slows down or speeds up between rounds moves both sides alike.
        paired = statistics.median(a / b for a, b in zip(mine, theirs, strict=False))
        print(f"  {case.name:<30} {case.clients:>7} {current:>10.0f} {old:>10.0f} "
              f"{paired:>6.2f}x  ({unit})")  # fmt: skip
        drawn.append((f"{case.name}, {case.clients} clients", current, old, paired))
    if charts_folder and drawn:
        import charts  # matplotlib, only when asked for

        path = charts.baseline_chart(f"this tree against {ref}", drawn, charts_folder, ref)
        print(f"\nchart: {path}")
    return 1 if failed else 0
