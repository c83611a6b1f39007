"""Who may call a model, against real `mda serve` processes: bearer tokens on REST, V2 HTTP
(JSON and binary) and gRPC, the admin route, rate limits alone and shared through a real
redis-server (killed mid-test), and bad settings refused at start-up."""

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2 as pb
from model_deployment_app.grpc_v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import MDA, ServerProcess, free_port, start_redis

pytestmark = pytest.mark.slow

Start = Callable[..., ServerProcess]
ROW = [5.1, 3.5, 1.4, 0.2]
V2_JSON = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}


def binary_v2() -> tuple[bytes, dict[str, str]]:
    header = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", ' \
             b'"parameters": {"binary_data_size": 32}}]}'  # fmt: skip
    body = header + np.asarray(ROW, dtype=np.float64).tobytes()
    return body, {"Inference-Header-Content-Length": str(len(header)),
                  "Content-Type": "application/octet-stream"}  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def iris_config(write_model: Any, iris_pipeline: Pipeline) -> Path:
    config, _ = write_model(iris_pipeline, job="classification", input_size=4, name="iris")
    return Path(config)


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text("# one token a line\nalpha-token\nbeta-token\n")
    return path


def grpc_infer(server: ServerProcess, token: str | None) -> grpc.StatusCode:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend(ROW)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    return grpc.StatusCode.OK


def test_predictions_need_a_valid_token_on_every_protocol(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens))
    binary, binary_headers = binary_v2()
    calls = [
        lambda h: httpx.post(f"{server.url}/predict", json=[ROW], headers=h),
        lambda h: httpx.post(f"{server.url}/v2/models/iris/infer", json=V2_JSON, headers=h),
        lambda h: httpx.post(
            f"{server.url}/v2/models/iris/infer", content=binary, headers={**binary_headers, **h}
        ),
        lambda h: httpx.get(f"{server.url}/v2/models/iris", headers=h),
        lambda h: httpx.get(f"{server.url}/docs", headers=h),
    ]
    for call in calls:
        missing = call({})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "needs a token" in missing.json()["error"]
        assert call(bearer("wrong")).status_code == 401
        assert call(bearer("beta-token")).status_code == 200
    assert grpc_infer(server, None) == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_infer(server, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_infer(server, "alpha-token") == grpc.StatusCode.OK
    assert "alpha-token" not in server.output()


def test_health_stays_open_and_metrics_open_unless_asked(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens))
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200
    closed = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens), MDA_METRICS_AUTH="true")
    assert httpx.get(f"{closed.url}/metrics").status_code == 401
    assert httpx.get(f"{closed.url}/metrics", headers=bearer("alpha-token")).status_code == 200
    assert httpx.get(f"{closed.url}/v2/health/ready").status_code == 200


def test_a_token_added_or_removed_while_serving_is_honoured(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens))

    def status(token: str) -> int:
        return httpx.post(f"{server.url}/predict", json=[ROW], headers=bearer(token)).status_code

    assert status("gamma-token") == 401
    staged = tokens.with_suffix(".new")  # as Kubernetes swaps a mounted Secret: a new file
    staged.write_text("alpha-token\ngamma-token\n")
    os.replace(staged, tokens)
    deadline = time.monotonic() + 10
    while status("gamma-token") != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status("gamma-token") == 200
    assert status("beta-token") == 401, "a token removed from the file is revoked"


def test_the_admin_route_needs_an_admin_token(
    start_server: Start, iris_config: Path, tokens: Path, tmp_path: Path
) -> None:
    off = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens))
    load = "/v2/repository/models/iris/load"
    refused = httpx.post(off.url + load, headers=bearer("alpha-token"))
    assert refused.status_code == 403 and "MDA_ADMIN_TOKENS_FILE" in refused.json()["error"]
    admin = tmp_path / "admin"
    admin.write_text("root-token\n")
    on = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens),
                      MDA_ADMIN_TOKENS_FILE=str(admin))  # fmt: skip
    assert httpx.post(on.url + load).status_code == 401
    prediction_token = httpx.post(on.url + load, headers=bearer("alpha-token"))
    assert prediction_token.status_code == 403
    assert "prediction token" in prediction_token.json()["error"]
    assert httpx.post(on.url + load, headers=bearer("root-token")).json()["loaded"] is False
    # An admin token opens the prediction routes too.
    assert httpx.post(f"{on.url}/predict", json=[ROW], headers=bearer("root-token")).is_success


def test_a_rate_limit_counts_each_caller_and_never_the_health_routes(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens), MDA_RATE_LIMIT="10/minute")
    with httpx.Client(base_url=server.url) as client:
        for _ in range(30):
            assert client.get("/v2/health/ready").status_code == 200
        alpha = [
            client.post("/predict", json=[ROW], headers=bearer("alpha-token")) for _ in range(15)
        ]
        assert [r.status_code for r in alpha] == [200] * 10 + [429] * 5
        over = alpha[-1]
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert "rate limit" in over.json()["error"]
        beta = client.post("/predict", json=[ROW], headers=bearer("beta-token"))
        assert beta.status_code == 200, "another token has a count of its own"
    assert grpc_infer(server, "alpha-token") == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_guessed_tokens_are_counted_against_their_address_not_against_a_valid_caller(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens), MDA_RATE_LIMIT="10/minute")
    with httpx.Client(base_url=server.url) as client:
        guesses = [
            client.post("/predict", json=[ROW], headers=bearer(f"guess-{n}")).status_code
            for n in range(15)
        ]
        assert guesses == [401] * 10 + [429] * 5, "each made-up token is not a caller of its own"
        assert client.post("/predict", json=[ROW]).status_code == 429, "nor is no token at all"
        valid = client.post("/predict", json=[ROW], headers=bearer("alpha-token"))
        assert valid.status_code == 200, "a valid token is never held back by its address"
    assert grpc_infer(server, "guess-x") == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_infer(server, "beta-token") == grpc.StatusCode.OK


def test_two_authorization_headers_are_refused_on_http_and_grpc(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(tokens))
    two = [("Authorization", "Bearer alpha-token"), ("Authorization", "Bearer wrong")]
    for path in ("/predict", "/v2/models/iris"):
        method = "POST" if path == "/predict" else "GET"
        reply = httpx.request(method, server.url + path, json=[ROW], headers=two)
        assert reply.status_code == 400 and "two Authorization headers" in reply.json()["error"]
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend(ROW)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        metadata = (("authorization", "Bearer alpha-token"), ("authorization", "Bearer wrong"))
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "two Authorization headers" in refused.value.details()


def test_a_token_with_non_ascii_characters_is_accepted_as_the_utf8_client_sends_it(
    start_server: Start, iris_config: Path, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comments start with #\nclé-Łódź-token\n", encoding="utf-8")
    server = start_server(iris_config, MDA_API_TOKENS_FILE=str(path), LC_ALL="C", LANG="C")
    sent = {"Authorization": "Bearer clé-Łódź-token".encode()}
    assert httpx.post(f"{server.url}/predict", json=[ROW], headers=sent).status_code == 200
    other = {"Authorization": "Bearer clé-Lodz-token".encode()}
    assert httpx.post(f"{server.url}/predict", json=[ROW], headers=other).status_code == 401


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    start_server: Start, iris_config: Path
) -> None:
    def accepted(server: ServerProcess) -> int:
        codes = [
            httpx.post(f"{server.url}/predict", json=[ROW],
                       headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(6)
        ]  # fmt: skip
        return codes.count(200)

    untrusted = start_server(iris_config, MDA_RATE_LIMIT="3/minute")
    assert accepted(untrusted) == 3, "every request is the loopback client's"
    trusted = start_server(iris_config, MDA_RATE_LIMIT="3/minute", MDA_TRUSTED_PROXIES="127.0.0.1")
    assert accepted(trusted) == 6, "each forwarded client has a count of its own"


def test_two_servers_share_one_count_through_redis_and_go_on_without_it(
    start_server: Start, iris_config: Path, tokens: Path
) -> None:
    redis = start_redis()
    try:
        env = {"MDA_API_TOKENS_FILE": str(tokens), "MDA_RATE_LIMIT": "20/minute",
               "MDA_REDIS_URL": redis.url}  # fmt: skip
        one, two = start_server(iris_config, **env), start_server(iris_config, **env)
        codes = []
        for _ in range(20):
            for server in (one, two):
                reply = httpx.post(
                    f"{server.url}/predict", json=[ROW], headers=bearer("alpha-token")
                )
                codes.append(reply.status_code)
        assert set(codes) <= {200, 429}
        assert 18 <= codes.count(200) <= 22, f"{codes.count(200)} accepted in all, not twice 20"
        redis.stop()
        beta = bearer("beta-token")
        after = [
            httpx.post(f"{server.url}/predict", json=[ROW], headers=beta).status_code
            for server in (one, two) for _ in range(3)
        ]  # fmt: skip
        assert after == [200] * 6, "without Redis each pod counts alone and goes on serving"
        assert one.process.poll() is None and two.process.poll() is None
    finally:
        redis.stop()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MDA_RATE_LIMIT": "fast"}, "setting MDA_RATE_LIMIT: 'fast' is not a rate limit"),
        ({"MDA_TRUSTED_PROXIES": "proxy"}, "setting MDA_TRUSTED_PROXIES: 'proxy' is not"),
        ({"MDA_API_TOKENS_FILE": "/no/such/tokens"}, "MDA_API_TOKENS_FILE: cannot read"),
    ],
)
def test_bad_access_settings_are_refused_at_start_in_one_line(
    iris_config: Path, env: dict[str, str], message: str
) -> None:
    run = subprocess.run(
        [*MDA, "serve"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "MDA_CONFIG_PATH": str(iris_config), "PORT": str(free_port()),
             "MDA_GRPC_PORT": "0", "MDA_HOST": "127.0.0.1", **env},
    )  # fmt: skip
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("mda: error: ") and message in last, run.stderr
    assert "Traceback" not in run.stderr


# --- the chart -----------------------------------------------------------------------------


def namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


CLOSED: dict[str, Any] = {
    "auth": {"enabled": True, "create": True, "tokens": ["alpha-token-1", "beta-token-2"],
             "adminExistingSecret": "model-admin", "metrics": True},
    "rateLimit": "100/second",
    "trustedProxies": ["10.0.0.0/8"],
    "networkPolicy": {
        "enabled": True,
        "from": [namespace("gateways")],
        "metricsFrom": [namespace("monitoring")],
    },
}  # fmt: skip


def test_the_chart_closes_a_model_with_a_secret_and_a_network_policy() -> None:
    import kubernetes_validate

    from tests.test_charts import KUBE_VERSION, MODELS, REPO, _objects, _one, _render

    model = MODELS[0]
    objects = _objects(REPO, model, CLOSED)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    secret = _one(objects, "Secret")
    assert secret["stringData"]["tokens"].split() == ["alpha-token-1", "beta-token-2"]
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MDA_API_TOKENS_FILE"] == "/etc/mda/tokens/tokens"
    assert env["MDA_ADMIN_TOKENS_FILE"] == "/etc/mda/admin-tokens/tokens"
    assert env["MDA_RATE_LIMIT"] == "100/second" and env["MDA_METRICS_AUTH"] == "true"
    assert env["MDA_TRUSTED_PROXIES"] == "10.0.0.0/8"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert "subPath" not in mounts["tokens"], "a subPath mount would never see a rotation"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert volumes["admin-tokens"]["secret"]["secretName"] == "model-admin"
    policy = _one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    callers, scrapers = policy["spec"]["ingress"]
    assert callers["from"] == CLOSED["networkPolicy"]["from"]
    assert [p["port"] for p in callers["ports"]] == ["http", "grpc"]
    assert scrapers["from"] == CLOSED["networkPolicy"]["metricsFrom"]
    assert [p["port"] for p in scrapers["ports"]] == ["http"]
    notes = "".join(t for p, t in _render(REPO, model, CLOSED).items() if p.endswith("NOTES.txt"))
    assert "Authorization: Bearer" in notes
    open_notes = "".join(t for p, t in _render(REPO, model).items() if p.endswith("NOTES.txt"))
    assert "set auth.enabled" in open_notes


def test_a_network_policy_with_no_peers_lets_nobody_in_and_egress_is_left_alone() -> None:
    from tests.test_charts import MODELS, REPO, _objects, _one

    policy = _one(_objects(REPO, MODELS[0], {"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    assert policy["spec"]["ingress"] == [] or policy["spec"].get("ingress") is None
    assert "Egress" not in policy["spec"]["policyTypes"]


def test_auth_without_a_secret_fails_in_one_line() -> None:
    from tests.test_charts import MODELS, REPO, _objects

    with pytest.raises(Exception, match=r"auth\.enabled needs auth\.existingSecret"):
        _objects(REPO, MODELS[0], {"auth": {"enabled": True}})
