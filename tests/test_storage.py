"""Artifacts from GCS (the real client against fake-gcs-server) and from disk."""

import hashlib
from pathlib import Path
from typing import Any

import pytest

from model_deployment_app.config import GcsSource, LocalSource
from model_deployment_app.errors import StartupError
from model_deployment_app.storage import fetch

PAYLOAD = b"not really a model, but bytes to fetch"
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def gcs(bucket: str, blob: str, **extra: Any) -> GcsSource:
    return GcsSource.model_validate(
        {"method": "GCS", "projectName": "test-project", "bucketName": bucket, "blobDir": blob,
         **extra}
    )  # fmt: skip


def test_gcs_object_is_downloaded_and_digested(gcs_bucket: Any, tmp_path: Path) -> None:
    gcs_bucket.blob("iris/model.joblib").upload_from_string(PAYLOAD)
    artifact = fetch(gcs(gcs_bucket.name, "iris/model.joblib", sha256=DIGEST), str(tmp_path))
    assert artifact.path.read_bytes() == PAYLOAD
    assert artifact.sha256 == DIGEST
    assert artifact.uri == f"gs://{gcs_bucket.name}/iris/model.joblib"


def test_missing_bucket_is_named(gcs_emulator: str, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="bucket gs://no-such-bucket does not exist"):
        fetch(gcs("no-such-bucket", "m.joblib"), str(tmp_path))


def test_missing_object_is_named(gcs_bucket: Any, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=f"gs://{gcs_bucket.name}/absent.joblib does not exist"):
        fetch(gcs(gcs_bucket.name, "absent.joblib"), str(tmp_path))


def test_pinned_digest_mismatch_is_refused(gcs_bucket: Any, tmp_path: Path) -> None:
    gcs_bucket.blob("m.joblib").upload_from_string(PAYLOAD)
    with pytest.raises(StartupError, match="sha256 mismatch"):
        fetch(gcs(gcs_bucket.name, "m.joblib", sha256="0" * 64), str(tmp_path))


def test_local_file_and_missing_local_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(PAYLOAD)
    assert fetch(LocalSource(method="LOCAL", path=str(path))).sha256 == DIGEST
    with pytest.raises(StartupError, match="does not exist"):
        fetch(LocalSource(method="LOCAL", path=str(tmp_path / "gone.pkl")))
