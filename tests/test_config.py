from pathlib import Path

import pytest

from model_deployment_app.config import (
    GcsSource,
    LocalSource,
    PoolConfig,
    load_config,
    parse_config,
    parse_served,
)
from model_deployment_app.errors import StartupError

GCS_CONFIG = {
    "name": "iris-classifier",
    "modelType": "joblib",
    "job": "classification",
    "model": {
        "method": "GCS",
        "projectName": "my-project",
        "bucketName": "my-bucket",
        "blobDir": "iris/model.joblib",
    },
    "inputSize": 4,
}


def with_changes(**changes: object) -> dict[str, object]:
    config = {**GCS_CONFIG, "model": dict(GCS_CONFIG["model"])}  # type: ignore[call-overload]
    config.update(changes)
    return config


def test_contract_example_parses_with_camel_case_keys() -> None:
    config = parse_config(GCS_CONFIG)
    assert isinstance(config.model, GcsSource)
    assert (config.model_type, config.job, config.input_size) == ("joblib", "classification", 4)
    assert config.model.bucket_name == "my-bucket"


def test_local_source_and_default_name() -> None:
    config = parse_config(
        {"modelType": "skops", "job": "regression", "inputSize": 10,
         "model": {"method": "LOCAL", "path": "/models/m.skops"}}
    )  # fmt: skip
    assert isinstance(config.model, LocalSource)
    assert config.name == "model"


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (with_changes(modelTyp="joblib"), "modelTyp: unknown key"),
        (with_changes(job="clustering"), "job:"),
        (with_changes(modelType="tensorflow"), "modelType: expected one of pkl, joblib"),
        (with_changes(inputSize=0), "inputSize:"),
        (with_changes(inputSize="four"), "inputSize:"),
        ({k: v for k, v in GCS_CONFIG.items() if k != "inputSize"}, "set exactly one of"),
        (with_changes(model={"method": "S3", "path": "x"}), "model:"),
        (with_changes(model={"method": "GCS", "projectName": "p", "blobDir": "b"}),
         "model.bucketName: Field required"),
        (with_changes(model={"method": "LOCAL", "path": "/m", "bucket": "x"}),
         "model.bucket: unknown key"),
        (with_changes(model={"method": "LOCAL", "path": "/m", "sha256": "abc"}), "model.sha256"),
        (with_changes(name="Not A DNS Name"), "name:"),
    ],
)  # fmt: skip
def test_bad_config_is_refused_in_one_line_naming_the_key(config: dict, named: str) -> None:
    with pytest.raises(StartupError) as refused:
        parse_config(config)
    message = str(refused.value)
    assert named in message
    assert "\n" not in message


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("modelType: pkl\njob: regression\ninputSize: 3\nmodel:\n  method: LOCAL\n"
                    "  path: /m.pkl\n")  # fmt: skip
    assert load_config(path).model_type == "pkl"


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"cannot read config .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("job: [unclosed\n")
    with pytest.raises(StartupError, match="not valid YAML") as refused:
        load_config(path)
    assert "\n" not in str(refused.value)


def test_a_list_instead_of_a_mapping_is_refused() -> None:
    with pytest.raises(StartupError, match="expected a mapping"):
        parse_config(["job", "regression"])


def test_named_inputs_replace_input_size() -> None:
    data = {k: v for k, v in GCS_CONFIG.items() if k != "inputSize"}
    config = parse_config({**data, "inputs": [{"name": "age", "datatype": "INT64"},
                                              {"name": "city", "datatype": "BYTES"}]})  # fmt: skip
    assert config.input_size is None
    assert [(i.name, i.datatype) for i in config.inputs or ()] == [
        ("age", "INT64"),
        ("city", "BYTES"),
    ]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "a", "datatype": "STRING"}], "inputs.0.datatype: Input should be 'BOOL'"),
        ([{"name": "a", "datatype": "FP64"}, {"name": "a", "datatype": "BYTES"}],
         "inputs: repeated column name(s) a"),
        ([], "inputs: Tuple should have at least 1 item"),
        ([{"name": "a"}], "inputs.0.datatype: Field required"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_naming_the_key(inputs: list, message: str) -> None:
    data = {k: v for k, v in GCS_CONFIG.items() if k != "inputSize"}
    with pytest.raises(StartupError) as refused:
        parse_config({**data, "inputs": inputs})
    assert message in str(refused.value)


def test_input_size_and_inputs_together_are_refused() -> None:
    with pytest.raises(StartupError, match="set exactly one of inputSize"):
        parse_config({**GCS_CONFIG, "inputs": [{"name": "a", "datatype": "FP64"}]})


def test_a_relative_path_is_read_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text(
        "modelType: joblib\njob: regression\ninputSize: 2\n"
        "model: {method: LOCAL, path: sub/m.joblib}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert load_config(config).model.path == str(folder / "sub" / "m.joblib")  # type: ignore[union-attr]


def test_examples_must_fit_the_input_form() -> None:
    base = {
        "modelType": "joblib",
        "job": "classification",
        "model": {"method": "LOCAL", "path": "m"},
    }
    assert parse_config({**base, "inputSize": 2, "examples": [[1, 2]]}).examples == ([1, 2],)
    with pytest.raises(StartupError, match=r"examples\[0\]: expected a list of 2 numbers"):
        parse_config({**base, "inputSize": 2, "examples": [[1, 2, 3]]})
    inputs = [{"name": "age", "datatype": "INT64"}, {"name": "city", "datatype": "BYTES"}]
    with pytest.raises(StartupError, match=r"examples\[1\]: expected a record of the inputs"):
        parse_config({**base, "inputs": inputs, "examples": [{"age": 1, "city": "x"}, [1, "x"]]})


def pool_of(*names: str) -> dict[str, object]:
    return {"models": [with_changes(name=name) for name in names]}


def test_a_config_of_models_is_a_pool_and_one_without_is_one_model() -> None:
    pool = parse_served(pool_of("paris", "lyon"))
    assert isinstance(pool, PoolConfig)
    assert [model.name for model in pool.models] == ["paris", "lyon"]
    assert parse_served(GCS_CONFIG).name == "iris-classifier"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (pool_of("paris", "lyon", "paris"), "repeated model name(s) paris"),
        (pool_of("paris", "metrics"), "metrics would hide the server's own routes"),
        (pool_of("paris", "v2"), "v2 would hide"),
        (pool_of("paris", "../etc"), "models.1.name"),
        (pool_of("Paris"), "models.0.name"),
        ({"models": []}, "models:"),
        ({"models": [with_changes(name="paris", modelTyp="joblib")]}, "models.0.modelTyp: unknown"),
        ({**pool_of("paris"), "budget": 3}, "budget: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_pool_is_refused_in_one_line_naming_the_model(config: dict, named: str) -> None:
    with pytest.raises(StartupError) as refused:
        parse_served(config)
    assert named in str(refused.value)
    assert "\n" not in str(refused.value)
