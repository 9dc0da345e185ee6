"""`seq2seq serve` and `seq2seq.client`: every REST path and gRPC method against TF
Serving's documented formats, the clients and `translate --server` against in-process
decoding, version labels, and errors that never take the server down."""

from __future__ import annotations

import base64
import concurrent.futures
import shutil

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from conftest import run_seq2seq
from seq2seq.client import GrpcClient, RestClient, ServingClientError, connect
from seq2seq.inference import SavedModelTranslator, ServerTranslator
from serving_helpers import serving

SENTENCES = ["the red cat sees three dogs .", "the white horse sees five birds .", "le chat"]
NAME = "translate-en-fr"


@pytest.fixture(scope="module")
def models(tiny_export, tmp_path_factory):
    """A base path with version 1 and a model config that serves it twice: as `NAME`
    (label `stable` -> 1) and as `copy`."""
    root = tmp_path_factory.mktemp("served")
    base = root / NAME
    shutil.copytree(tiny_export, base)
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "{NAME}" base_path: "{base}" model_platform: "tensorflow"\n'
        '           version_labels { key: "stable" value: 1 } }\n'
        f'  config {{ name: "copy" base_path: "{base}" }}\n'
        "}\n",
        encoding="utf-8",
    )
    return config, base


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    config, _ = models
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    with serving("--model_config_file", str(config), log=log, ready_model=NAME) as running:
        yield running
    assert running.process.returncode == 0, running.log_text()[-3000:]  # a clean stop


@pytest.fixture(scope="module")
def local(models):
    return SavedModelTranslator.load(models[1])


# --- REST, as TF Serving documents it ------------------------------------------------


def test_rest_status_and_labels(server):
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    for suffix in ("", "/versions/1", "/labels/stable"):
        answer = requests.get(server.rest(NAME) + suffix, timeout=30)
        assert answer.status_code == 200 and answer.json() == expected
        assert answer.headers["Content-Type"].startswith("application/json")


def test_rest_metadata(server):
    answer = requests.get(server.rest(NAME) + "/metadata", timeout=30).json()
    assert answer["model_spec"] == {"name": NAME, "version": "1", "signature_name": ""}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "greedy", "beam_2", "align"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["text"]["dtype"] == "DT_STRING"
    assert {name: output["dtype"] for name, output in default["outputs"].items()} == {
        "text": "DT_STRING",
        "score": "DT_FLOAT",
    }


def test_rest_predict_rows_and_columns_equal_local_decoding(server, local):
    rows = requests.post(
        server.rest(NAME) + ":predict",
        json={"signature_name": "greedy", "instances": [{"text": text} for text in SENTENCES]},
        timeout=60,
    ).json()
    assert set(rows) == {"predictions"} and len(rows["predictions"]) == len(SENTENCES)
    assert all(set(row) == {"text", "score"} for row in rows["predictions"])
    assert [row["text"] for row in rows["predictions"]] == local.translate(SENTENCES, 1)
    assert all(isinstance(row["score"], float) for row in rows["predictions"])

    # One input may go bare; strings may come as {"b64": ...}; columns give columns.
    columns = requests.post(
        server.rest(NAME) + "/versions/1:predict",
        json={"inputs": [{"b64": base64.b64encode(text.encode()).decode()} for text in SENTENCES]},
        timeout=60,
    ).json()
    assert set(columns) == {"outputs"} and set(columns["outputs"]) == {"text", "score"}
    assert columns["outputs"]["text"] == local.translate(SENTENCES)  # serving_default


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/v1/models/nope", None, 404, "nope"),
        ("GET", f"/v1/models/{NAME}/versions/7", None, 404, "7"),
        ("GET", f"/v1/models/{NAME}/labels/canary", None, 404, "canary"),
        ("POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404, "nope"),
        ("POST", f"/v1/models/{NAME}/versions/9:predict", {"instances": ["a"]}, 404, "9"),
        ("POST", f"/v1/models/{NAME}:predict", b"{not json", 400, "JSON"),
        ("POST", f"/v1/models/{NAME}:predict", {"instance": ["a"]}, 400, "instances"),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": []}, 400, "instances"),
        ("POST", f"/v1/models/{NAME}:predict", {"instances": [1, 2]}, 400, "string"),
        ("POST", f"/v1/models/{NAME}:predict", {"inputs": {"txt": ["a"]}}, 400, "txt"),
        ("POST", f"/v1/models/{NAME}:predict", {"inputs": [["a"]]}, 400, "shape"),
        ("POST", f"/v1/models/{NAME}:predict", {"inputs": [{"b64": "%%"}]}, 400, "base64"),
        ("POST", f"/v1/models/{NAME}:predict", {"signature_name": "x", "inputs": ["a"]}, 400, "x"),
        ("POST", f"/v1/models/{NAME}:classify", {"examples": []}, 400, "classif"),
        ("POST", f"/v1/models/{NAME}", {"inputs": ["a"]}, 400, "Malformed"),
        ("GET", "/elsewhere", None, 404, "elsewhere"),
    ],
)
def test_rest_errors_are_tf_serving_json(server, method, path, body, status, words):
    url = f"http://127.0.0.1:{server.rest_port}{path}"
    data = body if isinstance(body, bytes) else None
    answer = requests.request(method, url, json=None if data else body, data=data, timeout=30)
    assert answer.status_code == status
    assert list(answer.json()) == ["error"] and words in answer.json()["error"]


# --- gRPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as opened:
        yield opened


def test_grpc_predict_metadata_status(channel, local):
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = NAME
    request.model_spec.version_label = "stable"
    request.model_spec.signature_name = "beam_2"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(SENTENCES))
    request.output_filter.append("text")
    response = prediction.Predict(request, timeout=60)
    assert response.model_spec.name == NAME and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "beam_2"
    assert list(response.outputs) == ["text"]  # the filter holds
    texts = [text.decode() for text in tf.make_ndarray(response.outputs["text"])]
    assert texts == local.translate(SENTENCES, 2)

    metadata = prediction.GetModelMetadata(
        get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": NAME}, metadata_field=["signature_def"]
        ),
        timeout=30,
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    assert (
        signatures.signature_def["serving_default"].inputs["text"].dtype
        == tf.string.as_datatype_enum
    )

    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "copy"}), timeout=30
    )
    (version,) = status.model_version_status
    assert (
        version.version == 1 and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    )
    assert version.status.error_code == 0


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (
            lambda r: r.model_spec.SetInParent() or setattr(r.model_spec, "name", "nope"),
            "NOT_FOUND",
        ),
        (lambda r: setattr(r.model_spec, "signature_name", "x"), "INVALID_ARGUMENT"),
        (lambda r: r.inputs["text"].CopyFrom(tf.make_tensor_proto([1.0])), "INVALID_ARGUMENT"),
        (lambda r: r.inputs["other"].CopyFrom(tf.make_tensor_proto(["a"])), "INVALID_ARGUMENT"),
        (lambda r: r.output_filter.append("nope"), "INVALID_ARGUMENT"),
    ],
)
def test_grpc_errors(channel, build, code):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = NAME
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["the red cat ."]))
    build(request)
    with pytest.raises(grpc.RpcError) as raised:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert raised.value.code().name == code


# --- the clients and translate --server ---------------------------------------------------


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_clients_translate_like_the_local_model(server, local, kind):
    url = server.rest(NAME) if kind == "rest" else server.grpc(NAME)
    client = connect(url)
    assert isinstance(client, RestClient if kind == "rest" else GrpcClient)
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    outputs = client.predict({"text": SENTENCES}, "greedy")
    assert outputs["text"].dtype == object and outputs["score"].dtype == np.float32
    assert [text.decode() for text in outputs["text"]] == local.translate(SENTENCES, 1)

    # Many inputs go as several requests (batch_size sentences each).
    remote = ServerTranslator(client, batch_size=2)
    many = SENTENCES * 3 + ["", "  "]
    assert remote.translate(many, beam_size=3) == local.translate(many, beam_size=3)
    remote_n_best, local_n_best = remote.n_best(many, 3), local.n_best(many, 3)
    assert [[text for text, _ in row] for row in remote_n_best] == [
        [text for text, _ in row] for row in local_n_best
    ]
    np.testing.assert_allclose(
        [score for row in remote_n_best for _, score in row],
        [score for row in local_n_best for _, score in row],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="beam size 6"):
        remote.signature_name(6)
    with pytest.raises(ServingClientError, match="nope") as raised:
        connect(url.replace(NAME, "nope")).predict({"text": ["a"]})
    assert raised.value.code in (404, "NOT_FOUND")


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_translate_cli_through_the_server(server, local, kind):
    url = server.rest(NAME) if kind == "rest" else server.grpc(NAME)
    result = run_seq2seq(
        "translate", "--server", url, "--beam-size", "1", input="\n".join(SENTENCES) + "\n\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n") == [*local.translate(SENTENCES, 1), "", ""]


def test_clients_retry_then_say_which_endpoint_failed(unused_url="grpc://127.0.0.1:9/x"):
    for url in (unused_url, "http://127.0.0.1:9/v1/models/x"):
        with pytest.raises(ServingClientError, match="127.0.0.1:9"):
            connect(url, retries=1).status()
    with pytest.raises(ValueError, match="ftp://host"):
        connect("ftp://host/x")


def test_bad_requests_never_take_the_server_down(server):
    """Hammers the server with bad and good requests at once: good ones all succeed."""
    url = server.rest(NAME) + ":predict"
    bodies = [b"\xff\xfe", b"[" * 100000, b'{"instances": [' + b"1," * 1000 + b"1]}", b"{}"]

    def send(index: int) -> int:
        if index % 2:
            return requests.post(url, json={"instances": [SENTENCES[0]]}, timeout=60).status_code
        return requests.post(url, data=bodies[index // 2 % len(bodies)], timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(32)))
    assert codes[1::2] == [200] * 16
    assert set(codes[0::2]) == {400}
    assert server.process.poll() is None
