"""The input schema: declared in the config, checked against the model's own feature names."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from model_deployment_app.errors import StartupError
from model_deployment_app.inputs import Table
from tests.conftest import PEOPLE_INPUTS, TEXT_INPUTS, loaded


def test_columns_follow_the_models_order_whatever_the_configs(mixed_pipeline: Pipeline) -> None:
    model = loaded(mixed_pipeline, "classification", inputs=PEOPLE_INPUTS[::-1])
    assert model.schema.layout == "table"
    assert list(model.schema.names) == mixed_pipeline.feature_names_in_.tolist()


def test_inputs_that_differ_from_the_models_features_are_refused_naming_them(
    mixed_pipeline: Pipeline,
) -> None:
    inputs = [*PEOPLE_INPUTS[:3], {"name": "zip", "datatype": "BYTES"}]
    with pytest.raises(StartupError) as refused:
        loaded(mixed_pipeline, "classification", inputs=inputs)
    assert str(refused.value) == (
        "inputs do not match the model (Pipeline): the model needs member, missing from "
        "inputs; inputs has zip, unknown to the model"
    )


def test_a_text_pipeline_gets_a_one_dimensional_array_of_strings(text_pipeline: Pipeline) -> None:
    model = loaded(text_pipeline, "classification", inputs=TEXT_INPUTS)
    assert model.schema.layout == "text"
    given = model.schema.to_model(Table({"review": np.array(["great"], object)}))
    assert given.shape == (1,) and given[0] == "great"


def test_one_string_column_of_a_dataframe_model_stays_a_dataframe() -> None:
    frame = pd.DataFrame({"city": ["Paris", "Lyon", "Nice", "Paris"]})
    encoder = ColumnTransformer([("c", OneHotEncoder(), ["city"])])
    pipeline = make_pipeline(encoder, LogisticRegression()).fit(frame, [1, 0, 0, 1])
    model = loaded(pipeline, "classification", inputs=[{"name": "city", "datatype": "BYTES"}])
    assert model.schema.layout == "table"
    rows = Table({"city": np.array(["Lyon", "Paris"], object)})
    np.testing.assert_allclose(model.run("predict_proba", rows), pipeline.predict_proba(
        pd.DataFrame({"city": ["Lyon", "Paris"]})))  # fmt: skip


def test_a_model_that_refuses_placeholder_rows_is_still_served(people: tuple) -> None:
    """OneHotEncoder's default refuses unknown categories, "" among them: no warm-up then."""
    frame, y = people
    encoder = ColumnTransformer([("c", OneHotEncoder(), ["city"])], remainder="drop")
    pipeline = make_pipeline(encoder, LogisticRegression()).fit(frame, y)
    model = loaded(pipeline, "classification", inputs=PEOPLE_INPUTS)
    assert model.output_width == 3


def test_numbers_trained_as_a_dataframe_are_given_their_names(iris: tuple) -> None:
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    pipeline = make_pipeline(LogisticRegression(max_iter=500)).fit(frame, y)
    model = loaded(pipeline, "classification", 4)  # warnings are errors: none is raised
    np.testing.assert_allclose(
        model.run("predict_proba", X[:5]), pipeline.predict_proba(frame.iloc[:5])
    )
