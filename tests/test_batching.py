"""Adaptive batching: merged model calls, and every caller gets exactly its own rows."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model_deployment_app.batching import Batcher


class RecordingModel:
    """Answers each row with a function of the row, and remembers every call's size."""

    def __init__(self, fail_on: float | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_on = fail_on
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, output: str, rows: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls.append((output, len(rows)))
        threading.Event().wait(self.delay)
        if self.fail_on is not None and (rows[:, 0] == self.fail_on).any():
            raise ValueError("the model rejects this batch")
        if output == "predict_proba":  # two columns per row
            return np.c_[rows.sum(axis=1), -rows.sum(axis=1)]
        return rows.sum(axis=1)  # one value per row


def run_requests(batcher: Batcher, requests: list[tuple[str, np.ndarray]]) -> list[object]:
    async def go() -> list[object]:
        try:
            return await asyncio.gather(
                *(batcher.predict(output, rows) for output, rows in requests),
                return_exceptions=True,
            )
        finally:
            await batcher.close()

    return asyncio.run(go())


def mixed_requests(count: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    outputs = ["predict", "predict_proba"]
    return [
        (outputs[i % 2], rng.normal(size=(int(rng.integers(1, 9)), 3)) + i * 100)
        for i in range(count)
    ]


def expected(output: str, rows: np.ndarray) -> np.ndarray:
    return RecordingModel()(output, rows)


def test_mixed_widths_and_outputs_each_get_their_own_rows() -> None:
    model = RecordingModel(delay=0.002)
    requests = mixed_requests(120)
    with ThreadPoolExecutor(1) as pool:
        answers = run_requests(Batcher(model, pool, max_rows=32), requests)
    for (output, rows), answer in zip(requests, answers, strict=True):
        assert isinstance(answer, np.ndarray)
        np.testing.assert_array_equal(answer, expected(output, rows))
    assert len(model.calls) < len(requests)  # concurrent requests were merged
    assert {output for output, _ in model.calls} == {"predict", "predict_proba"}


def test_a_batch_never_exceeds_max_rows_unless_one_request_does() -> None:
    model = RecordingModel(delay=0.002)
    requests = [("predict", np.ones((3, 3)) * i) for i in range(40)]
    requests.append(("predict", np.ones((50, 3))))
    with ThreadPoolExecutor(1) as pool:
        run_requests(Batcher(model, pool, max_rows=10), requests)
    sizes = [size for _, size in model.calls]
    assert 50 in sizes
    assert all(size <= 10 for size in sizes if size != 50)


def test_a_failing_model_call_fails_only_the_requests_in_it() -> None:
    model = RecordingModel(fail_on=-1.0)
    poisoned = ("predict", np.full((2, 3), -1.0))
    healthy = [("predict", np.full((1, 3), float(i))) for i in range(5)]

    async def go() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_rows=1)  # one request per call
            try:
                return await asyncio.gather(
                    *(batcher.predict(o, r) for o, r in [poisoned, *healthy]),
                    return_exceptions=True,
                )
            finally:
                await batcher.close()

    first, *rest = asyncio.run(go())
    assert isinstance(first, ValueError)
    for (_, rows), answer in zip(healthy, rest, strict=True):
        np.testing.assert_array_equal(answer, rows.sum(axis=1))


def test_a_poison_request_fails_alone_even_when_merged_with_others() -> None:
    model = RecordingModel(fail_on=-1.0, delay=0.002)
    requests = [("predict", np.full((1, 3), float(i))) for i in range(40)]
    poisoned = {7, 23}
    for index in poisoned:
        requests[index] = ("predict", np.full((2, 3), -1.0))
    with ThreadPoolExecutor(1) as pool:
        answers = run_requests(Batcher(model, pool, max_rows=64), requests)
    for index, ((_, rows), answer) in enumerate(zip(requests, answers, strict=True)):
        if index in poisoned:
            assert isinstance(answer, ValueError)
        else:
            np.testing.assert_array_equal(answer, rows.sum(axis=1))
    assert max(size for _, size in model.calls) > 2, "requests were merged before the split"


def test_max_delay_holds_a_batch_open_for_stragglers() -> None:
    model = RecordingModel()

    async def go() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_rows=100, max_delay_seconds=0.2)
            first = asyncio.create_task(batcher.predict("predict", np.ones((1, 3))))
            await asyncio.sleep(0.02)
            second = asyncio.create_task(batcher.predict("predict", np.ones((1, 3))))
            await asyncio.gather(first, second)
            await batcher.close()

    asyncio.run(go())
    assert model.calls == [("predict", 2)]


@pytest.mark.parametrize("max_rows", [1, 7, 256])
def test_answers_are_right_whatever_the_batch_limit(max_rows: int) -> None:
    requests = mixed_requests(60, seed=max_rows)
    with ThreadPoolExecutor(1) as pool:
        answers = run_requests(Batcher(RecordingModel(), pool, max_rows=max_rows), requests)
    for (output, rows), answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, expected(output, rows))


class ThreadRecordingModel(RecordingModel):
    """Also remembers which thread ran each call."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.threads: list[str] = []

    def __call__(self, output: str, rows: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().__call__(output, rows)


def sequential_requests(batcher: Batcher, sizes: list[int]) -> list[np.ndarray]:
    """One request at a time (so each is its own call), each answer awaited."""

    async def go() -> list[np.ndarray]:
        try:
            return [await batcher.predict("predict", np.ones((n, 3)) * n) for n in sizes]
        finally:
            await batcher.close()

    return asyncio.run(go())


def test_a_quick_model_runs_on_the_event_loop_once_measured() -> None:
    model = ThreadRecordingModel()
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        batcher = Batcher(model, pool, max_rows=64, inline_below_seconds=0.5)
        answers = sequential_requests(batcher, [1, 1, 2])
    assert model.threads[0].startswith("pool")  # never measured yet: the thread measures it
    assert model.threads[1:] == [threading.main_thread().name] * 2
    for n, answer in zip([1, 1, 2], answers, strict=True):
        np.testing.assert_array_equal(answer, np.full(n, 3.0 * n))


def test_a_slow_model_and_a_call_scaled_past_the_threshold_stay_in_the_thread() -> None:
    slow = ThreadRecordingModel(delay=0.02)
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        sequential_requests(Batcher(slow, pool, max_rows=64, inline_below_seconds=0.01), [1] * 3)
    assert all(name.startswith("pool") for name in slow.threads)

    quick = ThreadRecordingModel(delay=0.002)  # 2 ms a call: 2 rows inline, 20 rows not
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        batcher = Batcher(quick, pool, max_rows=64, inline_below_seconds=0.01)
        sequential_requests(batcher, [1, 1, 20])
    assert quick.threads[1] == threading.main_thread().name
    assert quick.threads[2].startswith("pool")


class StallingModel(ThreadRecordingModel):
    """Quick, except the calls whose numbers are in `stalls` (as a preempted call is)."""

    def __init__(self, stalls: set[int]) -> None:
        super().__init__()
        self.stalls = stalls

    def __call__(self, output: str, rows: np.ndarray) -> np.ndarray:
        self.delay = 0.05 if len(self.threads) in self.stalls else 0.0
        return super().__call__(output, rows)


def test_one_stalled_call_keeps_the_next_on_the_loop_two_in_a_row_do_not() -> None:
    model = StallingModel(stalls={2, 4, 5})
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        batcher = Batcher(model, pool, max_rows=64, inline_below_seconds=0.01)
        sequential_requests(batcher, [1] * 7)
    on_loop = [name == threading.main_thread().name for name in model.threads]
    # 0: measured in the thread; 3: one stall before it; 6: two stalls before it.
    assert on_loop == [False, True, True, True, True, True, False]


def test_without_a_threshold_every_call_runs_in_the_thread() -> None:
    model = ThreadRecordingModel()
    with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
        sequential_requests(Batcher(model, pool, max_rows=64), [1, 1, 1])
    assert all(name.startswith("pool") for name in model.threads)


def requests_a_turn_apart(batcher: Batcher, sizes: list[int]) -> list[np.ndarray]:
    """Request i reaches the batcher i event-loop turns after the first (as requests read
    from sockets in one poll do), with `sizes[i]` rows of value i."""

    async def arriving(turn: int, size: int) -> np.ndarray:
        for _ in range(turn):
            await asyncio.sleep(0)
        return await batcher.predict("predict", np.ones((size, 3)) * turn)

    async def go() -> list[np.ndarray]:
        try:
            return await asyncio.gather(*(arriving(t, n) for t, n in enumerate(sizes)))
        finally:
            await batcher.close()

    return asyncio.run(go())


def test_requests_that_become_ready_a_turn_apart_share_one_call() -> None:
    model = RecordingModel()
    with ThreadPoolExecutor(1) as pool:
        answers = requests_a_turn_apart(Batcher(model, pool, max_rows=64), [1] * 4)
    assert model.calls == [("predict", 4)]
    for turn, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, [3.0 * turn])


def test_gathering_stops_at_max_rows() -> None:
    model = RecordingModel()
    with ThreadPoolExecutor(1) as pool:
        requests_a_turn_apart(Batcher(model, pool, max_rows=4), [2] * 6)
    assert [size for _, size in model.calls] == [4, 4, 4]
