"""Artifacts from GCS (the real client against fake-gcs-server) and from disk."""

import hashlib
import logging
import os
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


def test_a_folder_download_logs_its_progress_and_its_end(
    gcs_bucket: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = [24 << 20, 16 << 20, 8 << 20]  # a few files of megabytes, as a model folder has
    for index, size in enumerate(sizes):
        gcs_bucket.blob(f"big/part-{index}.bin").upload_from_string(os.urandom(size))
    caplog.set_level(logging.INFO, logger="model_deployment_app.progress")
    artifact = fetch(gcs(gcs_bucket.name, "big/"), str(tmp_path), folder=True,
                     progress_seconds=0.02)  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    total = sum(sizes) / 1e6
    assert any(f"of {total:.1f} MB (" in line for line in lines), lines
    assert lines[-1].startswith(f"downloaded gs://{gcs_bucket.name}/big/: {total:.1f} MB in "), (
        lines
    )
    assert sum(p.stat().st_size for p in artifact.path.iterdir()) == sum(sizes)
    artifact.discard_download()


def test_a_quick_download_says_nothing(
    gcs_bucket: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gcs_bucket.blob("m.joblib").upload_from_string(PAYLOAD)
    caplog.set_level(logging.INFO, logger="model_deployment_app.progress")
    fetch(gcs(gcs_bucket.name, "m.joblib"), str(tmp_path)).discard_download()
    assert not caplog.records
