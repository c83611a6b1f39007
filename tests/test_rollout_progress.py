"""`mda deploy`'s rollout progress: the official Kubernetes client, reading the release's
Deployments and pods from an API server that stands in for a cluster (none is reachable
here) as a rollout advances: pods ready x of y, and a failing pod's reason, each said once."""

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from model_deployment_app.deploy.helm import Release
from model_deployment_app.deploy.progress import rollout_progress

pytest.importorskip("kubernetes")


def deployment(name: str, replicas: int, updated: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {}, "spec": {"containers": [{"name": "model-server"}]}}},
        "status": {"updatedReplicas": updated, "availableReplicas": available},
    }  # fmt: skip


def pod(name: str, waiting: str | None = None, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name},
        "status": {"phase": "Pending" if waiting else "Running", "containerStatuses": [{
            "name": "model-server", "image": "mda:1", "imageID": "", "ready": waiting is None,
            "restartCount": 0, "state": state,
        }]},
    }  # fmt: skip


# What the API answers, poll after poll: the rollout advances, one pod cannot pull its image
# for a while, and the same reason seen twice is said once.
STATES = [
    ([deployment("iris", 2, 2, 0)],
     [pod("iris-a", "ContainerCreating"),
      pod("iris-b", "ImagePullBackOff", 'Back-off pulling image "mda:1"')]),
    ([deployment("iris", 2, 2, 1)],
     [pod("iris-a"), pod("iris-b", "ImagePullBackOff", 'Back-off pulling image "mda:1"')]),
    ([deployment("iris", 2, 2, 1)], [pod("iris-a"), pod("iris-b", "ContainerCreating")]),
    ([deployment("iris", 2, 2, 2)], [pod("iris-a"), pod("iris-b")]),
]  # fmt: skip


class FakeApi:
    def __init__(self) -> None:
        self.polls = 0
        self.selectors: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.selectors += parse_qs(url.query).get("labelSelector", [])
                deployments, pods = STATES[min(api.polls, len(STATES) - 1)]
                if url.path == "/apis/apps/v1/namespaces/models/deployments":
                    body = {"kind": "DeploymentList", "apiVersion": "apps/v1",
                            "metadata": {}, "items": deployments}  # fmt: skip
                elif url.path == "/api/v1/namespaces/models/pods":
                    body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods}
                    api.polls += 1
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": fake.url}}],
        "users": [{"name": "test", "user": {"token": "t"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }  # fmt: skip
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_the_rollout_says_pods_ready_of_wanted_and_a_failing_pods_reason_once(
    api: FakeApi,
) -> None:
    out = io.StringIO()
    with rollout_progress(Release("iris", "models"), out=out, interval_s=0.05):
        deadline = time.monotonic() + 20
        while "pods ready 2 of 2" not in out.getvalue():
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.02)

    lines = out.getvalue().splitlines()
    assert lines == [
        "rollout: pods ready 0 of 2",
        "rollout: pod iris-b is failing: container model-server: ImagePullBackOff: "
        'Back-off pulling image "mda:1"',
        "rollout: pods ready 1 of 2",
        "rollout: pods ready 2 of 2",
    ]
    assert api.selectors[0] == (
        "app.kubernetes.io/part-of=model-deployment-app,"
        "app.kubernetes.io/instance in (iris,iris-canary)"
    )


def test_an_unreachable_api_says_nothing_and_the_block_still_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }  # fmt: skip
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    out = io.StringIO()
    started = time.monotonic()
    with rollout_progress(Release("iris", "models"), out=out, interval_s=0.05):
        time.sleep(0.5)
    assert out.getvalue() == ""
    assert time.monotonic() - started < 10
