"""Slow, idle, huge and odd clients cannot starve others: header and body deadlines, a
connection cap, large bodies decoded off the event loop, bounded cache memory, and JSON for
everything the server refuses, down to malformed HTTP."""

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import orjson
import psutil
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.settings import Settings
from tests.conftest import ServerProcess, loaded

Start = Callable[..., ServerProcess]


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def json_error(reply: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), orjson.loads(body)


# --- in-process ------------------------------------------------------------------------------


@pytest.fixture
def client(iris_pipeline: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(), model=loaded(iris_pipeline, "classification", 4))) as c:
        yield c


def test_a_gzip_body_is_honoured_and_other_encodings_are_415(
    client: TestClient, iris_pipeline: Pipeline
) -> None:
    body = gzip.compress(b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    reply = client.post("/predict", content=body, headers={"content-encoding": "gzip"})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["predictions"],
                               iris_pipeline.predict_proba([[5.1, 3.5, 1.4, 0.2]]))  # fmt: skip
    reply = client.post("/predict", content=body, headers={"content-encoding": "br"})
    assert reply.status_code == 415 and "Content-Encoding 'br'" in reply.json()["error"]
    reply = client.post("/predict", content=body[:-9], headers={"content-encoding": "gzip"})
    assert reply.status_code == 400 and "gzip" in reply.json()["error"]
    bomb = gzip.compress(b"[" + b"0," * (10 << 20) + b"0]")
    reply = client.post("/predict", content=bomb, headers={"content-encoding": "gzip"})
    assert reply.status_code == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[[5.1, true, 1.4, 0.2]]", "row 0, feature 1: expected a number, got true"),
        (b"[[5.1, 3.5, 1.4, " + b"9" * 5000 + b"]]", "too large"),
        (b"[[5.1, 3.5, 1.4, 1e400]]", "expected a finite number"),
    ],
)
def test_odd_numbers_are_422(client: TestClient, body: bytes, message: str) -> None:
    reply = client.post("/predict", content=body)
    assert reply.status_code == 422 and message in reply.json()["error"]


def test_a_405_says_which_methods_are_allowed(client: TestClient) -> None:
    reply = client.get("/predict")
    assert reply.status_code == 405 and reply.headers["allow"] == "POST"
    assert "error" in reply.json()


# --- real processes --------------------------------------------------------------------------


@pytest.fixture
def one_second_deadlines(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline
) -> ServerProcess:
    """A real server whose header and body deadlines are 1 s."""
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    return start_server(config, MDA_HEADER_TIMEOUT_SECONDS="1", MDA_BODY_TIMEOUT_SECONDS="1")


@pytest.mark.slow
def test_idle_and_slow_connections_are_closed_while_others_are_served(
    one_second_deadlines: ServerProcess, request: pytest.FixtureRequest
) -> None:
    server = one_second_deadlines
    sockets = contextlib.ExitStack()
    request.addfinalizer(sockets.close)
    idle, trickle, body_late = (
        sockets.enter_context(socket.create_connection(("127.0.0.1", server.port)))
        for _ in range(3)
    )
    trickle.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    body_late.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[[1")

    def keep_trickling() -> None:  # on past the deadline: the 408 must still reach the client
        for _ in range(40):
            time.sleep(0.05)
            try:
                trickle.sendall(b"X")
            except OSError:
                return

    threading.Thread(target=keep_trickling, daemon=True).start()
    assert httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200
    time.sleep(1.5)  # past the deadlines, while the trickle goes on
    for sock, status, words in (
        (idle, 408, "headers did not arrive within 1s"),
        (trickle, 408, "headers did not arrive within 1s"),
        (body_late, 408, "body did not arrive within 1s"),
    ):
        code, body = json_error(read_all(sock))
        assert (code, words in body["error"]) == (status, True), body
    malformed = sockets.enter_context(socket.create_connection(("127.0.0.1", server.port)))
    malformed.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    code, body = json_error(read_all(malformed))
    assert code == 400 and body["error"].startswith("malformed HTTP request")


@pytest.mark.slow
def test_a_kept_alive_connection_is_held_to_the_deadlines_of_its_next_request(
    one_second_deadlines: ServerProcess,
) -> None:
    server = one_second_deadlines
    body = b"[[5.1, 3.5, 1.4, 0.2]]"
    whole = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for second, words in (
        (b"POST /predict HTTP/1.1\r\nHost: x\r\n", "headers did not arrive within 1s"),
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[[", "body did not"),
    ):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(whole)
        sock.settimeout(10)
        first = b""
        while not first.endswith(b"]}"):  # the whole first answer (head and body)
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(1.5)  # idle between requests: uvicorn's keep-alive (5 s) lets it be
        sock.sendall(second)
        started = time.monotonic()
        code, reply = json_error(read_all(sock))
        assert (code, words in reply["error"]) == (408, True), reply
        assert time.monotonic() - started < 5
        sock.close()


@pytest.mark.slow
def test_connections_past_the_cap_get_a_json_503(
    start_server: Start, write_model: Callable, iris_pipeline: Pipeline
) -> None:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4)
    server = start_server(config, MDA_MAX_CONNECTIONS="3", MDA_HEADER_TIMEOUT_SECONDS="2")
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", server.port)) as extra:
        code, body = json_error(read_all(extra))
    assert code == 503 and "too many connections" in body["error"]
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200


@pytest.mark.slow
def test_a_15_mb_body_does_not_hold_up_a_small_request(
    start_server: Start, write_model: Callable
) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 80))
    model = LogisticRegression(max_iter=200).fit(X, X[:, 0] > 0)
    config, _ = write_model(model, job="classification", input_size=80)
    server = start_server(config, MDA_CACHE_ENABLED="false")
    big = orjson.dumps({"instances": rng.normal(size=(9_500, 80)).tolist()})
    assert len(big) > 14_000_000
    took: dict[str, float] = {}

    def post_big() -> None:
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/predict", content=big, timeout=60)
        assert reply.status_code == 200
        took["big"] = time.monotonic() - started

    thread = threading.Thread(target=post_big)
    thread.start()
    time.sleep(0.05)  # the big body is on its way or being decoded
    started = time.monotonic()
    small = httpx.post(f"{server.url}/predict", json=[X[0].tolist()], timeout=60)
    took["small"] = time.monotonic() - started
    thread.join(timeout=60)
    assert small.status_code == 200
    assert took["small"] < min(took["big"], 1.0)  # a generous bound on the order of things
    too_many = b'{"instances": [' + b"[0]," * 2_000_000 + b"[0]]}"
    reply = httpx.post(f"{server.url}/predict", content=too_many, timeout=60)
    assert reply.status_code == 413, reply.text  # counted before parsing


@pytest.mark.slow
def test_a_wide_models_cache_stays_within_its_byte_bound(
    start_server: Start, write_model: Callable
) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 1000))
    model = LogisticRegression(max_iter=100).fit(X, X[:, 0] > 0)
    config, _ = write_model(model, job="classification", input_size=1000)
    # Compilation off: ONNX Runtime, loaded once the model is converted, is not the cache.
    server = start_server(config, MDA_CACHE_MAX_BYTES=str(4 << 20), MDA_COMPILE="off")
    process = psutil.Process(server.process.pid)
    httpx.post(f"{server.url}/predict", json=X[:10].tolist(), timeout=60)
    before = process.memory_info().rss
    with httpx.Client(timeout=60) as client:
        for _ in range(30):  # 15,000 distinct 1,000-feature rows: 120 MB of row bytes
            rows = rng.normal(size=(500, 1000))
            assert client.post(f"{server.url}/predict", json=rows.tolist()).status_code == 200
    growth = process.memory_info().rss - before
    assert growth < 60 << 20, f"RSS grew by {growth >> 20} MiB"


def send_head(server: ServerProcess, head: bytes, chunk: int) -> tuple[int, dict[str, str]]:
    """Send a request head in pieces of `chunk` bytes (the server may cut it off midway)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        for start in range(0, len(head), chunk):
            try:
                sock.sendall(head[start : start + chunk])
            except OSError:
                break  # refused and closed before the rest was sent
        return json_error(read_all(sock))
    finally:
        sock.close()


@pytest.mark.slow
def test_a_request_head_past_64_kib_is_431_and_takes_no_memory(
    one_second_deadlines: ServerProcess,
) -> None:
    from tests.memory_watch import rss_growth_below

    server = one_second_deadlines
    start = b"POST /predict HTTP/1.1\r\nHost: x\r\n"
    one_big = start + b"X-Big: " + b"a" * 10_000_000 + b"\r\n\r\n"
    many_lines = start + b"".join(b"X-%d: 1\r\n" % n for n in range(200_000)) + b"\r\n"
    in_one_read = start + b"X-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n[]"
    with rss_growth_below(server.process.pid, bound_mib=40):
        for head, chunk in ((one_big, 65_536), (many_lines, 4096), (in_one_read, len(in_one_read))):
            code, body = send_head(server, head, chunk)
            assert code == 431 and "larger than 65536 bytes" in body["error"], body
    within = {"X-Within": "a" * 60_000}
    reply = httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]], headers=within)
    assert reply.status_code == 200
