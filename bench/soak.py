"""The soak test (`make bench SOAK=600`): sustained load on `mda serve`, watching its memory.

The logistic regression at 10 clients, every other request a row from a small hot set (cache
hits) and the rest from a cold set larger than the cache (LRU misses, every time). One full
cycle through the requests warms up: it fills the cache to its bound, so that what grows
afterwards is a leak, not the cache. Targets: zero errors, PSS growth under 10 %.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

import interrupt
import loadgen
import models
import servers

CLIENTS = 10
HOT_ROWS = 100
CACHE_ENTRIES = 20_000
COLD_ROWS = 25_000  # more than CACHE_ENTRIES: cycling through them, every one misses
SAMPLE_EVERY_S = 10.0
MAX_GROWTH = 0.10


def run(workdir: Path, seconds: float, json_path: Path | None, info: dict[str, str]) -> int:
    """Run the soak for `seconds` after the warm-up cycle, print the report, return 0."""
    logreg = next(m for m in models.train(workdir) if m.name == "logreg")
    hot = models.prediction_bodies(HOT_ROWS, seed=2)
    cold = models.prediction_bodies(COLD_ROWS, seed=4)
    bodies = [b for i, c in enumerate(cold) for b in (hot[i % HOT_ROWS], c)]
    port = servers.free_port()
    launch = servers.mda_serve(
        logreg.config, port, cache=True, cache_max_entries=str(CACHE_ENTRIES)
    )
    with servers.running("logreg: mda soak", launch) as pid:
        requests = [loadgen.post_request(servers.HOST, port, "/predict", b) for b in bodies]
        print(f"soak: warming up with one cycle of {len(requests)} requests", file=sys.stderr)
        warm = interrupt.run(
            loadgen.run_load(servers.HOST, port, requests, CLIENTS, 600, len(requests))
        )
        print(f"soak: {seconds:g} s at {CLIENTS} clients, memory every {SAMPLE_EVERY_S:g} s")
        result, samples = interrupt.run(_load_and_sample(port, pid, requests, seconds))
    return _report(warm, result, samples, json_path, info)


async def _load_and_sample(
    port: int, pid: int, requests: list[bytes], seconds: float
) -> tuple[loadgen.LoadResult, list[tuple[float, int]]]:
    samples = [(0.0, servers.pss_bytes(pid))]
    load = asyncio.ensure_future(loadgen.run_load(servers.HOST, port, requests, CLIENTS, seconds))
    started = time.monotonic()
    while not load.done():
        await asyncio.wait([load], timeout=SAMPLE_EVERY_S)
        samples.append((time.monotonic() - started, servers.pss_bytes(pid)))
        print(f"  t={samples[-1][0]:6.0f} s  PSS {samples[-1][1] / 2**20:7.1f} MiB", flush=True)
    return load.result(), samples


def _report(
    warm: loadgen.LoadResult,
    result: loadgen.LoadResult,
    samples: list[tuple[float, int]],
    json_path: Path | None,
    info: dict[str, str],
) -> int:
    start, end = samples[0][1], samples[-1][1]
    growth = (end - start) / start
    print(
        f"\nsoak: {result.ok} requests ({result.requests_per_s:.0f} req/s), "
        f"{result.errors} errors (warm-up: {warm.ok} requests, {warm.errors} errors)\n"
        f"latency p50 {result.percentile_ms(50):.2f} ms, p99 {result.percentile_ms(99):.2f} ms\n"
        f"PSS after warm-up {start / 2**20:.1f} MiB, at the end {end / 2**20:.1f} MiB, "
        f"peak {max(s for _, s in samples) / 2**20:.1f} MiB: growth {growth:+.1%}"
    )
    print("\ntargets")
    print(f"  {'PASS' if result.errors == 0 else 'MISS'}  zero errors ({result.errors})")
    print(f"  {'PASS' if growth < MAX_GROWTH else 'MISS'}  PSS growth < 10% ({growth:+.1%})")
    if json_path:
        document = {
            "machine": info,
            "soak": {
                "requests": result.ok,
                "errors": result.errors,
                "requests_per_s": round(result.requests_per_s, 1),
                "p50_ms": round(result.percentile_ms(50), 3),
                "p99_ms": round(result.percentile_ms(99), 3),
                "pss_mib": [(round(t, 1), round(v / 2**20, 1)) for t, v in samples],
                "pss_growth": round(growth, 4),
            },
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 0
