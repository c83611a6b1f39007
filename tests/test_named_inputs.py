"""Named, mixed-type and text inputs, in-process: every accepted form gives the model's own
answer, and every bad one a 422 naming the row and the column."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from model_deployment_app.api import create_app
from model_deployment_app.settings import CacheSettings, ServerSettings, Settings
from tests.conftest import PEOPLE_INPUTS, TEXT_INPUTS, loaded

People = tuple[pd.DataFrame, np.ndarray]


def app_settings(cache: bool = False) -> Settings:
    return Settings(server=ServerSettings(max_rows=100), cache=CacheSettings(cache_enabled=cache))


@pytest.fixture(params=[False, True], ids=["no-cache", "cache"])
def mixed(request: pytest.FixtureRequest, mixed_pipeline: Pipeline) -> Iterator[TestClient]:
    model = loaded(mixed_pipeline, "classification", name="people", inputs=PEOPLE_INPUTS)
    with TestClient(create_app(app_settings(request.param), model=model)) as client:
        yield client


@pytest.fixture
def text(text_pipeline: Pipeline) -> Iterator[TestClient]:
    model = loaded(text_pipeline, "classification", name="reviews", inputs=TEXT_INPUTS)
    with TestClient(create_app(app_settings(cache=True), model=model)) as client:
        yield client


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"age": int(r.age), "income": float(r.income), "city": str(r.city),
         "member": bool(r.member)}
        for r in frame.itertuples()
    ]  # fmt: skip


def expected(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(frame)


# --- every accepted form, compared with the model's own predict_proba ----------------------


def test_records_get_the_pipelines_probabilities(
    mixed: TestClient, mixed_pipeline: Pipeline, people: People
) -> None:
    frame = people[0].iloc[:25]
    body = mixed.post("/predict", json={"instances": records(frame)}).json()
    assert body["classes"] == mixed_pipeline.classes_.tolist()
    np.testing.assert_allclose(body["predictions"], expected(mixed_pipeline, frame), atol=1e-9)


def test_mlflow_dataframe_split_and_records(
    mixed: TestClient, mixed_pipeline: Pipeline, people: People
) -> None:
    frame = people[0].iloc[30:50]
    shuffled = frame[["city", "member", "income", "age"]]  # any column order
    data = [list(r) for r in shuffled.astype(object).itertuples(index=False)]
    split = {"columns": list(shuffled.columns), "data": data, "index": list(range(20))}
    for body in ({"dataframe_split": split}, {"dataframe_records": records(frame)}):
        reply = mixed.post("/predict", json=body)
        assert reply.status_code == 200, reply.text
        np.testing.assert_allclose(
            reply.json()["predictions"], expected(mixed_pipeline, frame), atol=1e-9
        )


def test_rows_in_column_order_are_accepted(
    mixed: TestClient, mixed_pipeline: Pipeline, people: People
) -> None:
    frame = people[0].iloc[:5]
    rows = [[r["age"], r["income"], r["city"], r["member"]] for r in records(frame)]
    body = mixed.post("/predict", json={"instances": rows}).json()
    np.testing.assert_allclose(body["predictions"], expected(mixed_pipeline, frame), atol=1e-9)


def test_v2_one_tensor_per_column_as_pandas_clients_send(
    mixed: TestClient, mixed_pipeline: Pipeline, people: People
) -> None:
    frame = people[0].iloc[60:72]
    inputs = [
        {"name": "age", "shape": [12, 1], "datatype": "INT64", "data": frame.age.tolist()},
        {"name": "income", "shape": [12], "datatype": "FP64", "data": frame.income.tolist()},
        {"name": "city", "shape": [12], "datatype": "BYTES", "data": frame.city.tolist(),
         "parameters": {"content_type": "str"}},
        {"name": "member", "shape": [12], "datatype": "BOOL", "data": frame.member.tolist()},
    ]  # fmt: skip
    body = {"inputs": inputs[::-1], "parameters": {"content_type": "pd"},
            "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}  # fmt: skip
    reply = mixed.post("/v2/models/people/infer", json=body)
    assert reply.status_code == 200, reply.text
    proba, labels = reply.json()["outputs"]
    assert proba["shape"] == [12, 3]
    np.testing.assert_allclose(
        np.reshape(proba["data"], (12, 3)), expected(mixed_pipeline, frame), atol=1e-9
    )
    assert labels["datatype"] == "BYTES"
    assert labels["data"] == mixed_pipeline.predict(frame).tolist()


def test_v2_one_tensor_of_every_column_in_order(
    mixed: TestClient, mixed_pipeline: Pipeline, people: People
) -> None:
    frame = people[0].iloc[:3]
    rows = [[r["age"], r["income"], r["city"], r["member"]] for r in records(frame)]
    tensor = {"name": "input-0", "shape": [3, 4], "datatype": "BYTES", "data": rows}
    reply = mixed.post("/v2/models/people/infer", json={"inputs": [tensor]})
    assert reply.status_code == 200, reply.text
    data = reply.json()["outputs"][0]["data"]
    np.testing.assert_allclose(np.reshape(data, (3, 3)), expected(mixed_pipeline, frame))


def test_metadata_lists_the_real_inputs(mixed: TestClient, mixed_pipeline: Pipeline) -> None:
    inputs = mixed.get("/v2/models/people").json()["inputs"]
    assert [(i["name"], i["datatype"]) for i in inputs] == [
        (spec["name"], spec["datatype"]) for spec in PEOPLE_INPUTS
    ]
    assert [i["name"] for i in inputs] == mixed_pipeline.feature_names_in_.tolist()


def test_text_pipeline_over_rest_and_v2_bytes(text: TestClient, text_pipeline: Pipeline) -> None:
    texts = ["a great and moving film", "boring and awful", "loved the acting"]
    rest = text.post("/predict", json={"instances": texts}).json()
    np.testing.assert_allclose(rest["predictions"], text_pipeline.predict_proba(texts), atol=1e-9)
    assert rest["classes"] == text_pipeline.classes_.tolist()
    tensor = {"name": "review", "shape": [3], "datatype": "BYTES", "data": texts}
    v2 = text.post("/v2/models/reviews/infer", json={"inputs": [tensor]}).json()
    np.testing.assert_allclose(
        np.reshape(v2["outputs"][0]["data"], (3, 2)), text_pipeline.predict_proba(texts)
    )


def test_repeated_one_row_predict_with_string_labels_is_served_from_cache(
    text: TestClient, text_pipeline: Pipeline, iris_pipeline: Pipeline
) -> None:
    tensor = {"name": "review", "shape": [1], "datatype": "BYTES", "data": ["great fun"]}
    body = {"inputs": [tensor], "outputs": [{"name": "predict"}]}
    answers = [text.post("/v2/models/reviews/infer", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {tuple(a.json()["outputs"][0]["data"]) for a in answers} == {
        tuple(text_pipeline.predict(["great fun"]).tolist())
    }
    iris = loaded(iris_pipeline, "classification", 4, name="iris")
    with TestClient(create_app(app_settings(cache=True), model=iris)) as client:
        row = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.9, 3.0, 5.1, 1.8]}
        body = {"inputs": [row], "outputs": [{"name": "predict"}]}
        labels = [client.post("/v2/models/iris/infer", json=body).json() for _ in range(3)]
        assert {tuple(a["outputs"][0]["data"]) for a in labels} == {("virginica",)}


@pytest.mark.parametrize("datatype", ["INT64", "INT32", "UINT8", "FP16", "BOOL"])
def test_numeric_models_take_integer_and_bool_tensors(
    iris_pipeline: Pipeline, datatype: str
) -> None:
    rows = np.array([[5, 3, 1, 0], [6, 3, 5, 2]])
    data = rows.astype(bool).tolist() if datatype == "BOOL" else rows.tolist()
    model = loaded(iris_pipeline, "classification", 4, name="iris")
    with TestClient(create_app(app_settings(), model=model)) as client:
        tensor = {"name": "x", "shape": [2, 4], "datatype": datatype, "data": data}
        reply = client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    if datatype == "BOOL":
        assert reply.status_code == 422 and "not numeric" in reply.json()["error"]
        return
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(
        np.reshape(reply.json()["outputs"][0]["data"], (2, 3)), iris_pipeline.predict_proba(rows)
    )


# --- bad input: 422 naming the row and the column; the server keeps answering -------------

GOOD = {"age": 31, "income": 42_000.0, "city": "Paris", "member": True}

BAD_BODIES = [
    ({"instances": [GOOD, {**GOOD, "age": "31"}]}, "row 1, column 'age': expected an integer (INT64), got \"31\""),
    ({"instances": [{**GOOD, "city": 5}]}, "row 0, column 'city': expected a string (BYTES), got 5"),
    ({"instances": [{**GOOD, "income": True}]}, "row 0, column 'income': expected a number (FP64), got true"),
    ({"instances": [{**GOOD, "member": 1}]}, "row 0, column 'member': expected true or false (BOOL), got 1"),
    ({"instances": [{**GOOD, "age": 2**70}]}, "row 0, column 'age': expected an integer in [-9223372036854775808, 9223372036854775807] (INT64), got 1180591620717411303424"),
    ({"instances": [{**GOOD, "age": 99999999999999999999}]}, "got 99999999999999999999"),
    ({"instances": [{**GOOD, "income": None}]}, "row 0, column 'income': expected a number (FP64), got null"),
    ({"instances": [GOOD, {k: v for k, v in GOOD.items() if k != "city"}]}, "row 1: missing column 'city'"),
    ({"instances": [{**GOOD, "zip": "75001"}]}, "row 0: unknown column 'zip'"),
    ({"instances": [GOOD, [31, 1.0, "Paris"]]}, "row 1: expected an object of columns"),
    ({"instances": [[31, 1.0, "Paris"]]}, "row 0: expected 4 values"),
    ({"instances": []}, "empty batch"),
    ({"dataframe_split": {"columns": ["age", "income", "city"], "data": [[1, 2.0, "x"]]}}, "missing column 'member'"),
    ({"dataframe_split": {"columns": [*GOOD, "zip"], "data": [[1, 2.0, "x", True, "y"]]}}, "unknown column 'zip'"),
    ({"dataframe_records": "nope"}, "expected a list of records"),
    ({"instances": ["Paris"]}, "row 0: expected an object of columns"),
]  # fmt: skip

BAD_TENSORS = [
    ([{"name": "age", "shape": [1], "datatype": "INT64", "data": [1]}], "missing input 'income'"),
    ([{"name": n, "shape": [2 if n == "city" else 1], "datatype": "BYTES" if n == "city" else "FP64",
       "data": ["a", "b"] if n == "city" else [1]} for n in GOOD], "ragged inputs"),
    ([{"name": n, "shape": [1], "datatype": "FP64", "data": [1]} for n in [*GOOD, "zip"]], "unknown input 'zip'"),
    ([{"name": n, "shape": [1], "datatype": "FP64", "data": [1.5]} for n in GOOD], "row 0, column 'age': expected an integer"),
    ([{"name": n, "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]} for n in GOOD], "expected [rows] or [rows, 1]"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_named_rows_are_422_naming_row_and_column(
    mixed: TestClient, body: dict[str, Any], message: str
) -> None:
    reply = mixed.post("/predict", json=body)
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["error"]
    assert mixed.post("/predict", json={"instances": [GOOD]}).status_code == 200


@pytest.mark.parametrize(("tensors", "message"), BAD_TENSORS)
def test_bad_v2_columns_are_422(mixed: TestClient, tensors: list[Any], message: str) -> None:
    reply = mixed.post("/v2/models/people/infer", json={"inputs": tensors})
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": []}, "empty batch"),
        ({"instances": ["fine", 3]}, "row 1, column 'review': expected a string (BYTES), got 3"),
        ({"instances": [{"text": "x"}]}, "row 0: missing column 'review'"),
    ],
)
def test_bad_text_requests_are_422(text: TestClient, body: dict[str, Any], message: str) -> None:
    reply = text.post("/predict", json=body)
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["error"]
