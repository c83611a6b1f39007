"""Print what the benchmark measured: the machine, one table per model and concurrency,
the memory of each server, and the targets as ratios within this run."""

import json
import math
import os
import platform
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from loadgen import LoadResult

T = TypeVar("T")

FLOOR = "floor (bare ASGI)"
REFERENCE = "reference app"
UNCACHED = "mda /predict uncached"
CACHED = "mda /predict cached"
BATCH = "mda /predict 64-row"
WORKERS4 = "mda uncached, 4 workers"
WORKERS4_BATCH = "mda 64-row, 4 workers"
REFERENCE_BATCH = "reference app 64-row"
BINARY_BATCH = "mda V2 64-row binary"
H2_REST = "mda REST (h2load, HTTP/1.1)"
H2_GRPC = "mda gRPC (h2load, HTTP/2)"
H2_BINARY_BATCH = "mda V2 binary 64-row (h2load)"
H2_GRPC_BATCH = "mda gRPC 64-row (h2load)"
H2_FLOOR = "floor (bare ASGI, h2load)"
GRPC_BARE_ASYNCIO = "bare grpcio asyncio (h2load)"
GRPC_BARE_THREADS = "bare grpcio threads (h2load)"
PICKLED = "mda pickled, uncached"
GUARDED_UNCACHED = "mda uncached, token + limit"
GUARDED_CACHED = "mda cached, token + limit"
COMPILE_OFF = "mda uncached, compile off"
COMPILED = "mda uncached, compiled"
NO_SWAP = "mda uncached, no swap"
SWAPS = "mda uncached, 2 model swaps"
PAYLOAD_LOGGED = "mda uncached, payload log to a file"
PAYLOAD_SAMPLED = "mda uncached, payload log, 10 % sampled"

ANY_MODEL = "-"  # the floor's "model": it serves none

# PSS in bytes per server, keyed by (model, the scenario the server was started for).
Memory = dict[tuple[str, str], int]


@dataclass(frozen=True)
class Measurement:
    model: str
    scenario: str
    clients: int
    rows_per_request: int
    result: LoadResult

    @property
    def rows_per_s(self) -> float:
        return self.result.requests_per_s * self.rows_per_request

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "scenario": self.scenario,
            "clients": self.clients,
            "requests": self.result.ok,
            "errors": self.result.errors,
            "requests_per_s": _finite(self.result.requests_per_s, 1),
            "rows_per_s": _finite(self.rows_per_s, 1),
            "p50_ms": _finite(self.result.percentile_ms(50), 3),
            "p99_ms": _finite(self.result.percentile_ms(99), 3),
            "client_cpu_per_request_us": _finite(client_us_per_request(self.result), 1),
        }


@dataclass(frozen=True)
class Target:
    name: str
    value: float  # the measured ratio
    limit: float
    at_most: bool = False  # True: pass when value <= limit (or < for strict); else >=
    strict: bool = False

    @property
    def passed(self) -> bool | None:
        if math.isnan(self.value):
            return None
        if self.at_most:
            return self.value < self.limit if self.strict else self.value <= self.limit
        return self.value > self.limit if self.strict else self.value >= self.limit


def client_us_per_request(result: LoadResult) -> float:
    """CPU the load generator spent per completed request, in microseconds."""
    done = result.ok + result.errors
    return result.client_cpu_s / done * 1e6 if done else float("nan")


def machine() -> dict[str, str]:
    """The CPU model, the CPUs this process may use, the Python version."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "nproc": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
    }


def print_machine(info: dict[str, str]) -> None:
    print(f"machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}")


def tables(measurements: list[Measurement]) -> list[tuple[str, list[Measurement]]]:
    """One table per model and concurrency, titled; the floor, measured once, in each."""
    floors = {m.clients: m for m in measurements if m.scenario == FLOOR}
    found = []
    for model in _unique(m.model for m in measurements if m.scenario != FLOOR):
        for clients in _unique(m.clients for m in measurements):
            rows = [m for m in measurements if m.model == model and m.clients == clients]
            if not rows:
                continue
            if clients in floors:
                rows.insert(0, floors[clients])
            found.append((f"{model}, {clients} clients", rows))
    return found


def print_tables(measurements: list[Measurement]) -> None:
    for title, rows in tables(measurements):
        _print_table(title, rows)


def _print_table(title: str, rows: list[Measurement]) -> None:
    reference = find(rows, REFERENCE)
    floor = find(rows, FLOOR)
    print(f"\n{title}")
    header = (
        f"  {'scenario':<26} {'req/s':>9} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'x ref':>6} {'x floor':>7}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for m in rows:
        r = m.result
        print(
            f"  {m.scenario:<26} {r.requests_per_s:>9.0f} {m.rows_per_s:>9.0f} "
            f"{r.percentile_ms(50):>8.2f} {r.percentile_ms(99):>8.2f} {r.errors:>6} "
            f"{_ratio(m, reference):>6} {_ratio(m, floor):>7}"
        )


def _ratio(m: Measurement, base: Measurement | None) -> str:
    if base is None or base.result.requests_per_s == 0:
        return ""
    return f"{m.result.requests_per_s / base.result.requests_per_s:.2f}"


def print_memory(pss: Memory) -> None:
    print("\nmemory: PSS summed over each server's process tree, after its load")
    for key, value in pss.items():
        print(f"  {_server_name(key):<40} {value / 2**20:>8.1f} MiB")


def print_switches(switches: dict[tuple[str, str], tuple[float, float]]) -> None:
    """How long each compiled server took to be ready, then to switch to the compiled engine
    (the load started once it had)."""
    if switches:
        print("\ncompiled engine: ready, then switched (converted and verified) after")
    for key, (ready, switch) in switches.items():
        print(f"  {_server_name(key):<40} ready in {ready:.2f} s, switched {switch:.2f} s later")


def _server_name(key: tuple[str, str]) -> str:
    model, server = key
    return server if model == ANY_MODEL else f"{model}: {server}"


def print_client_cost(measurements: list[Measurement]) -> None:
    """The load generator's own cost, so a reader can tell it was not the bottleneck."""
    print()
    for m in measurements:
        if m.scenario == FLOOR:
            us = client_us_per_request(m.result)
            print(
                f"load generator at the floor, {m.clients} clients: {us:.1f} us CPU per request "
                f"(its own ceiling: about {1e6 / us:,.0f} req/s on one core)"
            )


def targets(measurements: list[Measurement], pss: Memory) -> list[Target]:
    """The targets of issue 4, each a ratio between two figures of this run."""

    def rate(model: str | None, scenario: str, clients: int) -> float:
        """The median of every such measurement (a scenario may be measured more than once)."""
        rates = [
            m.result.requests_per_s for m in measurements
            if m.scenario == scenario and model in (None, m.model) and m.clients == clients
        ]  # fmt: skip
        return statistics.median(rates) if rates else float("nan")

    def p99(model: str, scenario: str, clients: int) -> float:
        m = find(measurements, scenario, model, clients)
        return m.result.percentile_ms(99) if m else float("nan")

    floor = {c: rate(None, FLOOR, c) for c in (10, 50)}
    return [
        *(
            Target(
                f"logreg, {c} clients: payload log to a file (every request) req/s >= 0.95x "
                "without",
                _div(rate("logreg", PAYLOAD_LOGGED, c), rate("logreg", UNCACHED, c)),
                0.95,
            )
            for c in (10, 50)
        ),
        Target(
            "logreg, 10 clients: uncached req/s >= 0.75x reference",
            _div(rate("logreg", UNCACHED, 10), rate("logreg", REFERENCE, 10)),
            0.75,
        ),
        *(
            Target(
                f"logreg, {c} clients: cached req/s >= 0.5x floor",
                _div(rate("logreg", CACHED, c), floor[c]),
                0.5,
            )
            for c in (10, 50)
        ),
        Target(
            "forest, 50 clients: uncached req/s >= 3x reference",
            _div(rate("forest", UNCACHED, 50), rate("forest", REFERENCE, 50)),
            3.0,
        ),
        Target(
            "logreg, 50 clients: uncached p99 <= 1.5x reference p99",
            _div(p99("logreg", UNCACHED, 50), p99("logreg", REFERENCE, 50)),
            1.5,
            at_most=True,
        ),
        *(
            Target(
                f"logreg, {c} clients: V2 binary 64-row rows/s >= 3x reference JSON 64-row",
                _div(rate("logreg", BINARY_BATCH, c), rate("logreg", REFERENCE_BATCH, c)),
                3.0,
            )
            for c in (10, 50)
        ),
        *(
            target
            for c in (10, 50)
            for target in (
                Target(
                    f"logreg, {c} clients: gRPC single-row req/s >= 1x REST (both h2load)",
                    _div(rate("logreg", H2_GRPC, c), rate("logreg", H2_REST, c)),
                    1.0,
                ),
                Target(
                    f"logreg, {c} clients: gRPC 64-row rows/s >= 1x V2 binary 64-row (h2load)",
                    _div(rate("logreg", H2_GRPC_BATCH, c), rate("logreg", H2_BINARY_BATCH, c)),
                    1.0,
                ),
                Target(
                    f"logreg, {c} clients: gRPC single-row p99 <= 1x REST p99 (h2load)",
                    _div(p99("logreg", H2_GRPC, c), p99("logreg", H2_REST, c)),
                    1.0,
                    at_most=True,
                ),
            )
        ),
        Target(
            "logreg, 10 clients: p99 through 2 model swaps <= 2x p99 without",
            _div(p99("logreg", SWAPS, 10), p99("logreg", NO_SWAP, 10)),
            2.0,
            at_most=True,
        ),
        *(
            Target(
                f"mixed, {c} clients: records uncached req/s >= 1x reference (pd.DataFrame)",
                _div(rate("mixed", UNCACHED, c), rate("mixed", REFERENCE, c)),
                1.0,
            )
            for c in (10, 50)
        ),
        Target(
            "logreg, 10 clients: 64-row JSON rows/s >= 1.2x reference 64-row",
            _div(rate("logreg", BATCH, 10), rate("logreg", REFERENCE_BATCH, 10)),
            1.2,
        ),
        *(
            Target(
                f"logreg, 10 clients: {what} with a token and a rate limit >= 0.95x without",
                _div(rate("logreg", guarded, 10), rate("logreg", plain, 10)),
                0.95,
            )
            for what, guarded, plain in (
                ("uncached", GUARDED_UNCACHED, UNCACHED),
                ("cached", GUARDED_CACHED, CACHED),
            )
        ),
        *(
            target
            for family in ("xgboost", "lightgbm")
            if not math.isnan(rate(family, REFERENCE, 50))
            for target in (
                Target(
                    f"{family} (native file), 50 clients: uncached req/s >= 3x reference",
                    _div(rate(family, UNCACHED, 50), rate(family, REFERENCE, 50)),
                    3.0,
                ),
                Target(
                    f"{family}, 50 clients: native file req/s >= 1x pickled",
                    _div(rate(family, UNCACHED, 50), rate(family, PICKLED, 50)),
                    1.0,
                ),
            )
        ),
        Target(
            "logreg, 10 clients: compiled (exact) req/s >= 1.2x MDA_COMPILE=off",
            _div(rate("logreg", COMPILED, 10), rate("logreg", COMPILE_OFF, 10)),
            1.2,
        ),
        *(
            target
            for c, floor_ratio in ((10, 8.0), (50, 3.0))
            for target in (
                Target(
                    f"forest, {c} clients: compiled (approx) req/s >= {floor_ratio:g}x off",
                    _div(rate("forest", COMPILED, c), rate("forest", COMPILE_OFF, c)),
                    floor_ratio,
                ),
                Target(
                    f"forest, {c} clients: compiled req/s >= 0.5x compiled logreg",
                    _div(rate("forest", COMPILED, c), rate("logreg", COMPILED, c)),
                    0.5,
                ),
            )
        ),
        Target(
            "forest: PSS of 4 workers < 1.5x PSS of 1 worker",
            _div(pss.get(("forest", WORKERS4), math.nan), pss.get(("forest", UNCACHED), math.nan)),
            1.5,
            at_most=True,
            strict=True,
        ),
    ]


def print_targets(results: Iterable[Target]) -> None:
    print("\ntargets (ratios within this run)")
    for t in results:
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t.passed]
        value = "not measured" if math.isnan(t.value) else f"{t.value:.2f}x"
        print(f"  {verdict}  {t.name:<56} {value}")


def find(
    measurements: Iterable[Measurement],
    scenario: str,
    model: str | None = None,
    clients: int | None = None,
) -> Measurement | None:
    for m in measurements:
        if m.scenario == scenario and model in (None, m.model) and clients in (None, m.clients):
            return m
    return None


def _finite(value: float, digits: int) -> float | None:
    """JSON has no NaN: what was not measured is null."""
    return None if math.isnan(value) else round(value, digits)


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def _unique(values: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(values))


def write_json(
    path: Path,
    info: dict[str, str],
    measurements: list[Measurement],
    pss: Memory,
    results: list[Target],
) -> None:
    document = {
        "machine": info,
        "measurements": [m.as_dict() for m in measurements],
        "pss_mib": {_server_name(key): round(v / 2**20, 1) for key, v in pss.items()},
        "targets": [
            {
                "name": t.name,
                "ratio": _finite(t.value, 3),
                "passed": t.passed,
            }
            for t in results
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
