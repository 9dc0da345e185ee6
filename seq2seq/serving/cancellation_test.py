"""A client that hangs up or cancels costs no model call: REST handlers are cancelled
with their connection and gRPC calls with their RPC, and the queued call with them;
a client that waits gets its answer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
import time
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from seq2seq.serving.grpc_service import PredictionService
from seq2seq.serving.rest import RestApi, start_rest


class Echo:
    """A stand-in servable with one string input and output."""

    name = "echo"
    version = 1

    def signature_def(self, signature_name):
        return SimpleNamespace(inputs={"text": None})

    def check_inputs(self, signature_name, values):
        return {name: np.asarray(value, object) for name, value in values.items()}


class Manager:
    def servable(self, name, version=None, label=None):
        return Echo()


class Held:
    """A predictor whose calls wait until the test answers them."""

    def __init__(self):
        self.futures: list[concurrent.futures.Future] = []

    def submit(self, servable, signature_name, inputs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.futures.append(future)
        return future

    def wait_for(self, count: int) -> concurrent.futures.Future:
        deadline = time.monotonic() + 10
        while len(self.futures) < count:
            assert time.monotonic() < deadline, "the request never reached the predictor"
            time.sleep(0.01)
        return self.futures[count - 1]


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def rest():
    """`seq2seq serve`'s REST API over a `Held` predictor, on its own event loop."""
    predictor = Held()
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = RestApi(Manager(), predictor, max_request_bytes=1 << 20)
    runner = loop.run_until_complete(start_rest(api, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port, predictor
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def post(port: int) -> socket.socket:
    body = json.dumps({"instances": ["hello"]}).encode()
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        b"POST /v1/models/echo:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return connection


def test_rest_client_that_hangs_up_cancels_its_call(rest):
    port, predictor = rest
    post(port).close()
    future = predictor.wait_for(1)
    assert wait_until(future.cancelled), "the abandoned call was left to run"

    connection = post(port)  # one that waits is answered
    predictor.wait_for(2).set_result({"text": np.array([b"HELLO"], object)})
    connection.settimeout(10)
    answer = connection.recv(65536).decode()
    connection.close()
    assert answer.startswith("HTTP/1.1 200") and '"predictions": ["HELLO"]' in answer


class Context:
    """The parts of `grpc.ServicerContext` that Predict uses; `end()` is the RPC ending.
    As in grpc, a callback added after the end is refused (False) and never called."""

    def __init__(self):
        self.callbacks = []
        self.code = None
        self.ended = False

    def add_callback(self, callback):
        if self.ended:
            return False
        self.callbacks.append(callback)
        return True

    def time_remaining(self):
        return None

    def abort(self, code, details):
        self.code = code
        raise RuntimeError(details)  # grpc's abort raises too

    def end(self):
        self.ended = True
        for callback in self.callbacks:
            callback()


def predict_in_thread(service, context):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "echo"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"hello"]))
    pool = concurrent.futures.ThreadPoolExecutor(1)
    return pool.submit(service.Predict, request, context)


def test_grpc_cancelled_rpc_cancels_its_call():
    predictor = Held()
    service = PredictionService(Manager(), predictor)
    context = Context()
    answer = predict_in_thread(service, context)
    future = predictor.wait_for(1)
    context.end()  # the client cancelled (or its connection dropped), maybe before
    # Predict added its callback: the call is cancelled either way
    assert wait_until(future.cancelled), "the abandoned call was left to run"
    with pytest.raises(RuntimeError, match="Cancelled"):
        answer.result(10)
    assert context.code == grpc.StatusCode.CANCELLED

    context = Context()
    answer = predict_in_thread(service, context)
    predictor.wait_for(2).set_result({"text": np.array([b"HELLO"], object)})
    response = answer.result(10)
    context.end()  # after the answer: nothing to cancel
    assert tf.make_ndarray(response.outputs["text"]).tolist() == [b"HELLO"]


def test_grpc_rpc_that_ended_before_its_call_was_queued_cancels_it():
    predictor = Held()
    service = PredictionService(Manager(), predictor)
    context = Context()
    context.end()  # gone before Predict could add its callback
    answer = predict_in_thread(service, context)
    future = predictor.wait_for(1)
    try:
        with pytest.raises(RuntimeError, match="Cancelled"):
            answer.result(10)
    finally:
        future.cancel()  # never leave the worker thread waiting
    assert context.code == grpc.StatusCode.CANCELLED
