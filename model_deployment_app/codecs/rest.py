"""Which form a `POST /predict` body takes, and the codec that reads it.

| body                                              | model                    |
|---------------------------------------------------|--------------------------|
| `{"instances": [[1, 2], ...]}` or `[[1, 2], ...]` | any: values in order     |
| `{"instances": [{"age": 31, ...}, ...]}`          | named inputs (records)   |
| `{"instances": ["great film", ...]}`              | one input (text)         |
| `{"text": ["great film", ...]}`                   | one text input           |
| `{"dataframe_split": {"columns", "data"}}`        | any (MLflow)             |
| `{"dataframe_records": [{...}, ...]}`             | named inputs (MLflow)    |
"""

from typing import Any

from model_deployment_app.codecs import tables
from model_deployment_app.codecs.rows import check_count, check_range, to_rows
from model_deployment_app.errors import InvalidInput
from model_deployment_app.inputs import ModelInput
from model_deployment_app.schema import InputSchema

_FORMS = '{"instances": [...]}, {"dataframe_split": {...}}, {"dataframe_records": [...]}'


def _split_rows(split: Any, schema: InputSchema, max_rows: int) -> ModelInput:
    """`dataframe_split` for a model of `inputSize` numbers: the names are not known, the
    count of columns must match."""
    columns = split.get("columns") if isinstance(split, dict) else None
    if not isinstance(columns, list) or len(columns) != schema.width:
        raise InvalidInput(
            f'dataframe_split: expected {{"columns": [...], "data": [[...]]}} with '
            f"{schema.width} columns (inputSize)"
        )
    return check_range(to_rows(split.get("data"), schema.width, max_rows), schema.value_limit)


def _named_only(schema: InputSchema) -> InvalidInput:
    return InvalidInput(
        f"this model takes rows of {schema.width} numbers (inputSize) and has no named "
        "inputs: send lists of numbers, or declare `inputs` in its config"
    )


def decode_predict(payload: Any, schema: InputSchema, max_rows: int) -> ModelInput:
    """The rows of a `/predict` body, for `schema`."""
    if isinstance(payload, dict):
        if "instances" in payload:
            instances = payload["instances"]
        elif "text" in payload and schema.layout == "text":  # the DistilBERT API's body
            return tables.from_values(payload["text"], schema, max_rows)
        elif "dataframe_split" in payload:
            if schema.layout == "tensor":
                return _split_rows(payload["dataframe_split"], schema, max_rows)
            return tables.from_split(payload["dataframe_split"], schema, max_rows)
        elif "dataframe_records" in payload:
            if schema.layout == "tensor":
                raise _named_only(schema)
            return tables.from_records(payload["dataframe_records"], schema, max_rows)
        else:
            raise InvalidInput(f"expected one of {_FORMS}, or a JSON array of rows")
    else:
        instances = payload
    if schema.layout == "tensor":
        if isinstance(instances, list) and instances and isinstance(instances[0], dict):
            raise _named_only(schema)
        rows = to_rows(instances, schema.width, max_rows)
        return check_range(rows, schema.value_limit)
    check_count(instances, max_rows)
    first = instances[0]
    if isinstance(first, dict):
        return tables.from_records(instances, schema, max_rows)
    if isinstance(first, list):
        return tables.from_rows(instances, schema, max_rows)
    return tables.from_values(instances, schema, max_rows)
