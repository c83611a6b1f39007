"""SIGTERM drains: requests in flight finish within MDA_GRACEFUL_SHUTDOWN_SECONDS; those
still running at the deadline get a JSON 503; new connections are refused, not reset."""

import signal
import threading
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from tests.conftest import ServerProcess
from tests.slow_model import SlowClassifier

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]


def post_in_background(url: str, count: int) -> tuple[list[threading.Thread], list[object]]:
    replies: list[object] = []

    def post(index: int) -> None:
        try:
            replies.append(httpx.post(url, json=[[float(index), 0.0]], timeout=30))
        except httpx.HTTPError as error:
            replies.append(error)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, replies


@pytest.mark.parametrize("workers", ["1", "2"])
def test_requests_in_flight_finish_within_the_drain(
    workers: str, start_server: Start, write_model: Callable
) -> None:
    model = SlowClassifier(seconds=1.5).fit(np.zeros((2, 2)), np.array(["a", "b"]))
    config, _ = write_model(model, job="classification", input_size=2)
    server = start_server(config, MDA_WORKERS=workers, MDA_GRACEFUL_SHUTDOWN_SECONDS="10",
                          MDA_CACHE_ENABLED="false")  # fmt: skip
    threads, replies = post_in_background(f"{server.url}/predict", 4)
    time.sleep(0.5)  # the requests are in the model now
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):  # refused at once, not left hanging
        httpx.post(f"{server.url}/predict", json=[[1.0, 2.0]], timeout=5)
    for thread in threads:
        thread.join(timeout=30)
    assert [getattr(r, "status_code", r) for r in replies] == [200] * 4
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_requests_still_running_at_the_deadline_get_a_json_503(
    start_server: Start, write_model: Callable
) -> None:
    model = SlowClassifier(seconds=0.01).fit(np.zeros((2, 2)), np.array(["a", "b"]))
    model.seconds = 8.0  # fast warm-up, slow requests
    config, _ = write_model(model, job="classification", input_size=2)
    server = start_server(config, MDA_GRACEFUL_SHUTDOWN_SECONDS="1", MDA_CACHE_ENABLED="false")
    threads, replies = post_in_background(f"{server.url}/predict", 2)
    time.sleep(0.5)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30)
    assert time.monotonic() - started < 6
    for reply in replies:
        assert isinstance(reply, httpx.Response), reply
        assert reply.status_code == 503
        assert reply.json() == {"error": "the server is shutting down: retry, another replica "
                                "will answer"}  # fmt: skip
