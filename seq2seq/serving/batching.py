"""Running predictions: one model call per request, or requests merged into batches.

With `--enable_batching`, requests for the same signature of the same version that
arrive within `batch_timeout_micros` of each other are concatenated along their first
dimension (up to `max_batch_size` rows) and run as one call, as TF Serving's batching
session does; each request gets its own rows of the outputs back. A beam search costs
little more for 16 sentences than for one, so under load this multiplies throughput.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time

import grpc
import numpy as np

from seq2seq.serving.config import BatchingOptions
from seq2seq.serving.servables import Servable, ServingError


class Predictor:
    """Runs checked requests on `threads` worker threads, one model call per request.

    Args:
        threads: model calls that run at the same time.
    """

    def __init__(self, threads: int = 2):
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="predict")

    def submit(
        self, servable: Servable, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> concurrent.futures.Future:
        """Queues one call; its future gives the outputs or raises `ServingError`.

        Args:
            servable: the version to run.
            signature_name: the signature ("" for `serving_default`).
            inputs: what `Servable.check_inputs` returned.
        """
        return self._pool.submit(servable.run, signature_name, inputs)

    def close(self) -> None:
        """Lets running calls finish and stops the threads."""
        self._pool.shutdown(wait=True)


@dataclasses.dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: concurrent.futures.Future
    enqueued: float


class BatchingPredictor:
    """Merges concurrent requests into batches (see the module docstring); used like a
    `Predictor`.

    Args:
        options: the batching parameters.
    """

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: dict[tuple, collections.deque[_Task]] = {}
        self._servables: dict[tuple, tuple[Servable, str]] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{index}", daemon=True)
            for index in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, servable: Servable, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> concurrent.futures.Future:
        """Queues one request for the next batch of its signature (see `Predictor.submit`).

        Raises:
            ServingError: INVALID_ARGUMENT when the request has more rows than a batch,
                UNAVAILABLE when the queue is full.
        """
        rows = {array.shape[0] if array.ndim else -1 for array in inputs.values()}
        if len(rows) != 1 or -1 in rows:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Batching: every input needs the same first (batch) dimension",
            )
        (count,) = rows
        if count > self.options.max_batch_size:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Task size {count} is larger than maximum batch size "
                f"{self.options.max_batch_size}",
            )
        future: concurrent.futures.Future = concurrent.futures.Future()
        if count == 0:
            future.set_result(servable.run(signature_name, inputs))
            return future
        key = (id(servable), signature_name or "serving_default")
        with self._condition:
            if self._closed:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down")
            queue = self._queues.setdefault(key, collections.deque())
            limit = self.options.max_enqueued_batches * self.options.max_batch_size
            if sum(task.rows for task in queue) + count > limit:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue is full; retry later"
                )
            self._servables[key] = (servable, signature_name)
            queue.append(_Task(inputs, count, future, time.monotonic()))
            self._condition.notify()
        return future

    def close(self) -> None:
        """Runs what is queued, then stops the threads."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            with self._condition:
                batch = self._next_batch()
                if batch is None:
                    return
                key, tasks = batch
                servable, signature_name = self._servables[key]
            self._run(servable, signature_name, tasks)

    def _next_batch(self) -> tuple[tuple, list[_Task]] | None:
        """Waits (holding the condition) for a full batch or an expired timeout, and takes
        its tasks off the queue; None once closed and drained."""
        timeout = self.options.batch_timeout_micros / 1e6
        while True:
            now = time.monotonic()
            ready, wait = None, None
            for key, queue in self._queues.items():
                if not queue:
                    continue
                due = queue[0].enqueued + timeout
                full = sum(task.rows for task in queue) >= self.options.max_batch_size
                if full or due <= now or self._closed:
                    ready = key
                    break
                wait = due - now if wait is None else min(wait, due - now)
            if ready is not None:
                return ready, self._take(self._queues[ready])
            if self._closed:
                return None
            self._condition.wait(wait)

    def _take(self, queue: collections.deque[_Task]) -> list[_Task]:
        """The first tasks of `queue` that fit one batch (and, without padding, whose
        inputs have the first task's non-batch shapes)."""
        first = queue.popleft()
        tasks, rows = [first], first.rows
        shapes = {name: array.shape[1:] for name, array in first.inputs.items()}
        for task in list(queue):
            if rows + task.rows > self.options.max_batch_size:
                break
            same = all(task.inputs[name].shape[1:] == shape for name, shape in shapes.items())
            if not (same or self.options.pad_variable_length_inputs):
                break
            queue.popleft()
            tasks.append(task)
            rows += task.rows
        return tasks

    def _run(self, servable: Servable, signature_name: str, tasks: list[_Task]) -> None:
        # Requests whose callers gave up (deadline passed) cost nothing.
        tasks = [task for task in tasks if task.future.set_running_or_notify_cancel()]
        if not tasks:
            return
        try:
            merged = {
                name: _concatenate([task.inputs[name] for task in tasks])
                for name in tasks[0].inputs
            }
            outputs = servable.run(signature_name, merged)
        except BaseException as error:  # every waiting request hears of it
            for task in tasks:
                task.future.set_exception(error)
            return
        start = 0
        for task in tasks:
            task.future.set_result(
                {name: value[start : start + task.rows] for name, value in outputs.items()}
            )
            start += task.rows


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    """Joins arrays along the first dimension, padding the others to the largest size
    (zeros, or empty strings for string arrays).

    >>> _concatenate([np.ones((1, 2)), np.ones((2, 3))]).tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    shape = (
        np.max([array.shape[1:] for array in arrays], axis=0).astype(int)
        if arrays[0].ndim > 1
        else ()
    )
    padded = []
    for array in arrays:
        widths = [(0, 0)] + [
            (0, int(want) - have) for want, have in zip(shape, array.shape[1:], strict=True)
        ]
        fill = b"" if array.dtype == object else 0
        padded.append(
            np.pad(array, widths, constant_values=fill) if any(w for _, w in widths) else array
        )
    return np.concatenate(padded, axis=0)
