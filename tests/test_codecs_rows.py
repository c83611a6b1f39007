import numpy as np
import pytest

from model_deployment_app.codecs.rows import to_rows
from model_deployment_app.errors import InvalidInput, PayloadTooLarge


def test_rows_become_one_float64_array() -> None:
    rows = to_rows([[1, 2.5, 3], [4, 5, 6e-3]], width=3, max_rows=10)
    assert rows.dtype == np.float64
    assert rows.shape == (2, 3)
    assert rows[1, 2] == 6e-3


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "empty batch"),
        ({"a": 1}, "expected a list of rows"),
        ([[1, 2, 3], [1, 2]], "row 1: expected 3 features (inputSize), got 2"),
        ([[1, 2, 3, 4]], "row 0: expected 3 features (inputSize), got 4"),
        ([[1, 2, 3], [1, "x", 3]], 'row 1, feature 1: expected a number, got "x"'),
        ([[1, 2, "3"]], 'row 0, feature 2: expected a number, got "3"'),
        ([[1, 2, None]], "row 0, feature 2: expected a number, got null"),
        ([[True, False, True]], "row 0, feature 0: expected a number, got true"),
        ([[1, 2, 3], [float("nan"), 2, 3]], "row 1, feature 0: expected a finite number"),
        ([[1, float("inf"), 3]], "row 0, feature 1: expected a finite number"),
        ([[1, 2, 10**400]], "row 0, feature 2: expected a finite number"),
        ([1, 2, 3], "row 0: expected a list of 3 numbers, got int"),
    ],
)
def test_bad_rows_are_422_naming_the_row(rows: object, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        to_rows(rows, width=3, max_rows=10)
    assert message in refused.value.message
    assert refused.value.status_code == 422


def test_too_many_rows_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        to_rows([[1.0]] * 11, width=1, max_rows=10)


@pytest.mark.parametrize("count", [1, 40])  # 3 and 120 values: both ways of looking
def test_a_bool_among_floats_is_refused_in_small_and_large_batches(count: int) -> None:
    rows: list[list[object]] = [[0.5, 1.5, 2.5] for _ in range(count)]
    rows[-1][1] = True
    with pytest.raises(InvalidInput) as refused:
        to_rows(rows, width=3, max_rows=100)
    assert f"row {count - 1}, feature 1: expected a number, got true" in refused.value.message
