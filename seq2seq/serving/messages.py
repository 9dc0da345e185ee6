"""TF Serving's messages, built once for both fronts.

The gRPC front sends these protos as they are; the REST front renders them as JSON the
way TF Serving does (`MessageToJson` with field names kept and defaults printed), and
converts between TF Serving's JSON tensors (`instances` rows or `inputs` columns, with
`{"b64": ...}` for binary strings) and NumPy arrays.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from seq2seq.serving.servables import ModelManager, Servable, ServingError


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def model_spec(servable: Servable, signature_name: str | None = None) -> model_pb2.ModelSpec:
    """The `ModelSpec` that answers name the version that served them with."""
    spec = model_pb2.ModelSpec(name=servable.name)
    spec.version.value = servable.version
    if signature_name is not None:
        spec.signature_name = signature_name
    return spec


def status_response(
    manager: ModelManager, name: str, version: int | None = None
) -> get_model_status_pb2.GetModelStatusResponse:
    """`GetModelStatusResponse` for a model, or one of its versions.

    Raises:
        ServingError: NOT_FOUND for an unknown model or version.
    """
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in manager.status(name, version):
        entry = response.model_version_status.add(version=number, state=status.state)
        entry.status.error_code = status.error_code.value[0]
        entry.status.error_message = status.error_message
    return response


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """`GetModelMetadataResponse` with the `signature_def` metadata of a version."""
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(servable, ""))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signatures.signature_def[key].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signatures)
    return response


def to_json(message: Any) -> dict:
    """A proto as TF Serving's REST answers render it."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    """TF Serving's REST metadata answer: the `signature_def` map without its `@type`."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return {
        "model_spec": to_json(response.model_spec),
        "metadata": {"signature_def": to_json(signatures)},
    }


def json_inputs(body: Any, input_names: list[str]) -> tuple[dict[str, Any], bool]:
    """The inputs of a REST `:predict` body, as nested lists of Python values.

    Args:
        body: the parsed JSON body.
        input_names: the signature's input names.

    Returns:
        `(inputs, rows)`: input name to value, and whether the body used the row
        (`instances`) format, which decides the format of the answer.

    Raises:
        ServingError: INVALID_ARGUMENT saying what is malformed.

    >>> json_inputs({"instances": [{"text": "a"}, {"text": {"b64": "Yg=="}}]}, ["text"])
    ({'text': ['a', b'b']}, True)
    >>> json_inputs({"inputs": ["a", "b"]}, ["text"])
    ({'text': ['a', 'b']}, False)
    """
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object")
    if "instances" in body and "inputs" in body:
        raise _invalid("Not formatted correctly: expecting only one of 'inputs' or 'instances'")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise _invalid("'instances' must be a non-empty list")
        if all(_is_named(instance) for instance in instances):
            names = set(instances[0])
            if any(set(instance) != names for instance in instances):
                raise _invalid("every instance must name the same inputs")
            return {
                name: [_decode(instance[name]) for instance in instances] for name in names
            }, True
        if any(_is_named(instance) for instance in instances):
            raise _invalid("instances mix named inputs and bare values")
        return {_only_input(input_names): [_decode(instance) for instance in instances]}, True
    if "inputs" in body:
        inputs = body["inputs"]
        if _is_named(inputs):
            return {name: _decode(value) for name, value in inputs.items()}, False
        return {_only_input(input_names): _decode(inputs)}, False
    raise _invalid("Missing 'inputs' or 'instances' key")


def _is_named(value: Any) -> bool:
    """Whether a JSON value is an object of named inputs (not a `{"b64": ...}` value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _only_input(input_names: list[str]) -> str:
    if len(input_names) != 1:
        raise _invalid(
            f"the signature takes {len(input_names)} inputs {sorted(input_names)}: name them"
        )
    return input_names[0]


def _decode(value: Any) -> Any:
    """A JSON value with each `{"b64": ...}` replaced by its bytes."""
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if _is_b64(value):
        if not isinstance(value["b64"], str):
            raise _invalid("a 'b64' value must be a base64 string")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("a 'b64' value is not valid base64") from None
    if isinstance(value, dict):
        raise _invalid('a tensor value cannot be an object (other than {"b64": ...})')
    return value


def json_outputs(outputs: dict[str, np.ndarray], rows: bool) -> dict:
    """A REST `:predict` answer: `{"predictions": ...}` for rows, `{"outputs": ...}` for
    columns; one output is given bare, several by name. Strings are UTF-8 text, and
    base64 (`{"b64": ...}`) for outputs whose names end in `_bytes`.

    Raises:
        ServingError: INVALID_ARGUMENT when row answers have outputs of different batch
            sizes.

    >>> json_outputs({"text": np.array([b"a", b"b"], dtype=object)}, rows=True)
    {'predictions': ['a', 'b']}
    >>> json_outputs({"text": np.array([b"a"], dtype=object), "score": np.array([0.5])}, rows=False)
    {'outputs': {'score': [0.5], 'text': ['a']}}
    """
    values = {name: _jsonable(outputs[name], name.endswith("_bytes")) for name in sorted(outputs)}
    if not rows:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    sizes = {len(value) if isinstance(value, list) else -1 for value in values.values()}
    if len(sizes) != 1 or -1 in sizes:
        raise _invalid("the outputs differ in batch size: ask for columns ('inputs')")
    (size,) = sizes
    return {
        "predictions": [{name: value[row] for name, value in values.items()} for row in range(size)]
    }


def _jsonable(array: np.ndarray, binary: bool) -> Any:
    """A NumPy array as nested lists of JSON values."""
    if array.dtype != object:
        return array.tolist()

    def text(item: bytes) -> Any:
        if binary:
            return {"b64": base64.b64encode(item).decode("ascii")}
        return item.decode("utf-8", errors="replace")

    return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
