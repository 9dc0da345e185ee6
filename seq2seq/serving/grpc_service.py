"""TF Serving's gRPC API, on `grpcio` with the stubs of `tensorflow-serving-api`.

`PredictionService.Predict` and `GetModelMetadata`, and `ModelService.GetModelStatus`;
the other methods answer UNIMPLEMENTED. Errors are gRPC status codes with TF Serving's
messages.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from seq2seq.serving import messages
from seq2seq.serving.servables import ModelManager, ServingError

LOG = logging.getLogger("seq2seq.serve")


def _answers_errors(method: Callable) -> Callable:
    """Turns a `ServingError` (or a bug) into the call's gRPC status."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except ServingError as error:
            context.abort(error.code, error.message)
        except Exception:  # a bug must cost one request, never the server
            LOG.exception("gRPC %s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "Internal error while serving the request")

    return wrapper


def _servable(manager: ModelManager, spec) -> Any:
    """The version a request's `ModelSpec` names (version, label or latest)."""
    choice = spec.WhichOneof("version_choice")
    return manager.servable(
        spec.name,
        spec.version.value if choice == "version" else None,
        spec.version_label if choice == "version_label" else None,
    )


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata.

    Args:
        manager: the loaded models.
        predictor: a `Predictor` or `BatchingPredictor`.
    """

    def __init__(self, manager: ModelManager, predictor: Any):
        self.manager = manager
        self.predictor = predictor

    @_answers_errors
    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:  # noqa: N802
        servable = _servable(self.manager, request.model_spec)
        signature_name = request.model_spec.signature_name
        values = {}
        for name, proto in request.inputs.items():
            try:
                values[name] = tf.make_ndarray(proto)
            except (TypeError, ValueError) as error:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r}: not a valid tensor ({error})",
                ) from None
        inputs = servable.check_inputs(signature_name, values)
        future = self.predictor.submit(servable, signature_name, inputs)
        # A client that cancels or hangs up ends the RPC: its call is then not run at
        # all if it has not started (after an answer, cancel() does nothing). An RPC that
        # ended before the callback was added refuses it: cancel now.
        if not context.add_callback(future.cancel):
            future.cancel()
        try:
            outputs = future.result(timeout=context.time_remaining())
        except concurrent.futures.TimeoutError:
            future.cancel()  # not run at all if it has not started
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except concurrent.futures.CancelledError:  # by the callback: nobody is listening
            raise ServingError(grpc.StatusCode.CANCELLED, "Cancelled") from None
        wanted = list(request.output_filter) or list(outputs)
        unknown = [name for name in wanted if name not in outputs]
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}"
            )
        response = predict_pb2.PredictResponse(
            model_spec=messages.model_spec(servable, signature_name or "serving_default")
        )
        for name in wanted:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
        return response

    @_answers_errors
    def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for field in request.metadata_field:
            if field != "signature_def":
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported"
                )
        return messages.metadata_response(_servable(self.manager, request.model_spec))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus.

    Args:
        manager: the loaded models.
    """

    def __init__(self, manager: ModelManager):
        self.manager = manager

    @_answers_errors
    def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        if choice == "version_label":
            version = _servable(self.manager, spec).version
        return messages.status_response(self.manager, spec.name, version)


def start_grpc(
    manager: ModelManager, predictor: Any, host: str, port: int, max_request_bytes: int
) -> grpc.Server:
    """Starts the gRPC server on host:port; `server.stop(grace)` stops it.

    Raises:
        OSError: when the port cannot be bound.
    """
    server = grpc.server(
        # Handlers mostly wait on the predictor, so many threads cost little.
        concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", -1),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, predictor), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises this, or returns 0, when the port is taken
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    server.start()
    return server
