"""`mda deploy`'s progress while Helm waits: how many pods are ready of how many, and the
first reason a pod is failing (an image that cannot be pulled, a crash loop, a pod no node
can take), so a rollout that will time out says why long before it does.

It reads the release's Deployments (both tracks: `<release>` and `<release>-canary`) and
their pods through the Kubernetes API with the official client (`kubernetes`, in the deploy
extra) and the same kubeconfig Helm uses. Progress is a courtesy: while the API cannot be
read it says nothing (Helm's own error, if any, stays the one line) and tries again.
"""

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from model_deployment_app.deploy.helm import Release

# Container states that will not get better by waiting.
FAILING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}  # fmt: skip
PART_OF = "app.kubernetes.io/part-of=model-deployment-app"


def _instances(release: Release) -> str:
    return f"{PART_OF},app.kubernetes.io/instance in ({release.name},{release.name}-canary)"


def ready_line(deployments: list[Any]) -> str:
    """`pods ready 1 of 2 (iris-classifier 1/1, iris-classifier-canary 0/1)`."""
    parts, ready, wanted = [], 0, 0
    for deployment in sorted(deployments, key=lambda d: d.metadata.name):
        want = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        # Pods of the new revision that are ready: what `kubectl rollout status` waits for.
        have = min(
            deployment.status.updated_replicas or 0, deployment.status.available_replicas or 0
        )
        ready, wanted = ready + have, wanted + want
        parts.append(f"{deployment.metadata.name} {have}/{want}")
    return f"pods ready {ready} of {wanted}" + (f" ({', '.join(parts)})" if len(parts) > 1 else "")


def failing_reason(pod: Any) -> str | None:
    """Why `pod` is failing, in one line; None while it may still come up."""
    status = pod.status
    for condition in status.conditions or ():
        scheduled = condition.type == "PodScheduled" and condition.status == "False"
        if scheduled and condition.reason == "Unschedulable":
            return f"Unschedulable: {condition.message}"
    for container in [*(status.init_container_statuses or ()), *(status.container_statuses or ())]:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason in FAILING:
            reason = f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
            last = container.last_state.terminated if container.last_state else None
            if last is not None:
                reason += f" (last exit {last.exit_code}: {last.reason or 'terminated'})"
            return f"container {container.name}: {reason}"
    if status.phase == "Failed":
        return f"Failed: {status.reason or ''} {status.message or ''}".strip()
    return None


class RolloutProgress:
    """Polls the release's Deployments and pods, printing a line when what it sees changes."""

    def __init__(self, release: Release, out: TextIO, interval_s: float) -> None:
        self.release = release
        self.out = out
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._last_ready = ""
        self._told: set[tuple[str, str]] = set()
        self._apis: tuple[Any, Any] | None = None
        self._connection: Any = None

    def _clients(self) -> tuple[Any, Any]:
        if self._apis is None:
            from kubernetes import client, config

            # KUBECONFIG read now (the client reads it once, at import), as Helm does.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
            self._connection = client.ApiClient()
            self._apis = (client.AppsV1Api(self._connection), client.CoreV1Api(self._connection))
        return self._apis

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = self._apis = None

    def poll(self) -> None:
        """One look: print the ready count if it changed, and each new failing reason."""
        apps, core = self._clients()
        namespace, selector = self.release.namespace, _instances(self.release)
        deployments = apps.list_namespaced_deployment(namespace, label_selector=selector).items
        if deployments:
            line = ready_line(deployments)
            if line != self._last_ready:
                self._say(f"rollout: {line}")
                self._last_ready = line
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            if pod.metadata.deletion_timestamp is not None:
                continue
            reason = failing_reason(pod)
            if reason is not None and (pod.metadata.name, reason) not in self._told:
                self._told.add((pod.metadata.name, reason))
                self._say(f"rollout: pod {pod.metadata.name} is failing: {reason}")

    def run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):  # the first look after one interval
                try:
                    self.poll()
                except ImportError:  # no kubernetes package: no progress, the deploy goes on
                    return
                except Exception:  # progress must never fail a deploy, nor add to its error
                    self._close()  # a fresh connection next time
        finally:
            self._close()

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def rollout_progress(
    release: Release, out: TextIO | None = None, interval_s: float = 2.0
) -> Iterator[RolloutProgress]:
    """Print the rollout's progress to `out` (stderr) while the block (Helm's wait) runs."""
    progress = RolloutProgress(release, out or sys.stderr, interval_s)
    thread = threading.Thread(target=progress.run, name="mda-rollout", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        progress.stop()
        thread.join(timeout=5)
