"""`make bench`: the load benchmark of issue 4 (CONTRACT section 6).

Trains two demo models, then drives, one after the other on loopback, a bare ASGI floor, a
small hand-written reference app and `mda serve` (uncached, cached, 64-row requests, and for
the forest 4 workers), each at 10 and 50 concurrent keep-alive clients, and prints every
figure next to its ratio to the reference app and to the floor. A MISS on a target is a
measurement, not a failure: the exit status is non-zero only when something could not be
measured. `--soak SECONDS` runs the soak test instead (see soak.py).
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import baseline
import h2load
import interrupt
import loadgen
import models
import pool_bench
import report
import servers
import soak
import text_bench
from report import (
    BATCH,
    BINARY_BATCH,
    CACHED,
    COMPILE_OFF,
    COMPILED,
    FLOOR,
    GRPC_BARE_ASYNCIO,
    GRPC_BARE_THREADS,
    GUARDED_CACHED,
    GUARDED_UNCACHED,
    H2_BINARY_BATCH,
    H2_FLOOR,
    H2_GRPC,
    H2_GRPC_BATCH,
    H2_REST,
    NO_SWAP,
    PAYLOAD_LOGGED,
    PAYLOAD_SAMPLED,
    PICKLED,
    REFERENCE,
    REFERENCE_BATCH,
    SWAPS,
    UNCACHED,
    WORKERS4,
    WORKERS4_BATCH,
    Measurement,
)
from servers import Launch

CLIENTS = (10, 50)
# One h2load load: scenario, URL, body, headers, rows per request, HTTP/1.1 (else HTTP/2).
H2Load = tuple[str, str, bytes, dict[str, str], int, bool]


@dataclass(frozen=True)
class Scenario:
    name: str
    bodies: list[bytes]
    rows_per_request: int = 1
    path: str = "/predict"
    headers: dict[str, str] = field(default_factory=dict)

    def renamed(self, name: str) -> "Scenario":
        return Scenario(name, self.bodies, self.rows_per_request, self.path, self.headers)


@dataclass
class Bench:
    """Plans the servers and loads (`serve`, `serve_swaps`, `serve_h2load`), then runs them
    (`run`) and records what they measured: knowing the plan, it says which measurement of
    how many it is at, and about how long is left."""

    duration_s: float
    warmup_s: float
    measurements: list[Measurement] = field(default_factory=list)
    memory: report.Memory = field(default_factory=dict)
    # (model, server) -> (seconds from start to ready, then to the compiled engine's switch)
    switches: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    planned: int = 0
    started: float = field(default_factory=time.monotonic)
    _steps: list[Callable[[], None]] = field(default_factory=list)

    def _plan(self, measurements: int, step: Callable[[], None]) -> None:
        self.planned += measurements
        self._steps.append(step)

    def run(self) -> None:
        """Run what was planned, in order."""
        self.started = time.monotonic()
        steps, self._steps = self._steps, []
        for step in steps:
            step()

    def serve(
        self,
        model: str,
        label: str,
        launch: Callable[[int], Launch],
        scenarios: list[Scenario],
        engine: str | None = None,
    ) -> None:
        """Plan one server (`launch` given a free port): start it, run its scenarios, record
        its memory, stop it. A server that does not start is reported and skipped. With
        `engine`, the load starts once the model's metadata names that engine."""
        self._plan(
            len(scenarios) * len(CLIENTS),
            partial(self._serve, model, label, launch, scenarios, engine),
        )

    def _serve(
        self,
        model: str,
        label: str,
        launch: Callable[[int], Launch],
        scenarios: list[Scenario],
        engine: str | None,
    ) -> None:
        name = f"{model}: {label}"
        port = servers.free_port()
        try:
            started = time.monotonic()
            with servers.running(name, launch(port)) as pid:
                if engine is not None:
                    ready = time.monotonic() - started
                    self.switches[(model, label)] = (
                        ready, servers.wait_for_engine(port, model, engine),
                    )  # fmt: skip
                for scenario in scenarios:
                    self._measure(model, scenario, port)
                self.memory[(model, label)] = servers.pss_bytes(pid)
        except RuntimeError as error:  # the message names the server
            self._failed(error)

    def _measure(self, model: str, scenario: Scenario, port: int) -> None:
        host = servers.HOST
        requests = [
            loadgen.post_request(host, port, scenario.path, body, scenario.headers)
            for body in scenario.bodies
        ]
        for clients in CLIENTS:
            if self.warmup_s > 0:
                interrupt.run(loadgen.run_load(host, port, requests, clients, self.warmup_s))
            result = interrupt.run(loadgen.run_load(host, port, requests, clients, self.duration_s))
            m = Measurement(model, scenario.name, clients, scenario.rows_per_request, result)
            self._record(m)

    def _record(self, m: Measurement) -> None:
        self.measurements.append(m)
        result = m.result
        done = len(self.measurements)
        left = ""
        if self.planned >= done:
            seconds = (time.monotonic() - self.started) / done * (self.planned - done)
            left = (
                f"; about {seconds / 60:.0f} min left"
                if seconds >= 60
                else f"; {seconds:.0f} s left"
            )
        print(
            f"  [{done}/{self.planned or '?'}] {m.model:<7} {m.scenario:<26} {m.clients:>3} "
            f"clients: {result.requests_per_s:>8.0f} req/s, {result.errors} errors{left}",
            file=sys.stderr,
            flush=True,
        )

    def serve_swaps(self, workdir: Path, bodies: list[bytes]) -> None:
        """Plan the same load on one server twice: without a swap, then while two new
        versions of the model are published over its file (it re-reads it every second)."""
        self._plan(2, partial(self._serve_swaps, workdir, bodies))

    def _serve_swaps(self, workdir: Path, bodies: list[bytes]) -> None:
        model, versions = models.swappable_logreg(workdir)
        port = servers.free_port()
        requests = [loadgen.post_request(servers.HOST, port, "/predict", b) for b in bodies]
        seconds = max(self.duration_s, 6.0)

        async def load_with_swaps() -> loadgen.LoadResult:
            load = asyncio.ensure_future(
                loadgen.run_load(servers.HOST, port, requests, 10, seconds)
            )
            for version in versions:
                await asyncio.sleep(seconds / 3)
                os.replace(shutil.copy(version, f"{model.artifact}.new"), model.artifact)
            return await load

        try:
            with servers.running(
                "logreg: swaps", servers.mda_serve(model.config, port, cache=False)
            ):
                if self.warmup_s > 0:
                    interrupt.run(loadgen.run_load(servers.HOST, port, requests, 10, self.warmup_s))
                steady = interrupt.run(loadgen.run_load(servers.HOST, port, requests, 10, seconds))
                self._record(Measurement("logreg", NO_SWAP, 10, 1, steady))
                self._record(Measurement("logreg", SWAPS, 10, 1, interrupt.run(load_with_swaps())))
                swaps = servers.metric(port, "mda_model_reloads_total")
                if swaps != len(versions):
                    raise RuntimeError(
                        f"logreg: swaps: {swaps:g} of {len(versions)} swaps happened"
                    )
        except RuntimeError as error:
            self._failed(error)

    def serve_h2load(self, model: models.DemoModel) -> None:
        """Plan gRPC against REST, all driven by h2load: single rows and 64-row requests on
        one server, then the bare servers (uvicorn's floor, grpcio's two kinds)."""
        count = (4 * len(CLIENTS) + len(H2_BARE) * len(CLIENTS)) if h2load.available() else 0
        self._plan(count, partial(self._h2load, model))

    def _h2load(self, model: models.DemoModel) -> None:
        if not h2load.available():
            self.failures.append("h2load is missing (apt-get install nghttp2-client)")
            return
        rest_body, grpc_body = models.single_row_rest_and_grpc(model.name)
        binary_body, header, grpc_batch = models.binary_and_grpc_batch(model.name, 64)
        json_type = {"content-type": "application/json"}
        binary_type = {"content-type": "application/octet-stream",
                       "inference-header-content-length": str(header)}  # fmt: skip

        def rest(scenario: str, port: int) -> H2Load:
            return scenario, f"http://{servers.HOST}:{port}/predict", rest_body, json_type, 1, True

        def grpc(scenario: str, port: int, body: bytes = grpc_body, rows: int = 1) -> H2Load:
            url = f"http://{servers.HOST}:{port}/inference.GRPCInferenceService/ModelInfer"
            return scenario, url, h2load.grpc_frame(body), h2load.GRPC_HEADERS, rows, False

        port, grpc_port = servers.free_port(), servers.free_port()
        binary_url = f"http://{servers.HOST}:{port}/v2/models/{model.name}/infer"
        loads = [
            rest(H2_REST, port), grpc(H2_GRPC, grpc_port),
            (H2_BINARY_BATCH, binary_url, binary_body, binary_type, 64, True),
            grpc(H2_GRPC_BATCH, grpc_port, grpc_batch, 64),
        ]  # fmt: skip
        launch = servers.mda_serve(model.config, port, cache=False, grpc_port=str(grpc_port))
        try:
            with servers.running(f"{model.name}: h2load", launch):
                for request in (grpc_body, grpc_batch):
                    models.check_grpc(servers.HOST, grpc_port, request)
                self._h2load_each(model.name, loads)
        except RuntimeError as error:
            self._failed(error)
        for scenario, launch_bare in H2_BARE.items():
            bare = launch_bare(servers.free_port())
            load = rest(scenario, bare.port) if bare.http else grpc(scenario, bare.port)
            try:
                with servers.running(scenario, bare):
                    self._h2load_each(model.name, [load])
            except RuntimeError as error:
                self._failed(error)

    def _failed(self, error: RuntimeError) -> None:
        """A server that did not start or answer: reported, and the run goes on."""
        self.failures.append(str(error))
        print(f"FAILED {error}", file=sys.stderr, flush=True)

    def _h2load_each(self, model: str, loads: list[H2Load]) -> None:
        for clients in CLIENTS:
            for scenario, url, body, headers, rows, http1 in loads:
                if self.warmup_s > 0:
                    h2load.run(url, body, headers, clients, self.warmup_s, http1)
                result = h2load.run(url, body, headers, clients, self.duration_s, http1)
                self._record(Measurement(model, scenario, clients, rows, result))


# The bare servers h2load measures beside the real one: what each stack costs with no work.
H2_BARE: dict[str, Callable[[int], Launch]] = {
    H2_FLOOR: partial(servers.uvicorn_app, "floor_app:app"),
    GRPC_BARE_ASYNCIO: partial(servers.grpc_bare, "asyncio"),
    GRPC_BARE_THREADS: partial(servers.grpc_bare, "threads"),
}


def run_scenarios(bench: Bench, workdir: Path) -> None:
    print("training the demo models", file=sys.stderr, flush=True)
    single = Scenario(UNCACHED, models.prediction_bodies(5000, seed=1))
    cached = Scenario(CACHED, models.prediction_bodies(100, seed=2))
    batch = Scenario(BATCH, models.prediction_bodies(500, rows_per_body=64, seed=3), 64)
    binary_bodies, binary_header = models.binary_v2_bodies(500, rows_per_body=64, seed=3)

    bench.serve("-", FLOOR, partial(servers.uvicorn_app, "floor_app:app"), [single.renamed(FLOOR)])
    records = Scenario(UNCACHED, models.record_bodies(5000, seed=1))
    cached_records = Scenario(CACHED, models.record_bodies(100, seed=2))
    for model in models.train(workdir):
        reference_env = {"REFERENCE_MODEL_PATH": str(model.artifact)}
        mixed = model.name == models.MIXED  # one-record bodies instead of rows
        bench.serve(
            model.name,
            REFERENCE,
            partial(servers.uvicorn_app, "reference_app:app", env=reference_env),
            [(records if mixed else single).renamed(REFERENCE)],
        )
        mda = partial(servers.mda_serve, model.config)
        uncached = [records] if mixed else [single, batch]
        if model.name == "logreg":  # the same 64-row requests: JSON to the reference, binary V2
            bench.serve(
                model.name,
                REFERENCE_BATCH,
                partial(servers.uvicorn_app, "reference_app:app", env=reference_env),
                [batch.renamed(REFERENCE_BATCH)],
            )
            binary = Scenario(
                BINARY_BATCH, binary_bodies, 64, f"/v2/models/{model.name}/infer",
                {"Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(binary_header)},
            )  # fmt: skip
            uncached.append(binary)
            bench.serve_h2load(model)
            bench.serve_swaps(workdir, single.bodies)
            # Tokens on and a rate limit far above the load: what closing a model costs.
            tokens = workdir / "bench-tokens"
            tokens.write_text("bench-token-0123456789\n")
            auth = {"Authorization": "Bearer bench-token-0123456789"}
            guarded = partial(mda, api_tokens_file=str(tokens), rate_limit="1000000/second")
            bench.serve(
                model.name, GUARDED_UNCACHED, partial(guarded, cache=False),
                [Scenario(GUARDED_UNCACHED, single.bodies, headers=auth)],
            )  # fmt: skip
            bench.serve(
                model.name, GUARDED_CACHED, partial(guarded, cache=True),
                [Scenario(GUARDED_CACHED, cached.bodies, headers=auth)],
            )  # fmt: skip
        bench.serve(model.name, UNCACHED, partial(mda, cache=False), uncached)
        bench.serve(
            model.name, CACHED, partial(mda, cache=True), [cached_records if mixed else cached]
        )
        if model.name == "forest":
            bench.serve(
                model.name,
                WORKERS4,
                partial(mda, cache=False, workers=4),
                [single.renamed(WORKERS4), batch.renamed(WORKERS4_BATCH)],  # as for 1 worker
            )


def run_grpc_scenarios(bench: Bench, workdir: Path) -> None:
    """gRPC against REST on the logistic regression, and the bare servers, through h2load."""
    bench.serve_h2load(next(m for m in models.train(workdir) if m.name == "logreg"))


def run_logging_scenarios(bench: Bench, workdir: Path) -> None:
    """What the payload log costs: the logistic regression's single uncached rows with and
    without every request recorded to a file, twice each, alternating; then one in ten."""
    single = Scenario(UNCACHED, models.prediction_bodies(5000, seed=1))
    model = next(m for m in models.train(workdir) if m.name == "logreg")
    mda = partial(servers.mda_serve, model.config, cache=False)
    logged = partial(mda, payload_log=f"file://{workdir}/payloads.jsonl")
    for _ in range(2):
        bench.serve(model.name, UNCACHED, mda, [single])
        bench.serve(model.name, PAYLOAD_LOGGED, logged, [single.renamed(PAYLOAD_LOGGED)])
    sampled = partial(logged, payload_log_sample="0.1")
    bench.serve(model.name, PAYLOAD_SAMPLED, sampled, [single.renamed(PAYLOAD_SAMPLED)])


def run_compiled_scenarios(bench: Bench, workdir: Path) -> None:
    """Compiled inference: the logistic regression (exact) and the 100-tree forest (approx),
    each served compiled and with MDA_COMPILE=off, single uncached rows; and the compiled
    logistic regression's 64-row V2 binary against the reference app's 64-row JSON."""
    single = Scenario(UNCACHED, models.prediction_bodies(5000, seed=1))
    batch = Scenario(REFERENCE_BATCH, models.prediction_bodies(500, rows_per_body=64, seed=3), 64)
    binary_bodies, binary_header = models.binary_v2_bodies(500, rows_per_body=64, seed=3)
    for model in models.train(workdir):
        if model.name == models.MIXED:
            continue
        mda = partial(servers.mda_serve, model.config, cache=False)
        mode = "exact" if model.name == "logreg" else "approx"
        bench.serve(model.name, COMPILE_OFF, partial(mda, compile="off"),
                    [single.renamed(COMPILE_OFF)])  # fmt: skip
        compiled = [single.renamed(COMPILED)]
        if model.name == "logreg":
            reference_env = {"REFERENCE_MODEL_PATH": str(model.artifact)}
            bench.serve(
                model.name, REFERENCE_BATCH,
                partial(servers.uvicorn_app, "reference_app:app", env=reference_env), [batch],
            )  # fmt: skip
            compiled.append(Scenario(
                BINARY_BATCH, binary_bodies, 64, f"/v2/models/{model.name}/infer",
                {"Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(binary_header)},
            ))  # fmt: skip
        bench.serve(
            model.name, COMPILED, partial(mda, compile=mode), compiled, engine="onnxruntime"
        )


def run_family_scenarios(bench: Bench, workdir: Path) -> None:
    """XGBoost and LightGBM: the reference app on the pickle, mda on the pickle and on the
    family's own file, single uncached rows."""
    single = Scenario(UNCACHED, models.prediction_bodies(5000, seed=1))
    for pickled, native in models.train_families(workdir):
        reference_env = {"REFERENCE_MODEL_PATH": str(pickled.artifact)}
        bench.serve(
            native.name, REFERENCE,
            partial(servers.uvicorn_app, "reference_app:app", env=reference_env),
            [single.renamed(REFERENCE)],
        )  # fmt: skip
        bench.serve(
            native.name, PICKLED, partial(servers.mda_serve, pickled.config, cache=False),
            [single.renamed(PICKLED)],
        )  # fmt: skip
        bench.serve(
            native.name, UNCACHED, partial(servers.mda_serve, native.config, cache=False), [single]
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 1 s per scenario (smoke)")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario (5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per scenario (1)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--charts", type=Path, metavar="DIR", help="also draw each table as an SVG chart here"
    )
    parser.add_argument(
        "--only",
        choices=["tabular", "grpc", "compiled", "families", "logging", "pool", "text"],
        help="run only the tabular (scikit-learn), gRPC against REST (h2load), the compiled "
        "(MDA_COMPILE against off), the model families' (XGBoost, LightGBM), the payload log's "
        "cost, the pool's (100 models in one pod) or the text scenarios",
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="compare with this git ref instead (see baseline.py)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (baseline)")
    parser.add_argument(
        "--pin", type=int, choices=[0, 1], default=1,
        help="servers on one core, the load generator on another (1, the default; the text "
        "scenarios always share every core)",
    )  # fmt: skip
    parser.add_argument(
        "--soak", type=float, metavar="SECONDS", help="run the soak test this long instead"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt.install()
    info = report.machine()
    report.print_machine(info)
    with tempfile.TemporaryDirectory(prefix="mda-bench-") as tmp:
        if args.soak:
            return soak.run(Path(tmp), args.soak, args.json, info)
        if args.baseline:
            seconds = args.duration or (1.0 if args.quick else 3.0)
            warmup = args.warmup if args.warmup is not None else 0.5
            return baseline.run(
                args.baseline, Path(tmp), args.rounds, seconds, warmup, bool(args.pin),
                args.charts,
            )  # fmt: skip
        duration = args.duration or (1.0 if args.quick else 5.0)
        warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
        bench = Bench(duration, warmup)
        pool = None
        if args.only != "text":
            pinned = bool(args.pin) and len(os.sched_getaffinity(0)) >= 2
            everything = os.sched_getaffinity(0)
            if pinned:
                servers.PIN_CORE = 0
                os.sched_setaffinity(0, everything - {0})
            print(f"tabular scenarios: {'each server pinned to core 0' if pinned else 'unpinned'}",
                  file=sys.stderr)  # fmt: skip
            if args.only in (None, "tabular"):
                run_scenarios(bench, Path(tmp))
            if args.only == "grpc":  # (the tabular scenarios include these)
                run_grpc_scenarios(bench, Path(tmp))
            if args.only in (None, "compiled"):
                run_compiled_scenarios(bench, Path(tmp))
            if args.only in (None, "families"):
                run_family_scenarios(bench, Path(tmp))
            if args.only in (None, "logging"):
                run_logging_scenarios(bench, Path(tmp))
            bench.run()
            if args.only in (None, "pool"):
                pool = pool_bench.run(Path(tmp), duration, warmup, bench.failures)
            servers.PIN_CORE = None
            os.sched_setaffinity(0, everything)
        text = None
        if args.only in (None, "text"):
            text = text_bench.run(Path(tmp), duration, warmup, bench.failures)
    print(f"\n{duration:g} s per scenario after {warmup:g} s of warm-up; closed loop, keep-alive")
    if args.only not in ("text", "pool"):
        report.print_tables(bench.measurements)
        report.print_memory(bench.memory)
        report.print_switches(bench.switches)
        report.print_client_cost(bench.measurements)
        targets = report.targets(bench.measurements, bench.memory)
        report.print_targets(targets)
        if args.json:
            report.write_json(args.json, info, bench.measurements, bench.memory, targets)
        if args.charts:
            import charts  # matplotlib, only when asked for

            drawn = charts.write_run(bench.measurements, targets, args.charts)
            print(f"\n{len(drawn)} charts in {args.charts}/")
    if pool is not None:
        pool_bench.print_figures(pool)
    if text is not None:
        text_bench.print_figures(text)
    for failure in bench.failures:
        print(f"not measured: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
