"""The Helm engine: render, install or upgrade, uninstall.

Two interchangeable back ends run Helm's own code: the `helm-python-sdk` package (Helm's Go
SDK in-process, no binary; the `deploy` extra) and a `helm` binary on PATH. `MDA_HELM=sdk` or
`MDA_HELM=binary` picks one; otherwise the SDK when it is installed, else the binary. The SDK
is imported only here and only when used, so the serving image (which lacks it) still runs
`mda serve`.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from model_deployment_app.errors import UserError

# Helm's install order (pkg/release/v1/util/kind_sorter.go), for the kinds a chart renders.
_INSTALL_ORDER = [
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Ingress",
]


@dataclass(frozen=True)
class Release:
    """Where a release goes."""

    name: str
    namespace: str = "default"
    values_files: tuple[Path, ...] = ()
    timeout_s: int = 300


class Engine(Protocol):
    """What the commands need from Helm."""

    name: str

    def render(self, chart: Path, release: Release) -> str:
        """The manifests, as `helm template` prints them."""
        ...

    def deploy(self, chart: Path, release: Release, create_namespace: bool) -> str:
        """Upgrade or install with wait and rollback on failure; return the release notes."""
        ...

    def undeploy(self, release: Release) -> str:
        """Uninstall; return Helm's one-line summary."""
        ...

    def lint(self, chart: Path) -> list[str]:
        """`helm lint --strict`: the problems found (warnings and errors), none when clean."""
        ...


def one_line(message: object) -> str:
    """Helm's multi-line errors (schema failures list one key per line) as one line."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines).removeprefix("Error: ")


def load_values(files: Sequence[Path]) -> dict[str, Any]:
    """Merge `-f` files like Helm does: later files win, maps merge key by key."""
    merged: dict[str, Any] = {}
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as error:
            raise UserError(f"cannot read values file {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise UserError(f"values file {path} is not valid YAML: {one_line(error)}") from None
        if not isinstance(data, dict):
            raise UserError(f"values file {path} must hold a mapping of keys")
        _merge(merged, data)
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def format_manifests(rendered: dict[str, str]) -> str:
    """`helm template` output from {template path: rendered text}: install order, hooks last,
    each document under a `# Source:` line; NOTES.txt and empty documents left out."""
    documents = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in text.split("\n---"):
            body = doc.strip("\n")
            if body.strip("- \n") == "":
                continue
            obj = yaml.safe_load(body) or {}
            hook = "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})
            kind = obj.get("kind", "")
            order = _INSTALL_ORDER.index(kind) if kind in _INSTALL_ORDER else len(_INSTALL_ORDER)
            documents.append(((hook, order, path), f"---\n# Source: {path}\n{body}\n"))
    return "".join(text for _, text in sorted(documents, key=lambda d: d[0]))


class SdkEngine:
    """Helm's Go SDK through the helm-python-sdk package."""

    name = "helm-python-sdk"

    def __init__(self) -> None:
        try:
            import helm_python
        except ImportError:
            raise UserError(_NO_ENGINE) from None
        self._helm = helm_python

    def render(self, chart: Path, release: Release) -> str:
        helm = self._helm
        try:
            with helm.Chart.load(chart) as loaded:
                rendered = loaded.render(
                    load_values(release.values_files),
                    name=release.name,
                    namespace=release.namespace,
                    is_install=True,
                )
        except helm.HelmError as error:
            raise UserError(f"cannot render {release.name}: {one_line(error)}") from None
        return format_manifests(rendered)

    def deploy(self, chart: Path, release: Release, create_namespace: bool) -> str:
        helm = self._helm
        values = load_values(release.values_files)
        with self._config(release) as config:
            try:
                options: dict[str, Any] = {
                    "namespace": release.namespace,
                    "timeout": release.timeout_s,
                    "wait": "watcher",
                    "rollback_on_failure": True,
                }
                if self._exists(config, release.name):
                    result = config.upgrade(str(chart), release.name, values, **options)
                else:
                    result = config.install(
                        str(chart), release.name, values, create_namespace=create_namespace,
                        **options,
                    )  # fmt: skip
            except helm.HelmError as error:
                raise UserError(f"deploy {release.name} failed: {one_line(error)}") from None
        summary = (
            f"deployed {release.name} revision {result.get('revision')} "
            f"to namespace {release.namespace} ({result.get('status')})"
        )
        notes = str(result.get("notes") or "").strip()
        return f"{summary}\n\n{notes}" if notes else summary

    def undeploy(self, release: Release) -> str:
        helm = self._helm
        with self._config(release) as config:
            try:
                config.uninstall(release.name, timeout=release.timeout_s, wait="watcher")
            except helm.HelmNotFoundError:
                raise UserError(
                    f"no release {release.name!r} in namespace {release.namespace}"
                ) from None
            except helm.HelmError as error:
                raise UserError(f"undeploy {release.name} failed: {one_line(error)}") from None
        return f"uninstalled {release.name} from namespace {release.namespace}"

    def lint(self, chart: Path) -> list[str]:
        helm = self._helm
        try:
            report = helm.lint(chart, None, strict=True)
        except helm.HelmError as error:
            return [one_line(error)]
        problems = [one_line(m.get("err") or m) for m in report["messages"] if m["severity"] >= 2]
        return [*(one_line(e) for e in report["errors"]), *problems]

    def _config(self, release: Release) -> Any:
        """A cluster connection, checked first so that no cluster is one clear line."""
        helm = self._helm
        _require_kubeconfig()
        config = helm.Config(namespace=release.namespace)
        try:
            config.check_reachable()
        except helm.HelmError as error:
            config.close()
            raise UserError(
                f"{one_line(error)} (check KUBECONFIG and the current context)"
            ) from None
        return config

    def _exists(self, config: Any, name: str) -> bool:
        """Whether the release has any history: upgrade if so, install if not (as
        `helm upgrade --install` decides)."""
        try:
            config.history(name, max_revisions=1)
        except self._helm.HelmNotFoundError:
            return False
        return True


class BinaryEngine:
    """A `helm` binary on PATH (Helm 3 or 4)."""

    name = "helm"

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which("helm")
        if not found:
            raise UserError(_NO_ENGINE)
        self._helm = found

    def render(self, chart: Path, release: Release) -> str:
        return self._run(
            "template", release.name, str(chart), *self._common(release), action="render"
        )

    def deploy(self, chart: Path, release: Release, create_namespace: bool) -> str:
        _require_kubeconfig()
        atomic = "--rollback-on-failure" if self._major() >= 4 else "--atomic"
        extra = ["--create-namespace"] if create_namespace else []
        out = self._run(
            "upgrade",
            "--install",
            release.name,
            str(chart),
            *self._common(release),
            "--wait",
            atomic,
            f"--timeout={release.timeout_s}s",
            *extra,
            action="deploy",
        )
        return out.strip()

    def undeploy(self, release: Release) -> str:
        _require_kubeconfig()
        out = self._run(
            "uninstall",
            release.name,
            f"--namespace={release.namespace}",
            "--wait",
            f"--timeout={release.timeout_s}s",
            action="undeploy",
        )
        return out.strip()

    def lint(self, chart: Path) -> list[str]:
        proc = subprocess.run(
            [self._helm, "lint", "--strict", str(chart)], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return []
        lines = (proc.stdout + proc.stderr).splitlines()
        return [line.strip() for line in lines if "[ERROR]" in line or "[WARNING]" in line] or [
            f"helm lint failed (exit status {proc.returncode})"
        ]

    def _common(self, release: Release) -> list[str]:
        args = [f"--namespace={release.namespace}"]
        for path in release.values_files:
            args += ["--values", str(path)]
        return args

    def _major(self) -> int:
        out = self._run("version", "--template={{.Version}}", action="version")
        try:
            return int(out.strip().lstrip("v").split(".")[0])
        except ValueError:
            return 3

    def _run(self, *args: str, action: str) -> str:
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.run(
                [self._helm, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
            )
            if proc.returncode != 0:
                stderr.seek(0)
                lines = stderr.read().decode(errors="replace").strip().splitlines()
                detail = one_line(lines[-1]) if lines else f"exit status {proc.returncode}"
                raise UserError(f"helm {action} failed: {detail}")
        return proc.stdout


_NO_ENGINE = (
    "no Helm engine: install the deploy extra (from a checkout: pip install -e '.[deploy]', "
    "or make install) or put a helm binary on PATH"
)


def _require_kubeconfig() -> None:
    """Without any kubeconfig client-go falls back to localhost:8080, which is where `make run`
    serves a model: say what is missing instead."""
    if os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return
    if not (Path.home() / ".kube" / "config").is_file():
        raise UserError(
            "no Kubernetes cluster configured: set KUBECONFIG or create ~/.kube/config "
            "(e.g. gcloud container clusters get-credentials ...)"
        )


def get_engine() -> Engine:
    """The engine `MDA_HELM` names (sdk | binary), else the SDK when installed, else helm."""
    choice = os.environ.get("MDA_HELM", "").strip().lower()
    if choice == "sdk":
        return SdkEngine()
    if choice == "binary":
        return BinaryEngine()
    if choice:
        raise UserError(f"MDA_HELM={choice!r}: use sdk or binary")
    try:
        return SdkEngine()
    except UserError:
        return BinaryEngine()
