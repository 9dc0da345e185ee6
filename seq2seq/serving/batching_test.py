"""BatchingPredictor: concurrent requests are merged, each gets its own rows back, and
limits and failures reach the right callers."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest

from seq2seq.serving.batching import BatchingPredictor, Predictor
from seq2seq.serving.config import BatchingOptions
from seq2seq.serving.servables import ServingError


class Doubler:
    """A stand-in servable: y = 2x, recording the batch size of every call."""

    def __init__(self, fail: bool = False, seconds: float = 0.0):
        self.batches: list[int] = []
        self.fail = fail
        self.seconds = seconds
        self._lock = threading.Lock()

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.batches.append(len(inputs["x"]))
        time.sleep(self.seconds)
        if self.fail:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad batch")
        return {"y": inputs["x"] * 2}


def submit_all(predictor, servable, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Submits every array from its own thread at once; the answers in order."""
    with concurrent.futures.ThreadPoolExecutor(len(arrays)) as pool:
        futures = list(pool.map(lambda a: predictor.submit(servable, "", {"x": a}), arrays))
    return [future.result(timeout=30)["y"] for future in futures]


def test_concurrent_requests_are_merged_and_answered_row_for_row():
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1)
    predictor, servable = BatchingPredictor(options), Doubler(seconds=0.01)
    arrays = [np.full((1 + index % 3, 2), index, dtype=np.float32) for index in range(20)]
    answers = submit_all(predictor, servable, arrays)
    predictor.close()
    for array, answer in zip(arrays, answers, strict=True):
        np.testing.assert_array_equal(answer, array * 2)
    assert sum(servable.batches) == sum(len(array) for array in arrays)
    assert max(servable.batches) <= 8
    assert len(servable.batches) < len(arrays) / 2  # really merged


def test_different_widths_merge_only_with_padding():
    arrays = [np.ones((1, width), dtype=np.float32) for width in (2, 3, 2, 4)]
    for pad, most_calls in ((True, 1), (False, 4)):
        options = BatchingOptions(
            max_batch_size=8, batch_timeout_micros=300_000, pad_variable_length_inputs=pad
        )
        predictor, servable = BatchingPredictor(options), Doubler()
        answers = submit_all(predictor, servable, arrays)
        predictor.close()
        assert len(servable.batches) <= most_calls
        for array, answer in zip(arrays, answers, strict=True):
            # Padded answers are as wide as the batch; the request's columns are its own.
            np.testing.assert_array_equal(answer[:, : array.shape[1]], array * 2)


def test_limits_and_failures():
    options = BatchingOptions(max_batch_size=4, batch_timeout_micros=1000)
    predictor = BatchingPredictor(options)
    with pytest.raises(ServingError, match="larger than maximum batch size 4"):
        predictor.submit(Doubler(), "", {"x": np.ones((5, 1))})
    failing = predictor.submit(Doubler(fail=True), "", {"x": np.ones((2, 1))})
    with pytest.raises(ServingError, match="bad batch"):
        failing.result(timeout=30)
    predictor.close()
    with pytest.raises(ServingError, match="shutting down"):
        predictor.submit(Doubler(), "", {"x": np.ones((1, 1))})


def test_unbatched_predictor_runs_each_request():
    predictor, servable = Predictor(threads=2), Doubler()
    answers = submit_all(predictor, servable, [np.ones((3, 1)), np.zeros((1, 1))])
    predictor.close()
    assert sorted(servable.batches) == [1, 3]
    np.testing.assert_array_equal(answers[0], np.full((3, 1), 2.0))


def test_requests_given_up_before_their_batch_runs_cost_nothing():
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=300_000)
    predictor, servable = BatchingPredictor(options), Doubler()
    abandoned = predictor.submit(servable, "", {"x": np.ones((3, 1))})
    assert abandoned.cancel()
    kept = predictor.submit(servable, "", {"x": np.ones((2, 1))})
    np.testing.assert_array_equal(kept.result(timeout=30)["y"], np.full((2, 1), 2.0))
    predictor.close()
    assert servable.batches == [2]
