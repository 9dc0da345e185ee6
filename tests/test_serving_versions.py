"""A new version appears while 8 clients keep sending requests (with batching on): no
request fails and answers switch to it; a version that fails to load leaves the old one
serving, and the status says why, as TF Serving does."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving_helpers import serving

NAME = "translate-en-fr"


def publish(source, base, version: int) -> None:
    """Puts a copy of `source` at base/version atomically, as `seq2seq export` does."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_hot_swap_under_load_and_a_broken_version(tiny_export, tmp_path):
    base = tmp_path / NAME
    base.mkdir()
    publish(tiny_export / "1", base, 1)
    batching = tmp_path / "batching.config"
    batching.write_text(
        "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 5000 }\n"
        "num_batch_threads { value: 2 }\n",
        encoding="utf-8",
    )
    flags = ["--model_name", NAME, "--model_base_path", str(base)]
    flags += ["--batching_parameters_file", str(batching)]
    with serving(*flags, log=tmp_path / "serve.log", ready_model=NAME) as server:
        status_url = server.rest(NAME)
        failures: list[str] = []
        versions: list[tuple[float, int]] = []  # (when the request was sent, version)
        stop = threading.Event()

        def grpc_client() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                while not stop.is_set():
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = NAME
                    request.model_spec.signature_name = "greedy"
                    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["the red cat ."]))
                    sent = time.monotonic()
                    try:
                        answer = stub.Predict(request, timeout=60)
                        versions.append((sent, answer.model_spec.version.value))
                    except grpc.RpcError as error:
                        failures.append(f"gRPC {error.code().name}: {error.details()}")

        def rest_client() -> None:
            while not stop.is_set():
                answer = requests.post(
                    status_url + ":predict", json={"instances": ["the blue dog ."]}, timeout=60
                )
                if answer.status_code != 200:
                    failures.append(f"REST {answer.status_code}: {answer.text}")

        clients = [threading.Thread(target=grpc_client) for _ in range(4)]
        clients += [threading.Thread(target=rest_client) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            wait_for(lambda: len(versions) >= 8)
            publish(tiny_export / "1", base, 2)

            def swapped() -> bool:
                states = requests.get(status_url, timeout=30).json()["model_version_status"]
                return [(s["version"], s["state"]) for s in states] == [
                    ("2", "AVAILABLE"),
                    ("1", "END"),
                ]

            wait_for(swapped)
            swapped_at = time.monotonic()
            wait_for(lambda: sum(sent > swapped_at for sent, _ in versions) >= 8)
        finally:
            stop.set()
            for client in clients:
                client.join()
        assert failures == []
        # Requests sent before the swap may finish on version 1 (they started there);
        # every request sent after it is answered by version 2.
        assert versions[0][1] == 1
        assert {version for sent, version in versions if sent > swapped_at} == {2}

        # A version that cannot load: the old one keeps serving; the status says why.
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        publish(broken, base, 3)

        def failed() -> bool:
            states = requests.get(status_url, timeout=30).json()["model_version_status"]
            return states[0]["version"] == "3" and states[0]["state"] == "END"

        wait_for(failed)
        (three, two, _) = requests.get(status_url, timeout=30).json()["model_version_status"]
        assert three["status"]["error_code"] == "UNKNOWN"
        assert str(base / "3") in three["status"]["error_message"]
        assert two == {
            "version": "2",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
        answer = requests.post(
            status_url + ":predict", json={"instances": ["the red cat ."]}, timeout=60
        )
        assert answer.status_code == 200
