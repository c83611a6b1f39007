"""The benchmark's load generator, against the bare ASGI floor under a real uvicorn."""

import asyncio
import importlib
from pathlib import Path

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
