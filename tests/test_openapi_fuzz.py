"""schemathesis against the server's own `/openapi.json`: generated requests, valid and not,
get no 5xx and no status the schema does not document."""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    status_code_conformance,
)
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.settings import Settings
from tests.conftest import loaded


@pytest.fixture
def served_schema(iris_pipeline: Pipeline) -> Any:
    app = create_app(Settings(), model=loaded(iris_pipeline, "classification", 4, name="iris"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_error_and_no_undocumented_status(served_schema: Any) -> None:
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                checks=[not_a_server_error, status_code_conformance, content_type_conformance]
            )

        run()
