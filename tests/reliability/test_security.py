"""Security checks of `seq2seq serve` and `seq2seq.client`.

- The server listens on 127.0.0.1 only unless `--host` says otherwise, and says so.
- Request bodies over `--max_request_bytes` are refused: 413 with a JSON error on REST
  (with a Content-Length or chunked), RESOURCE_EXHAUSTED on gRPC, and the server lives.
- Model names, versions and labels are names, never paths: `..`, encoded slashes,
  absolute paths and very long names reach nothing outside the configured base paths.
- Nothing is unpickled or evaluated.
"""

from __future__ import annotations

import ast
import http.client
import ipaddress
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import seq2seq
from seq2seq.cli import main
from serving_helpers import serving

NAME = "translate-en-fr"
LIMIT = 1000  # --max_request_bytes of the server here
GOOD = b'{"instances": ["the red cat ."]}'


@pytest.fixture(scope="module")
def layout(tiny_export, tmp_path_factory):
    """The served base path, and beside it a SavedModel that must never be served."""
    root = tmp_path_factory.mktemp("secure")
    base = root / "models" / NAME
    shutil.copytree(tiny_export / "1", base / "1")
    secret = root / "secret"
    shutil.copytree(tiny_export / "1", secret / "1")
    return root, base, secret


@pytest.fixture(scope="module")
def server(layout):
    root, base, _ = layout
    flags = ["--model_name", NAME, "--model_base_path", str(base)]
    flags += ["--max_request_bytes", str(LIMIT)]  # and no --host: the default
    with serving(*flags, log=root / "serve.log", ready_model=NAME) as running:
        yield running
    assert running.process.returncode == 0, running.log_text()[-3000:]  # a clean stop


def send(server, method: str, path: str, body=None, headers=None, chunked=False):
    """One request, its path sent as it is: `(status, content type, body)`."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        connection.close()


# --- where it listens ---------------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """The addresses that TCP sockets listening on `port` are bound to (Linux /proc)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # 32-bit words in the host's byte order
                words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
                if sys.byteorder == "little":
                    words = [word[::-1] for word in words]
                addresses.add(str(ipaddress.ip_address(b"".join(words))))
    return addresses


def is_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    mapped = getattr(parsed, "ipv4_mapped", None)
    return parsed.is_loopback or (mapped is not None and mapped.is_loopback)


def test_listens_on_loopback_only_by_default(server):
    log = server.log_text()
    assert f"Exporting HTTP/REST API at:127.0.0.1:{server.rest_port} ..." in log
    assert f"Running gRPC ModelServer at 127.0.0.1:{server.grpc_port} ..." in log
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to check the bound addresses")
    for port in (server.rest_port, server.grpc_port):
        addresses = listening_addresses(port)
        assert addresses and all(map(is_loopback, addresses)), (port, addresses)


def test_help_says_it_binds_loopback(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--host HOST address to bind (default: 127.0.0.1, this machine only)" in text


# --- request size limits ----------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A good predict body of exactly `size` bytes."""
    padding = size - len(b'{"instances": ["the red cat ."]}')
    return b'{"instances": ["the red cat .' + b" " * padding + b'"]}'


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [LIMIT + 1, 10 * LIMIT, 1000 * LIMIT])
def test_a_rest_body_over_the_limit_is_413(server, chunked, size):
    body = body_of(size)
    if chunked:  # no Content-Length: the server finds out while reading
        body = iter([body[i : i + 512] for i in range(0, len(body), 512)])
    status, content_type, data = send(
        server, "POST", f"/v1/models/{NAME}:predict", body, chunked=chunked
    )
    assert status == 413 and content_type.startswith("application/json")
    error = json.loads(data)
    assert list(error) == ["error"] and str(LIMIT) in error["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_rest_body_at_the_limit_is_served(server, chunked):
    body = body_of(LIMIT)
    status, _, data = send(
        server,
        "POST",
        f"/v1/models/{NAME}:predict",
        iter([body]) if chunked else body,
        chunked=chunked,
    )
    assert status == 200, data


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as opened:
        yield opened


def predict_request(name: str, texts: list[str]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
    return request


def test_a_grpc_message_over_the_limit_is_resource_exhausted(server, channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for size in (LIMIT + 1, 100 * LIMIT):
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(predict_request(NAME, ["a" * size]), timeout=60)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    answer = stub.Predict(predict_request(NAME, ["the red cat ."]), timeout=60)
    assert tf.make_ndarray(answer.outputs["text"]).shape == (1,)
    assert server.process.poll() is None


# --- names are not paths ------------------------------------------------------------------------


def traversal_paths(secret: Path) -> list[str]:
    """Model URLs that try to name `secret` (or any file) instead of a configured model."""
    absolute = str(secret)
    names = [
        "../secret",
        "..%2Fsecret",
        "..%2fsecret",
        "%2e%2e%2fsecret",
        "%2E%2E%2F%2E%2E%2Fsecret",
        "..%5Csecret",  # a backslash
        "%252e%252e%252fsecret",  # encoded twice
        quote(absolute, safe=""),
        absolute.lstrip("/"),
        f"{NAME}%2F..%2F..%2Fsecret",
        f"{NAME}/../../secret",
        "secret",
        "1",
        "%00",
        "x" * 7000,
    ]
    paths = [f"/v1/models/{name}" for name in names]
    paths += [
        f"/v1/models/{NAME}/versions/..%2F..%2F..%2Fsecret%2F1",
        f"/v1/models/{NAME}/versions/%D9%A1",  # not an ASCII digit, though Python's \d takes it
        f"/v1/models/{NAME}/versions/{'9' * 30}",
        f"/v1/models/{NAME}/labels/..",
        f"/v1/models/{NAME}/labels/..%2F..%2Fsecret",
        f"/v1/models/{NAME}/labels/{quote(absolute, safe='')}",
        f"/v1/models/{NAME}/labels/{'y' * 7000}",
        f"/v1/models/{NAME}/metadata/..%2F..%2Fsecret",
    ]
    return paths


def test_names_versions_and_labels_never_reach_outside_the_base_path(server, layout):
    _, _, secret = layout
    for path in traversal_paths(secret):
        for method, suffix, body in (
            ("GET", "", None),
            ("GET", "/metadata", None),
            ("POST", ":predict", GOOD),
        ):
            status, content_type, data = send(server, method, path + suffix, body)
            request = f"{method} {path[:80]}{suffix}"
            assert status in (400, 404), (request, status, data[:300])
            assert content_type.startswith("application/json"), request
            assert list(json.loads(data)) == ["error"], request
    # A path longer than aiohttp reads (8190 bytes) is refused before it is matched.
    status, _, _ = send(server, "GET", f"/v1/models/{'z' * 9000}")
    assert status in (400, 414)
    # The server loaded the configured version and nothing else.
    loads = [line for line in server.log_text().splitlines() if "Loading servable" in line]
    assert len(loads) == 1 and f"version: 1}} from {layout[1] / '1'}" in loads[0], loads
    status, _, data = send(server, "GET", f"/v1/models/{NAME}")
    assert [entry["version"] for entry in json.loads(data)["model_version_status"]] == ["1"]


@pytest.mark.parametrize("label", [None, "..", "../secret", "/etc/passwd"])
def test_grpc_names_that_are_paths_are_not_found(server, layout, channel, label):
    _, _, secret = layout
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    names = ["../x", "../secret", "../../secret", str(secret), str(secret / "1"), "secret", ""]
    names += [f"{NAME}/../secret", "x" * 900] if label is None else [NAME]
    for name in names:
        request = predict_request(name, ["the red cat ."])
        status = get_model_status_pb2.GetModelStatusRequest()
        metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        for spec in (request.model_spec, status.model_spec, metadata.model_spec):
            spec.name = name
            if label is not None:
                spec.version_label = label
        for call, message in (
            (prediction.Predict, request),
            (models.GetModelStatus, status),
            (prediction.GetModelMetadata, metadata),
        ):
            with pytest.raises(grpc.RpcError) as raised:
                call(message, timeout=60)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND, (name[:80], label)


# --- no unsafe deserialization ------------------------------------------------------------------

PACKAGE = Path(seq2seq.__file__).parent
SERVING_CODE = sorted((PACKAGE / "serving").glob("*.py")) + [PACKAGE / "client.py"]
UNSAFE_TEXT = re.compile(
    r"pickle|marshal|shelve|(?<![\w.])(eval|exec)\s*\(|yaml\.(load|unsafe_load|full_load)\s*\("
    r"|allow_pickle\s*=\s*True"
)
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}


def test_nothing_is_unpickled_or_evaluated():
    """A grep of the server and client code, and an import check of its syntax tree."""
    assert len(SERVING_CODE) >= 8
    found = []
    for path in SERVING_CODE:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if UNSAFE_TEXT.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{path.name}:{node.lineno}: import {module}")
    assert found == []


def test_the_server_survived(server):
    """Run last: the process lives, logged no traceback, and still answers."""
    assert server.process.poll() is None, server.log_text()[-3000:]
    status, _, data = send(server, "POST", f"/v1/models/{NAME}:predict", GOOD)
    assert status == 200, data
    assert "Traceback" not in server.log_text()
