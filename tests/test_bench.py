"""The benchmark: its load generator against the bare ASGI floor under a real uvicorn, and a
short run of it drawing its charts."""

import asyncio
import importlib
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_load_generator_completes_requests_without_errors_against_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # bench/ is a directory of scripts, not a package
    loadgen = importlib.import_module("loadgen")
    servers = importlib.import_module("servers")
    port = servers.free_port()
    request = loadgen.post_request(servers.HOST, port, "/predict", b'{"instances": [[1.0]]}')

    with servers.running("floor", servers.uvicorn_app("floor_app:app", port), timeout_s=30):
        result = asyncio.run(
            loadgen.run_load(servers.HOST, port, [request], 4, duration_s=1.0, max_requests=2000)
        )

    assert 0 < result.ok <= 2000
    assert result.errors == 0
    assert result.percentile_ms(50) <= result.percentile_ms(99)


@pytest.mark.slow
def test_a_short_bench_run_draws_each_of_its_tables_as_an_svg_chart(tmp_path: Path) -> None:
    charts = tmp_path / "charts"
    run = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "families",
         "--duration", "0.3", "--warmup", "0.1", "--charts", str(charts)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]

    tables = re.findall(r"^(\w+, \d+ clients)$", run.stdout, flags=re.MULTILINE)
    assert tables, run.stdout[-2000:]
    for title in tables:
        drawn = charts / (re.sub(r"[^a-z0-9]+", "-", title.lower()) + ".svg")
        svg = ElementTree.parse(drawn).getroot()
        assert svg.tag.endswith("svg")
        text = "".join(svg.itertext())
        assert title in text
        assert "mda /predict uncached" in text and "reference app" in text
    targets = ElementTree.parse(charts / "targets-ratios-within-this-run.svg").getroot()
    assert "native file req/s" in "".join(targets.itertext())
    assert f"{len(tables) + 1} charts in {charts}/" in run.stdout


@pytest.mark.slow
def test_a_short_pool_run_measures_each_density_figure() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "pool",
         "--duration", "0.5", "--warmup", "0.1"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = ("pool PSS / one model's PSS", "Zipf pool req/s / one model's",
               "hot p99 with cold loads / alone", "cold load added to a request (ms)")  # fmt: skip
    for figure in figures:
        [line] = [line for line in run.stdout.splitlines() if figure in line]
        assert re.search(r" [0-9]+\.[0-9]{2}  \(target", line), line
    assert re.search(r"[1-9][0-9]* loads in all", run.stdout), run.stdout[-2000:]


@pytest.mark.slow
def test_a_short_grpc_run_measures_grpc_rest_and_each_bare_server(tmp_path: Path) -> None:
    import json

    run = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "grpc",
         "--duration", "0.5", "--warmup", "0.1", "--json", str(tmp_path / "grpc.json")],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads((tmp_path / "grpc.json").read_text())
    measured = {(m["scenario"], m["clients"]): m for m in found["measurements"]}
    scenarios = ("mda REST (h2load, HTTP/1.1)", "mda gRPC (h2load, HTTP/2)",
                 "mda V2 binary 64-row (h2load)", "mda gRPC 64-row (h2load)",
                 "floor (bare ASGI, h2load)", "bare grpcio asyncio (h2load)",
                 "bare grpcio threads (h2load)")  # fmt: skip
    for scenario in scenarios:
        for clients in (10, 50):
            m = measured[(scenario, clients)]
            assert m["requests"] > 0 and m["errors"] == 0, m
    ratios = {t["name"]: t["ratio"] for t in found["targets"] if "gRPC" in t["name"]}
    assert len(ratios) == 6 and all(r is not None and r > 0 for r in ratios.values()), ratios
