"""One column's values against its datatype, and the exact per-row keys of a table."""

import numpy as np
import pytest

from model_deployment_app.codecs.columns import from_array, to_column
from model_deployment_app.errors import InvalidInput
from model_deployment_app.inputs import Table, concat, row_keys
from model_deployment_app.schema import Column


@pytest.mark.parametrize(
    ("datatype", "values", "message"),
    [
        (
            "INT32",
            [1, 2**40],
            "row 1, column 'c': expected an integer in [-2147483648, 2147483647]",
        ),
        ("UINT8", [3, -1], "row 1, column 'c': expected an integer in [0, 255] (UINT8), got -1"),
        ("FP32", [1.0, 1e39], "row 1, column 'c': expected a number within ±3.403e+38 (FP32)"),
        ("FP64", [1.0, float("nan")], "row 1, column 'c': expected a finite number (FP64)"),
        ("FP64", [1.0, "2"], "row 1, column 'c': expected a number (FP64), got \"2\""),
        ("BOOL", [True, 0], "row 1, column 'c': expected true or false (BOOL), got 0"),
        ("BYTES", ["a", b"b"], "row 1, column 'c': expected a string (BYTES)"),
    ],
)
def test_values_out_of_their_datatype_are_refused(
    datatype: str, values: list[object], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        to_column(values, Column("c", datatype))
    assert message in refused.value.message


def test_values_become_the_columns_dtype() -> None:
    assert to_column([1, 2], Column("c", "FP32")).dtype == np.float32
    assert to_column([1, 2], Column("c", "INT16")).dtype == np.int16
    assert to_column(["é", ""], Column("c", "BYTES")).tolist() == ["é", ""]


def test_typed_arrays_need_a_compatible_kind() -> None:
    assert from_array(np.array([1, 2], np.int8), Column("c", "FP64")).dtype == np.float64
    assert from_array(np.array([b"caf\xc3\xa9"], object), Column("c", "BYTES")).tolist() == ["café"]
    with pytest.raises(InvalidInput, match="expected an integer"):
        from_array(np.array([1.5]), Column("c", "INT64"))
    with pytest.raises(InvalidInput, match="UTF-8"):
        from_array(np.array([b"\xff"], object), Column("c", "BYTES"))
    with pytest.raises(InvalidInput, match=r"in \[0, 255\]"):
        from_array(np.array([256], np.int64), Column("c", "UINT8"))


def test_row_keys_tell_mixed_rows_apart_exactly() -> None:
    def table(a: list[str], b: list[str], n: list[int]) -> Table:
        return Table({"a": np.array(a, object), "b": np.array(b, object), "n": np.array(n)})

    rows = concat([table(["ab", "a"], ["c", "bc"], [1, 1]), table(["1"], [""], [1])])
    keys = row_keys(rows, b"p:")
    assert len(rows) == 3 and len(set(keys)) == 3
    assert all(k.startswith(b"p:") for k in keys)
    assert row_keys(rows[[0]], b"p:") == keys[:1]
    assert row_keys(table(["ab"], ["c"], [1]), b"p:") == keys[:1]
    assert row_keys(table(["ab"], ["c"], [2]), b"p:") != keys[:1]


def test_long_rows_are_keyed_by_a_digest() -> None:
    wide = np.random.default_rng(0).normal(size=(3, 1000))
    keys = row_keys(wide, b"p:")
    assert len(set(keys)) == 3 and all(len(k) == len(b"p:") + 17 for k in keys)
    assert row_keys(wide[1:2], b"p:") == keys[1:2]
    narrow = row_keys(wide[:, :4], b"p:")
    assert narrow[0] == b"p:r" + wide[0, :4].tobytes()
