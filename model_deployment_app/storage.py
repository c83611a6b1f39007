"""Fetch the model artifact to a local file and check its digest.

GCS goes through the standard google-cloud-storage client, so credentials, workload identity
and `STORAGE_EMULATOR_HOST` behave as users expect.
"""

import functools
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_deployment_app.config import GcsSource, LocalSource, MlflowSource
from model_deployment_app.errors import StartupError
from model_deployment_app.progress import DownloadProgress

log = logging.getLogger(__name__)


Source = GcsSource | LocalSource | MlflowSource


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    uri: str
    token: str = ""  # the source's version when fetched (see `probe`)
    downloaded: Path | None = None  # what this process downloaded for it (None for LOCAL)

    def discard_download(self) -> None:
        """Remove the downloaded copy once the model is in memory: a server that follows new
        versions would otherwise fill its download directory (the pod's /tmp) with old ones."""
        if self.downloaded is None:
            return
        if self.downloaded.is_dir():
            shutil.rmtree(self.downloaded, ignore_errors=True)
        else:
            self.downloaded.unlink(missing_ok=True)


def _files_of(folder: Path) -> list[tuple[str, Path]]:
    """Every file under `folder` with its relative POSIX name, sorted by that name."""
    return sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())


def sha256_of(path: Path) -> str:
    """The digest of a file's bytes, or of a folder (what `mda digest` prints): over its
    files sorted by relative POSIX name, each as `name NUL size NUL bytes`, so a renamed,
    moved, added or changed file changes it, and the same folder digests alike anywhere."""
    digest = hashlib.sha256()
    files = _files_of(path) if path.is_dir() else [("", path)]
    for name, file in files:
        if path.is_dir():
            digest.update(f"{name}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _retry(uri: str, deadline: float) -> Any:
    """The client's own retry of transient errors, within `deadline`, each retry logged."""
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import DEFAULT_RETRY

    def logged(error: Exception) -> None:
        log.warning("retrying %s after %s: %s", uri, type(error).__name__, error)

    return Retry(
        predicate=DEFAULT_RETRY._predicate,
        initial=0.5,
        maximum=8.0,
        multiplier=2.0,
        timeout=deadline,
        on_error=logged,
    )


@contextmanager
def _gcs_errors(uri: str, deadline: float) -> Iterator[None]:
    """Every way a GCS call fails, as one StartupError line."""
    from google.api_core import exceptions as gcs_errors
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    try:
        yield
    except gcs_errors.NotFound:
        raise StartupError(f"model object {uri} does not exist") from None
    except gcs_errors.Forbidden as error:
        raise StartupError(f"no permission to read {uri}: {error.message}") from None
    except DefaultCredentialsError as error:
        raise StartupError(f"no Google Cloud credentials to read {uri}: {error}") from None
    except GoogleAuthError as error:
        raise StartupError(f"cannot authenticate to read {uri}: {_first_line(error)}") from None
    except gcs_errors.GoogleAPICallError as error:
        raise StartupError(f"cannot download {uri}: {error.message}") from None
    except gcs_errors.RetryError as error:
        cause = error.cause
        raise StartupError(
            f"cannot reach GCS to download {uri} within {deadline:g}s "
            f"(MDA_LOAD_TIMEOUT_SECONDS): {type(cause).__name__}: {_first_line(cause)}"
        ) from None
    except (OSError, ValueError) as error:  # transport (requests, urllib3) and auth errors
        raise StartupError(
            f"cannot download {uri}: {type(error).__name__}: {_first_line(error)}"
        ) from None


@functools.cache
def _client(project: str, pid: int) -> Any:
    """One client per project and process: made once (credential discovery is not free on
    every poll), never shared across a fork (its connection pool would be)."""
    from google.cloud import storage

    return storage.Client(project=project)


def _objects_under(client: Any, bucket: Any, prefix: str, timeout: float, retry: Any) -> list[Any]:
    """The objects whose names start with `prefix` (not the folder placeholders)."""
    listed = client.list_blobs(bucket, prefix=prefix, timeout=timeout, retry=retry)
    return [b for b in listed if not b.name.endswith("/")]


def _gcs_blob(source: GcsSource, deadline: float) -> Any:
    """The object to serve, with its generation: `blobDir` itself, or for a prefix ending
    in `/`, the newest object under it."""
    from google.api_core import exceptions as gcs_errors

    uri = f"gs://{source.bucket_name}/{source.blob_dir}"
    retry, timeout = _retry(uri, deadline), min(60.0, deadline)
    with _gcs_errors(uri, deadline):
        client = _client(source.project_name, os.getpid())
        bucket = client.bucket(source.bucket_name)
        try:
            if source.blob_dir.endswith("/"):
                blobs = _objects_under(client, bucket, source.blob_dir, timeout, retry)
                found = max(blobs, key=lambda b: (b.updated, b.generation)) if blobs else None
            else:
                found = bucket.get_blob(source.blob_dir, timeout=timeout, retry=retry)
        except gcs_errors.NotFound:
            found = None
        if found is not None:
            return found
        # Only when nothing is found: is it the object, or the whole bucket?
        if not bucket.exists(timeout=timeout, retry=retry):
            raise StartupError(f"bucket gs://{source.bucket_name} does not exist")
        if source.blob_dir.endswith("/"):
            raise StartupError(f"no model object under {uri}")
        raise StartupError(f"model object {uri} does not exist")


def _blob_token(blob: Any) -> str:
    return f"{blob.name}#{blob.generation}"


def _folder_prefix(source: GcsSource) -> str:
    return source.blob_dir.rstrip("/") + "/"


def _gcs_folder_blobs(source: GcsSource, deadline: float) -> list[Any]:
    """Every object under the folder `blobDir` (with or without its trailing `/`)."""
    prefix = _folder_prefix(source)
    uri = f"gs://{source.bucket_name}/{prefix}"
    retry, timeout = _retry(uri, deadline), min(60.0, deadline)
    with _gcs_errors(uri, deadline):
        client = _client(source.project_name, os.getpid())
        bucket = client.bucket(source.bucket_name)
        blobs = _objects_under(client, bucket, prefix, timeout, retry)
        if not blobs:
            if not bucket.exists(timeout=timeout, retry=retry):
                raise StartupError(f"bucket gs://{source.bucket_name} does not exist")
            raise StartupError(f"no objects under {uri} (the model folder)")
    return sorted(blobs, key=lambda b: b.name)


def _folder_token(entries: list[str]) -> str:
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


def _download_folder_from_gcs(
    source: GcsSource, download_dir: str | None, deadline: float, every: float
) -> tuple[Path, str, str, Path]:
    """Every object under the folder, downloaded in parallel into a folder of its own."""
    from concurrent.futures import ThreadPoolExecutor

    blobs = _gcs_folder_blobs(source, deadline)
    prefix = _folder_prefix(source)
    uri = f"gs://{source.bucket_name}/{prefix}"
    token = _folder_token([_blob_token(b) for b in blobs])
    folder = download_folder(download_dir, f"mda-{token}-")
    target = folder / Path(prefix.rstrip("/")).name

    def download(blob: Any) -> None:
        local = target / blob.name[len(prefix) :]
        local.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(
            str(local), timeout=min(60.0, deadline), retry=_retry(uri, deadline)
        )

    total = sum(int(b.size or 0) for b in blobs)
    with _gcs_errors(uri, deadline):
        try:
            with (
                DownloadProgress(uri, folder, total, every),
                ThreadPoolExecutor(max_workers=8, thread_name_prefix="mda-gcs") as pool,
            ):
                list(pool.map(download, blobs))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return target, uri, token, folder


def download_folder(download_dir: str | None, prefix: str) -> Path:
    """A new folder of this download's own: workers that fetch the same version at once
    never write the same file."""
    if download_dir:
        Path(download_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=download_dir))


def _download_from_gcs(
    source: GcsSource, download_dir: str | None, deadline: float, every: float
) -> tuple[Path, str, str, Path]:
    blob = _gcs_blob(source, deadline)
    uri = f"gs://{source.bucket_name}/{blob.name}"
    folder = download_folder(download_dir, f"mda-{blob.generation}-")
    target = folder / Path(blob.name).name
    with _gcs_errors(uri, deadline):
        try:  # this very generation: a newer one is the next version, not this one
            with DownloadProgress(uri, folder, blob.size, every):
                blob.download_to_filename(
                    str(target), timeout=min(60.0, deadline), retry=_retry(uri, deadline)
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return target, uri, _blob_token(blob), folder


def _first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return text.splitlines()[0][:300] if text else ""


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _local_token(path: Path) -> str:
    try:
        if path.is_dir():  # a folder: each file's name, mtime and size
            return _folder_token([f"{name}:{_stamp(f)}" for name, f in _files_of(path)])
        return _stamp(path)
    except OSError:
        return "missing"


def probe(source: Source, deadline: float = 60.0, folder: bool = False) -> str:
    """The source's current version, cheaply (no download): a LOCAL file's mtime and size, a
    GCS object's name and generation, the model version an MLflow alias points at (`folder`:
    the same over every file of the folder). A change means a new version to load."""
    if isinstance(source, LocalSource):
        return _local_token(Path(source.path))
    if isinstance(source, MlflowSource):
        from model_deployment_app import mlflow_registry

        return mlflow_registry.resolve(source.model_uri).version
    if folder:
        return _folder_token([_blob_token(b) for b in _gcs_folder_blobs(source, deadline)])
    return _blob_token(_gcs_blob(source, deadline))


def check_local(source: LocalSource, folder: bool = False) -> None:
    """A LOCAL model is the file (or with `folder` the folder) it names, else one line: known
    before the server starts, so it is the only line a bad config prints."""
    path = Path(source.path)
    if folder:
        if not path.is_dir():
            raise StartupError(
                f"model path {path} is not a folder (this modelType is served from a folder, "
                "such as the one save_pretrained writes)"
            )
    elif path.is_dir():
        raise StartupError(f"model path {path} is a directory, not a model file")
    elif not path.is_file():
        raise StartupError(f"model file {path} does not exist")


def fetch(
    source: Source,
    download_dir: str | None = None,
    deadline: float = 300.0,
    folder: bool = False,
    progress_seconds: float = 5.0,
) -> Artifact:
    """Make the artifact a local file (or a folder: an MLflow model's, or with `folder` the
    model's folder itself), verify a pinned sha256, and return it with its digest and
    the version token it was fetched at. A download logs its progress every
    `progress_seconds`."""
    downloaded: Path | None = None
    if isinstance(source, LocalSource):
        path, uri = Path(source.path), source.path
        token = _local_token(path)
        check_local(source, folder)
    elif isinstance(source, MlflowSource):
        from model_deployment_app import mlflow_registry

        downloaded = download_folder(download_dir, "mda-mlflow-")
        try:
            with DownloadProgress(source.model_uri, downloaded, None, progress_seconds):
                path, uri, token = mlflow_registry.download(source.model_uri, downloaded)
        except BaseException:
            shutil.rmtree(downloaded, ignore_errors=True)
            raise
    elif folder:
        path, uri, token, downloaded = _download_folder_from_gcs(
            source, download_dir, deadline, progress_seconds
        )
    else:
        path, uri, token, downloaded = _download_from_gcs(
            source, download_dir, deadline, progress_seconds
        )
    artifact = Artifact(path, sha256_of(path), uri, token, downloaded)
    if source.sha256 and source.sha256.lower() != artifact.sha256:
        artifact.discard_download()
        raise StartupError(
            f"sha256 mismatch for {uri}: config pins {source.sha256.lower()}, "
            f"artifact is {artifact.sha256}"
        )
    return artifact
