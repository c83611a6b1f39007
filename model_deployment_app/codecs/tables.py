"""Named inputs from JSON: records, MLflow's `dataframe_split`, rows in column order, and one
value per row (a text model's strings), each into a `Table` of the schema's columns."""

from typing import Any

from model_deployment_app.codecs.columns import to_column
from model_deployment_app.codecs.rows import check_count
from model_deployment_app.errors import InvalidInput
from model_deployment_app.inputs import Table
from model_deployment_app.schema import InputSchema


def _columns_of(schema: InputSchema) -> str:
    return ", ".join(schema.names)


def _record_problem(row: int, record: Any, schema: InputSchema) -> InvalidInput:
    if not isinstance(record, dict):
        return InvalidInput(
            f"row {row}: expected an object of columns ({_columns_of(schema)}), "
            f"got {type(record).__name__}"
        )
    for name in schema.names:
        if name not in record:
            return InvalidInput(f"row {row}: missing column {name!r}")
    unknown = next(name for name in record if name not in schema.names)
    return InvalidInput(
        f"row {row}: unknown column {unknown!r}; the model takes {_columns_of(schema)}"
    )


def from_records(records: Any, schema: InputSchema, max_rows: int) -> Table:
    """`[{"age": 31, "city": "Paris"}, ...]`: every record has exactly the model's columns."""
    check_count(records, max_rows, "records")
    expected = set(schema.names)
    for row, record in enumerate(records):
        if not isinstance(record, dict) or record.keys() != expected:
            raise _record_problem(row, record, schema)
    return Table({c.name: to_column([r[c.name] for r in records], c) for c in schema})


def from_rows(
    rows: Any, schema: InputSchema, max_rows: int, order: list[str] | None = None
) -> Table:
    """Rows of values in column order (`order`, default the schema's)."""
    check_count(rows, max_rows)
    order = order or list(schema.names)
    for row, values in enumerate(rows):
        if not isinstance(values, list):
            raise InvalidInput(
                f"row {row}: expected a list of {len(order)} values ({', '.join(order)}), "
                f"got {type(values).__name__}"
            )
        if len(values) != len(order):
            raise InvalidInput(
                f"row {row}: expected {len(order)} values ({', '.join(order)}), got {len(values)}"
            )
    position = {name: index for index, name in enumerate(order)}
    return Table({c.name: to_column([r[position[c.name]] for r in rows], c) for c in schema})


def from_split(split: Any, schema: InputSchema, max_rows: int) -> Table:
    """MLflow's `{"columns": [...], "data": [[...], ...]}` (an `index` is ignored)."""
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
        raise InvalidInput('dataframe_split: expected {"columns": [...], "data": [[...], ...]}')
    columns = split["columns"]
    missing = [n for n in schema.names if n not in columns]
    unknown = [n for n in columns if n not in schema.names]
    if missing or unknown or len(set(columns)) != len(columns):
        problem = (
            f"missing column {missing[0]!r}" if missing
            else f"unknown column {unknown[0]!r}" if unknown
            else "a column is named twice"
        )  # fmt: skip
        raise InvalidInput(f"dataframe_split: {problem}; the model takes {_columns_of(schema)}")
    return from_rows(split.get("data"), schema, max_rows, order=[str(c) for c in columns])


def from_values(values: Any, schema: InputSchema, max_rows: int) -> Table:
    """One value per row, for a model with one input: `["great film", "awful"]`."""
    check_count(values, max_rows, "values")
    if len(schema.columns) != 1:
        raise InvalidInput(
            f"row 0: expected an object of columns ({_columns_of(schema)}) "
            f"or a list of values in that order, got {type(values[0]).__name__}"
        )
    column = schema.columns[0]
    return Table({column.name: to_column(values, column)})
