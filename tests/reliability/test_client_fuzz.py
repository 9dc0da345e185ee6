"""Property tests of the client side: `seq2seq transcribe --server` (and the translator's
`--server`, which shares `seq2seq.client`) against a server that answers anything.

A fake TF Serving REST endpoint in this process serves a speech model's metadata and
answers each predict with what Hypothesis draws: any status, random bytes, any JSON,
and near misses of a real answer (outputs missing, of the wrong count, shape or type,
strings that are not base64 or not UTF-8, scores that are not numbers, one unnamed
output). Each call either returns one transcript per input or raises a one-line
`ServingClientError` naming the endpoint; malformed metadata makes `connect` a
one-line `ValueError`. Then `seq2seq transcribe --server` over such a server: one
stdout line and one stderr line per file, exit status 1, no traceback. A fake gRPC
PredictionService answers with malformed tensors (content that fits no shape, wrong
row counts, numbers for strings, outputs missing) and malformed metadata (no signature
map, another message or garbage bytes in its place, no `serving_default`): each is one
such error too.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import re
import threading

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_rest_fuzz import FUZZ, JSON, SCALARS, TEXTS

from audio.io import to_wav_bytes
from seq2seq.cli import main
from seq2seq.client import GrpcClient, RestClient, ServingClientError
from seq2seq.transcription import ServerTranscriber

NAME = "asr-en"
METADATA = {
    "model_spec": {"name": NAME, "signature_name": "", "version": "1"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {
                        "audio": {"dtype": "DT_FLOAT", "name": "audio:0"},
                        "audio_length": {"dtype": "DT_INT32", "name": "audio_length:0"},
                    },
                    "outputs": {
                        "text": {"dtype": "DT_STRING", "name": "text:0"},
                        "score": {"dtype": "DT_FLOAT", "name": "score:0"},
                    },
                    "method_name": "tensorflow/serving/predict",
                }
            }
        }
    },
}
SIGNALS = [np.zeros(8000, np.float32), np.full(4000, 0.1, np.float32)]  # one call, 2 rows


class FakeServing(http.server.ThreadingHTTPServer):
    """Answers metadata with `metadata` and every predict with `answer` (status, body)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.metadata: bytes = json.dumps(METADATA).encode()
        self.answer: tuple[int, bytes] = (200, b"{}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1/models/{NAME}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._send(200, self.server.metadata if self.path.endswith("/metadata") else b"{}")

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(*self.server.answer)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def fake():
    server = FakeServing()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def as_body(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


# --- strategies -------------------------------------------------------------------------

ITEMS = SCALARS | st.builds(lambda text: {"b64": text}, TEXTS) | st.lists(SCALARS, max_size=3)
NEAR_MISSES = st.fixed_dictionaries(
    {
        "outputs": st.fixed_dictionaries(
            {},
            optional={
                "text": st.lists(TEXTS | ITEMS, max_size=4) | ITEMS,
                "score": st.lists(st.floats() | ITEMS, max_size=4) | ITEMS,
            },
        )
        | st.lists(TEXTS, max_size=4)  # one output, unnamed
    }
)
BODIES = st.binary(max_size=200) | JSON | NEAR_MISSES
STATUSES = st.sampled_from([200, 200, 200, 400, 404, 413, 500, 503])
GOOD = {"outputs": {"text": ["one", "two"], "score": [-1.5, -2.0]}}


@FUZZ
@given(status=STATUSES, body=BODIES)
@example(status=200, body=GOOD)
@example(status=200, body={"outputs": {"text": ["one"], "score": [-1.0]}})
@example(status=200, body={"outputs": {"text": [{"b64": "%%%"}, "x"], "score": [0, 0]}})
@example(status=200, body={"outputs": {"text": ["\ud800", "x"], "score": [0, 0]}})
@example(status=200, body={"outputs": {"text": ["a", "b"], "score": ["x", 1]}})
@example(status=500, body={"error": "line one\nline two"})
@example(status=200, body=b"\x00not json")
def test_transcriber_answers_or_one_line_error(fake, status, body):
    fake.answer = (status, as_body(body))
    transcriber = ServerTranscriber(RestClient(fake.url, timeout=10, retries=0))
    try:
        transcripts = transcriber.transcribe(SIGNALS)
    except ServingClientError as error:
        message = str(error)
        assert message.startswith(fake.url) and "\n" not in message, message
        return
    assert len(transcripts) == 2 and all(isinstance(t.text, str) for t in transcripts)
    if body == GOOD:
        assert sorted(t.text for t in transcripts) == ["one", "two"]  # rows by length


METADATA_MISSES = st.builds(
    lambda signatures: {"metadata": {"signature_def": {"signature_def": signatures}}},
    JSON | st.dictionaries(st.sampled_from(["serving_default", "greedy"]), JSON, max_size=2),
)


@FUZZ
@given(body=st.binary(max_size=100) | JSON | METADATA_MISSES)
@example(body=METADATA)
def test_connect_to_a_misbehaving_server_is_a_one_line_error(fake, body):
    fake.metadata = as_body(body)
    try:
        transcriber = ServerTranscriber.connect(fake.url)
    except ValueError as error:
        assert str(error).startswith(fake.url) and "\n" not in str(error), str(error)
    else:
        assert transcriber.sample_rate == 16000
    finally:
        fake.metadata = as_body(METADATA)


def test_transcribe_cli_through_a_misbehaving_server(fake, tmp_path, capsys):
    names = []
    for index, signal in enumerate(SIGNALS):
        names.append(str(tmp_path / f"{index}.wav"))
        (tmp_path / f"{index}.wav").write_bytes(to_wav_bytes(signal))
    fake.answer = (200, as_body({"outputs": {"text": ["only one"], "score": [0.0]}}))
    assert main(["transcribe", "--server", fake.url, *names]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["", ""]
    errors = captured.err.splitlines()
    assert len(errors) == 2 and "Traceback" not in captured.err
    for name, line in zip(names, errors, strict=True):
        assert line.startswith(f"seq2seq transcribe: {name}: ") and "malformed answer" in line
    fake.answer = (200, as_body(GOOD))
    assert main(["transcribe", "--server", fake.url, *names]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["one", "two"]


# --- gRPC ---------------------------------------------------------------------------------


def tensor(values, dtype, shape):
    """A TensorProto whose content need not fit its shape."""
    import tensorflow as tf

    proto = tf.make_tensor_proto(np.asarray(values, dtype))
    del proto.tensor_shape.dim[:]
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


GRPC_ANSWERS = {  # name -> outputs of the PredictResponse
    "good": {"text": ([b"a", b"b"], object, [2]), "score": ([0.0, 1.0], np.float32, [2])},
    "content fits no shape": {"text": ([b"a"], object, [7]), "score": ([0.0], np.float32, [3])},
    "one row for two": {"text": ([b"a"], object, [1]), "score": ([0.0], np.float32, [1])},
    "numbers for strings": {"text": ([1, 2], np.int32, [2]), "score": ([0, 1], np.float32, [2])},
    "no score": {"text": ([b"a", b"b"], object, [2])},
    "nothing": {},
}


@pytest.fixture(scope="module")
def grpc_fake():
    """A gRPC PredictionService with a speech model's metadata that answers Predict with
    `GRPC_ANSWERS[server.answer]`."""
    import grpc
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        answer = "good"
        metadata = "good"

        def GetModelMetadata(self, request, context):  # noqa: N802
            signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
            for name in ("audio", "audio_length", "text", "score"):
                kind = signature.inputs if name.startswith("audio") else signature.outputs
                kind[name].name = f"{name}:0"
            signature.outputs["text"].dtype = 7  # DT_STRING
            signature.outputs["score"].dtype = 1  # DT_FLOAT
            signatures = get_model_metadata_pb2.SignatureDefMap()
            name = "other" if self.metadata == "no serving_default" else "serving_default"
            signatures.signature_def[name].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = NAME
            if self.metadata == "another message":
                response.metadata["signature_def"].Pack(signature)
            elif self.metadata == "garbage bytes":
                entry = response.metadata["signature_def"]
                entry.type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
                entry.value = b"\xff\xff\xff\xff"
            elif self.metadata != "no signature map":
                response.metadata["signature_def"].Pack(signatures)
            return response

        def Predict(self, request, context):  # noqa: N802
            response = predict_pb2.PredictResponse()
            for name, spec in GRPC_ANSWERS[self.answer].items():
                response.outputs[name].CopyFrom(tensor(*spec))
            return response

    service = Service()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, f"grpc://127.0.0.1:{port}/{NAME}"
    server.stop(None)


@pytest.mark.parametrize("answer", sorted(GRPC_ANSWERS))
def test_grpc_transcriber_answers_or_one_line_error(grpc_fake, answer):
    service, url = grpc_fake
    service.answer = answer
    transcriber = ServerTranscriber(GrpcClient(url, timeout=10, retries=0))
    if answer == "good":
        assert sorted(t.text for t in transcriber.transcribe(SIGNALS)) == ["a", "b"]
        return
    with pytest.raises(ServingClientError, match="malformed answer") as error:
        transcriber.transcribe(SIGNALS)
    assert str(error.value).startswith(url) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "metadata", ["no signature map", "another message", "garbage bytes", "no serving_default"]
)
def test_grpc_malformed_metadata_is_a_one_line_error(grpc_fake, metadata):
    service, url = grpc_fake
    service.answer, service.metadata = "good", metadata
    try:
        with pytest.raises((ServingClientError, ValueError)) as error:
            ServerTranscriber(GrpcClient(url, timeout=10, retries=0)).transcribe(SIGNALS)
    finally:
        service.metadata = "good"
    assert str(error.value).startswith(url) and "\n" not in str(error.value)
    assert re.search("malformed metadata|no serving_default", str(error.value))
