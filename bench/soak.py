"""The soak test (`make bench SOAK=600`): sustained mixed load on `mda serve`, watching its
memory.

A scaler + forest pipeline (it computes in float32, and the server cannot know that up front)
at 10 good clients, every other request a row from a small hot set (cache hits) and the rest
from a cold set larger than the cache (LRU misses, every time). Beside them, bad clients: about
1 % of requests malformed (broken JSON, wrong widths, strings), 0.1 % poison (a value past
float32 that makes the model raise, batched with good rows), and a few slow clients that
trickle their headers until the server closes them. One full cycle through the good requests
warms up: it fills the cache to its bound, so that what grows afterwards is a leak, not the
cache. Targets: zero failed good requests, every bad one refused with its 4xx, PSS growth
under 10 %.
"""

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
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
MALFORMED_SHARE = 0.01
POISON_SHARE = 0.001
SLOW_CLIENTS = 4
MALFORMED = [
    b'{"instances": [[1, 2',
    b'{"instances": [[1, 2, 3]]}',
    b'{"instances": [["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",'
    b' "o", "p", "q", "r", "s", "t"]]}',
    b'{"rows": []}',
]


@dataclass
class BadTally:
    """Requests the bad clients sent, and the answers that were not the expected 4xx."""

    sent: int = 0
    unexpected: list[str] = field(default_factory=list)
    slow_closed: int = 0


def run(workdir: Path, seconds: float, json_path: Path | None, info: dict[str, str]) -> int:
    """Run the soak for `seconds` after the warm-up cycle, print the report, return 0."""
    model = models.train_scaled_forest(workdir)
    hot = models.prediction_bodies(HOT_ROWS, seed=2)
    cold = models.prediction_bodies(COLD_ROWS, seed=4)
    bodies = [b for i, c in enumerate(cold) for b in (hot[i % HOT_ROWS], c)]
    port = servers.free_port()
    launch = servers.mda_serve(
        model.config, port, cache=True, cache_max_entries=str(CACHE_ENTRIES),
        max_batch_delay_ms="1", header_timeout_seconds="2",
    )  # fmt: skip
    with servers.running(f"{model.name}: mda soak", launch) as pid:
        requests = [loadgen.post_request(servers.HOST, port, "/predict", b) for b in bodies]
        print(f"soak: warming up with one cycle of {len(requests)} requests", file=sys.stderr)
        warm = interrupt.run(
            loadgen.run_load(servers.HOST, port, requests, CLIENTS, 600, len(requests))
        )
        rate = warm.requests_per_s
        print(f"soak: {seconds:g} s at {CLIENTS} good clients (warm-up {rate:.0f} req/s), bad "
              f"clients beside them, memory every {SAMPLE_EVERY_S:g} s")  # fmt: skip
        bad = BadTally()
        result, samples = interrupt.run(_load_and_sample(port, pid, requests, seconds, rate, bad))
    return _report(warm, result, samples, bad, json_path, info)


async def _exchange(port: int, request: bytes) -> int:
    """One request on its own connection; the status it got (0: none)."""
    reader, writer = await asyncio.open_connection(servers.HOST, port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        return int(head.split()[1])
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        return 0
    finally:
        writer.close()


async def _bad_requests(port: int, seconds: float, good_rate: float, bad: BadTally) -> None:
    """Malformed requests at 1 % and poison at 0.1 % of the good clients' rate."""
    interval = 1 / max(1.0, good_rate * (MALFORMED_SHARE + POISON_SHARE))
    poison_every = round(MALFORMED_SHARE / POISON_SHARE) + 1
    deadline = time.monotonic() + seconds
    poison = models.poison_body()
    while time.monotonic() < deadline:
        bad.sent += 1
        body = poison if bad.sent % poison_every == 0 else MALFORMED[bad.sent % len(MALFORMED)]
        status = await _exchange(port, loadgen.post_request(servers.HOST, port, "/predict", body))
        expected = (422,) if body is poison else (400, 422)
        if status not in expected:
            bad.unexpected.append(f"{body[:40]!r}: {status or 'no answer'}")
        await asyncio.sleep(interval)


async def _slow_client(port: int, seconds: float, bad: BadTally) -> None:
    """Trickle a request's headers a byte at a time until the server hangs up; again."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(servers.HOST, port)
        except OSError:
            await asyncio.sleep(1)
            continue
        try:
            writer.write(b"POST /predict HTTP/1.1\r\nHost: soak\r\n")
            while time.monotonic() < deadline and not reader.at_eof():
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.5)
                if reader._buffer:  # type: ignore[attr-defined] # the server's 408
                    break
            if b" 408 " in await asyncio.wait_for(reader.read(4096), 5):
                bad.slow_closed += 1
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()


async def _load_and_sample(
    port: int, pid: int, requests: list[bytes], seconds: float, good_rate: float, bad: BadTally
) -> tuple[loadgen.LoadResult, list[tuple[float, int]]]:
    samples = [(0.0, servers.pss_bytes(pid))]
    load = asyncio.ensure_future(loadgen.run_load(servers.HOST, port, requests, CLIENTS, seconds))
    others = [
        asyncio.ensure_future(_bad_requests(port, seconds, good_rate, bad)),
        *(asyncio.ensure_future(_slow_client(port, seconds, bad)) for _ in range(SLOW_CLIENTS)),
    ]
    started = time.monotonic()
    while not load.done():
        await asyncio.wait([load], timeout=SAMPLE_EVERY_S)
        samples.append((time.monotonic() - started, servers.pss_bytes(pid)))
        print(f"  t={samples[-1][0]:6.0f} s  PSS {samples[-1][1] / 2**20:7.1f} MiB", flush=True)
    await asyncio.gather(*others, return_exceptions=True)
    return load.result(), samples


def _report(
    warm: loadgen.LoadResult,
    result: loadgen.LoadResult,
    samples: list[tuple[float, int]],
    bad: BadTally,
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
        f"peak {max(s for _, s in samples) / 2**20:.1f} MiB: growth {growth:+.1%}\n"
        f"bad clients: {bad.sent} malformed or poison requests "
        f"({bad.sent / max(1, result.ok + bad.sent):.2%} of all), {len(bad.unexpected)} not "
        f"refused with their 4xx; {bad.slow_closed} slow connections closed with a 408"
    )
    for line in bad.unexpected[:5]:
        print(f"  unexpected: {line}")
    print("\ntargets")
    print(f"  {'PASS' if result.errors == 0 else 'MISS'}  zero failed good requests "
          f"({result.errors})")  # fmt: skip
    print(f"  {'PASS' if not bad.unexpected else 'MISS'}  every bad request refused with "
          f"its 4xx ({len(bad.unexpected)} not)")  # fmt: skip
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
                "bad_requests": bad.sent,
                "bad_not_refused": len(bad.unexpected),
                "slow_connections_closed": bad.slow_closed,
            },
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 0
