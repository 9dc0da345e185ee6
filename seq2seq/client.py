"""Clients for TF Serving endpoints: REST and gRPC, the same calls on both.

    client = connect("http://localhost:8501/v1/models/translate-en-fr")   # REST
    client = connect("grpc://localhost:8500/translate-en-fr")             # gRPC
    client.predict({"text": ["The cat sees a dog."]}, signature_name="greedy")
    client.status(), client.metadata()

They work against `seq2seq serve` and against a `tensorflow/serving` container alike.
A URL may name a version (`.../versions/2`) or a label (`.../labels/stable`). Calls
that cannot connect are retried with a growing pause; an answer that is an error
raises `ServingClientError` with the server's message.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_MODEL_PATH = r"(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?/?"
_REST_URL = re.compile(r"(?P<base>https?://[^/]+)/v1/models/" + _MODEL_PATH)
_GRPC_URL = re.compile(r"grpc://(?P<target>[^/]+)/" + _MODEL_PATH)
_NUMPY_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_BOOL": np.bool_,
}


class ServingClientError(Exception):
    """A call that failed: the server's error, or no server reachable.

    Args:
        message: what failed, naming the endpoint.
        code: the HTTP status (REST) or gRPC status code name; None without an answer.
    """

    def __init__(self, message: str, code: int | str | None = None):
        super().__init__(message)
        self.code = code


class _Client:
    """What both clients share: retries, and the signatures' output names."""

    def __init__(
        self,
        url: str,
        name: str,
        version: int | None,
        label: str | None,
        timeout: float,
        retries: int,
    ):
        self.url = url
        self.name = name
        self.version = version
        self.label = label
        self.timeout = timeout
        self.retries = retries
        self._signatures: dict[str, Any] | None = None

    def _retrying(
        self, call: Callable[[], T], is_connection_error: Callable[[Exception], bool]
    ) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as error:
                if not is_connection_error(error) or attempt == self.retries:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def metadata(self) -> dict:
        """The model's metadata as TF Serving's REST API gives it."""
        raise NotImplementedError

    def signature_names(self) -> list[str]:
        """The model's signature names (from its metadata, asked once)."""
        return sorted(self._signature_defs())

    def _signature_defs(self) -> dict[str, Any]:
        if self._signatures is None:
            metadata = self.metadata()
            try:
                signatures = metadata["metadata"]["signature_def"]["signature_def"]
            except (KeyError, TypeError):
                signatures = None
            if not isinstance(signatures, dict) or not all(
                isinstance(signature, dict) and isinstance(signature.get("outputs", {}), dict)
                for signature in signatures.values()
            ):
                raise ServingClientError(f"{self.url}: malformed metadata (no signature_def map)")
            self._signatures = signatures
        return self._signatures

    def output_dtypes(self, signature_name: str | None) -> dict[str, Any]:
        """The outputs of a signature (None: `serving_default`) and their NumPy dtypes
        (`object` for strings and for types without a NumPy twin)."""
        signature = self._signature_defs().get(signature_name or "serving_default")
        if signature is None:
            raise ServingClientError(f"{self.url}: no signature {signature_name!r}")
        return {
            name: _NUMPY_DTYPES.get(
                output.get("dtype") if isinstance(output, dict) else None, object
            )
            for name, output in signature.get("outputs", {}).items()
        }


class RestClient(_Client):
    """TF Serving's REST API (`http://host:8501/v1/models/NAME[/versions/N|/labels/L]`).

    Args:
        url: the model URL.
        timeout: seconds to wait for an answer.
        retries: further tries after a connection error.
    """

    def __init__(self, url: str, timeout: float = 300.0, retries: int = 3):
        import requests

        match = _REST_URL.fullmatch(url)
        if match is None:
            raise ValueError(f"{url}: not a REST model URL (http://HOST:PORT/v1/models/NAME)")
        version = int(match["version"]) if match["version"] else None
        super().__init__(url.rstrip("/"), match["name"], version, match["label"], timeout, retries)
        self._session = requests.Session()
        self._requests = requests

    def _call(self, method: str, url: str, body: dict | None = None) -> dict:
        def send() -> Any:
            return self._session.request(method, url, json=body, timeout=self.timeout)

        try:
            answer = self._retrying(
                send, lambda error: isinstance(error, self._requests.ConnectionError)
            )
        except self._requests.RequestException as error:
            raise ServingClientError(f"{url}: {error}") from None
        try:
            payload = answer.json()
        except ValueError:
            payload = {"error": answer.text[:200]}
        if answer.status_code != 200:
            message = payload.get("error", answer.reason) if isinstance(payload, dict) else ""
            message = " ".join(str(message).split())[:300]  # one line, whatever was sent
            raise ServingClientError(f"{url}: {answer.status_code}: {message}", answer.status_code)
        return payload

    def status(self) -> dict:
        """The model's status (`GetModelStatusResponse` as JSON)."""
        return self._call("GET", self.url)

    def metadata(self) -> dict:
        return self._call("GET", f"{self.url}/metadata")

    def predict(
        self, inputs: dict[str, Any], signature_name: str | None = None
    ) -> dict[str, np.ndarray]:
        """Runs a signature on inputs given as columns.

        Args:
            inputs: input name to array-like (strings as `str` or `bytes`).
            signature_name: the signature; None for `serving_default`.

        Returns:
            Output name to array (strings as `object` arrays of bytes, like gRPC's).
        """
        body: dict[str, Any] = {
            "inputs": {name: _json_value(value) for name, value in inputs.items()}
        }
        if signature_name:
            body["signature_name"] = signature_name
        url = f"{self.url}:predict"
        answer = self._call("POST", url, body)
        if not isinstance(answer, dict) or "outputs" not in answer:
            raise ServingClientError(f"{url}: malformed answer (no outputs)")
        outputs = answer["outputs"]
        # JSON has no dtypes: the signature's are restored, as gRPC answers have them.
        dtypes = self.output_dtypes(signature_name)
        if not isinstance(outputs, dict):  # one output comes without its name
            outputs = {next(iter(dtypes), "output"): outputs}
        try:
            return {
                name: _array(value, dtypes.get(name, object)) for name, value in outputs.items()
            }
        except (ValueError, TypeError, OverflowError) as error:  # binascii.Error included
            raise ServingClientError(f"{url}: malformed answer ({error})") from None


def answer_rows(
    outputs: dict[str, np.ndarray],
    rows: int,
    url: str,
    text: str = "text",
    score: str = "",
    ndim: int = 1,
) -> tuple[list[Any], np.ndarray | None]:
    """The `text` output of a predict answer, one row per input (bytes, or with `ndim` 2
    a list of bytes per input), and the `score` output as float64 of the same shape (when
    asked), each checked to hold `rows` rows: a server that answers something else is a
    `ServingClientError`, not a crash of the caller.

    >>> answer_rows({"text": np.array([b"a", b"b"], object)}, 2, "u")
    ([b'a', b'b'], None)
    >>> answer_rows({"text": np.array([b"a"], object)}, 2, "u")
    Traceback (most recent call last):
    ...
    seq2seq.client.ServingClientError: u: malformed answer (1 text rows for 2 inputs)
    """
    texts = outputs.get(text)
    if texts is None or np.ndim(texts) != ndim or len(texts) != rows:
        if texts is None:
            problem = f"no {text}"
        elif np.ndim(texts) != ndim:
            problem = f"{text} of shape {np.shape(texts)}"
        else:
            problem = f"{len(texts)} {text} rows for {rows} inputs"
        raise ServingClientError(f"{url}: malformed answer ({problem})")
    texts = np.asarray(texts, dtype=object)
    if not all(isinstance(item, bytes) for item in texts.reshape(-1)):
        raise ServingClientError(f"{url}: malformed answer ({text} is not strings)")
    if not score:
        return texts.tolist(), None
    try:
        scores = np.asarray(outputs[score], np.float64)
    except (KeyError, ValueError, TypeError):
        raise ServingClientError(f"{url}: malformed answer (no numeric {score})") from None
    if scores.shape != texts.shape:
        raise ServingClientError(f"{url}: malformed answer ({score}: shape {scores.shape})")
    return texts.tolist(), scores


def _json_value(value: Any) -> Any:
    """A value as TF Serving's JSON tensors write it (bytes as `{"b64": ...}`)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _array(value: Any, dtype: Any) -> np.ndarray:
    """A JSON tensor as an array of `dtype`; strings as bytes (`{"b64": ...}` decoded)."""

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(child) for child in item]
        if isinstance(item, dict) and "b64" in item:
            return base64.b64decode(item["b64"])
        if isinstance(item, str):
            return item.encode("utf-8")
        return item

    return np.asarray(convert(value), dtype=dtype)


class GrpcClient(_Client):
    """TF Serving's gRPC API (`grpc://host:8500/NAME[/versions/N|/labels/L]`).

    Args:
        url: the model URL.
        timeout: seconds to wait for an answer.
        retries: further tries after UNAVAILABLE (no server, or it is restarting).
        max_message_bytes: the largest message sent or received.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 300.0,
        retries: int = 3,
        max_message_bytes: int = 256 * 1024 * 1024,
    ):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        match = _GRPC_URL.fullmatch(url)
        if match is None:
            raise ValueError(f"{url}: not a gRPC model URL (grpc://HOST:PORT/NAME)")
        version = int(match["version"]) if match["version"] else None
        super().__init__(url, match["name"], version, match["label"], timeout, retries)
        self._grpc = grpc
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel = grpc.insecure_channel(match["target"], options=options)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _spec(self, spec: Any, signature_name: str | None = None) -> None:
        spec.name = self.name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name:
            spec.signature_name = signature_name

    def _call(self, method: Callable, request: Any) -> Any:
        grpc = self._grpc

        def unavailable(error: Exception) -> bool:
            return isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE

        try:
            return self._retrying(lambda: method(request, timeout=self.timeout), unavailable)
        except grpc.RpcError as error:
            raise ServingClientError(
                f"{self.url}: {error.code().name}: {error.details()}", error.code().name
            ) from None

    def status(self) -> dict:
        """The model's status (`GetModelStatusResponse` as JSON)."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        return _as_json(self._call(self._models.GetModelStatus, request))

    def metadata(self) -> dict:
        from google.protobuf.message import DecodeError
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._call(self._prediction.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        try:  # False when the entry is missing or holds another message
            unpacked = response.metadata["signature_def"].Unpack(signatures)
        except DecodeError:
            unpacked = False
        if not unpacked:
            raise ServingClientError(f"{self.url}: malformed metadata (no signature_def map)")
        return {
            "model_spec": _as_json(response.model_spec),
            "metadata": {"signature_def": _as_json(signatures)},
        }

    def predict(
        self, inputs: dict[str, Any], signature_name: str | None = None
    ) -> dict[str, np.ndarray]:
        """Runs a signature (see `RestClient.predict`)."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(_grpc_value(value)))
        response = self._call(self._prediction.Predict, request)
        try:
            return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        except (ValueError, TypeError) as error:  # a tensor whose content fits no shape
            raise ServingClientError(f"{self.url}: malformed answer ({error})") from None

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()


def _as_json(message: Any) -> dict:
    """A proto as TF Serving's REST API renders it."""
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _grpc_value(value: Any) -> Any:
    """A value for `tf.make_tensor_proto`: strings as bytes, floats as float32."""
    array = np.asarray(value, dtype=object if _has_text(value) else None)
    if array.dtype == object:
        flat = [
            item.encode("utf-8") if isinstance(item, str) else item for item in array.reshape(-1)
        ]
        result = np.empty(len(flat), dtype=object)
        result[:] = flat
        return result.reshape(array.shape)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    return array


def _has_text(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype == object or value.dtype.kind in "SU"
    if isinstance(value, (list, tuple)):
        return any(_has_text(item) for item in value)
    return False


def connect(url: str, timeout: float = 300.0, retries: int = 3) -> RestClient | GrpcClient:
    """A client for a TF Serving model URL.

    Args:
        url: `http://HOST:PORT/v1/models/NAME` (REST) or `grpc://HOST:PORT/NAME` (gRPC),
            either optionally followed by `/versions/N` or `/labels/L`.
        timeout: seconds to wait for each answer.
        retries: further tries after a connection error.

    Raises:
        ValueError: naming the URL when it is neither.

    >>> connect("grpc://localhost:8500/translate-en-fr/labels/stable").label
    'stable'
    >>> connect("http://localhost:8501/v1/models/translate-en-fr/versions/2").version
    2
    """
    if url.startswith("grpc://"):
        return GrpcClient(url, timeout, retries)
    if url.startswith(("http://", "https://")):
        return RestClient(url, timeout, retries)
    raise ValueError(
        f"{url}: not a TF Serving URL (http://HOST:8501/v1/models/NAME or grpc://HOST:8500/NAME)"
    )
