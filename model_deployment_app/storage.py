"""Fetch the model artifact to a local file and check its digest.

GCS goes through the standard google-cloud-storage client, so credentials, workload identity
and `STORAGE_EMULATOR_HOST` behave as users expect.
"""

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_deployment_app.config import GcsSource, LocalSource
from model_deployment_app.errors import StartupError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    uri: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
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


def _download_from_gcs(
    source: GcsSource, download_dir: str | None, deadline: float
) -> tuple[Path, str]:
    from google.api_core import exceptions as gcs_errors
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
    from google.cloud import storage

    uri = f"gs://{source.bucket_name}/{source.blob_dir}"
    target_dir = Path(download_dir or tempfile.mkdtemp(prefix="mda-model-"))
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / Path(source.blob_dir).name
    retry, timeout = _retry(uri, deadline), min(60.0, deadline)
    try:
        client = storage.Client(project=source.project_name)
        bucket = client.bucket(source.bucket_name)
        if not bucket.exists(timeout=timeout, retry=retry):
            raise StartupError(f"bucket gs://{source.bucket_name} does not exist")
        blob = bucket.blob(source.blob_dir)
        blob.download_to_filename(str(target), timeout=timeout, retry=retry)
    except gcs_errors.NotFound:
        target.unlink(missing_ok=True)
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
    return target, uri


def _first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return text.splitlines()[0][:300] if text else ""


def fetch(
    source: GcsSource | LocalSource, download_dir: str | None = None, deadline: float = 300.0
) -> Artifact:
    """Make the artifact a local file, verify a pinned sha256, and return its digest."""
    if isinstance(source, LocalSource):
        path, uri = Path(source.path), source.path
        if path.is_dir():
            raise StartupError(f"model path {path} is a directory, not a model file")
        if not path.is_file():
            raise StartupError(f"model file {path} does not exist")
    else:
        path, uri = _download_from_gcs(source, download_dir, deadline)
    digest = sha256_of(path)
    if source.sha256 and source.sha256.lower() != digest:
        raise StartupError(
            f"sha256 mismatch for {uri}: config pins {source.sha256.lower()}, artifact is {digest}"
        )
    return Artifact(path=path, sha256=digest, uri=uri)
