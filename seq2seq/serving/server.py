"""`seq2seq serve`: TF Serving's interface for development and tests.

    seq2seq serve --model_name translate-en-fr --model_base_path saved_models/translate-en-fr
    seq2seq serve --model_config_file models.config --enable_batching

The flags, files, REST paths, JSON formats and gRPC services are TF Serving's, so a
client written against this server works against a `tensorflow/serving` container
unchanged (see `deploy/`). Unlike TF Serving it binds to 127.0.0.1 unless `--host`
says otherwise, and serves REST on 8501 unless `--rest_api_port 0` turns it off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

PROG = "seq2seq serve"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Largest request body: a minute of 16 kHz audio as JSON numbers is about 10 MB."""


def _boolean(text: str) -> bool:
    """A TF Serving boolean flag value (`--enable_batching=true`).

    >>> _boolean("true"), _boolean("0")
    (True, False)
    """
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


# Boolean flags as TF Serving takes them: bare, or `=true` / `=false`.
_BOOLEAN = {"nargs": "?", "const": True, "default": False, "type": _boolean, "metavar": "BOOL"}


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `serve` to the `seq2seq` command's subparsers.

    Args:
        subparsers: what `ArgumentParser.add_subparsers` returned.
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve SavedModels over TF Serving's REST and gRPC interfaces",
        description=(
            "Serve SavedModels with TensorFlow Serving's flags, REST API and gRPC services. "
            "Model base paths are polled: a new version directory is loaded and served "
            "without dropping requests, and the old one unloaded."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=8500, help="gRPC port; 0: no gRPC (default: 8500)"
    )
    parser.add_argument(
        "--rest_api_port", type=int, default=8501, help="REST port; 0: no REST (default: 8501)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--model_name", default="default", help="name of the one model (default: default)"
    )
    parser.add_argument(
        "--model_base_path", type=Path, help="base path of the one model (its versions)"
    )
    parser.add_argument(
        "--model_config_file",
        type=Path,
        help="TF Serving model config (text-format model_config_list): several models, labels",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between polls of the base paths for new versions; 0: never (default: 1)",
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="seconds between re-reads of --model_config_file; 0: read once (default: 0)",
    )
    parser.add_argument(
        "--allow_version_labels_for_unavailable_models",
        **_BOOLEAN,
        help="accepted for TF Serving compatibility: labels are always resolved per request",
    )
    parser.add_argument(
        "--enable_batching", **_BOOLEAN, help="merge concurrent requests into batches"
    )
    parser.add_argument(
        "--batching_parameters_file",
        type=Path,
        help="TF Serving batching parameters (text format); implies --enable_batching",
    )
    parser.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="threads per TensorFlow op; 0: TensorFlow's choice (default: 0)",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"largest request body, REST and gRPC (default: {DEFAULT_MAX_REQUEST_BYTES})",
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """The `serve` handler: runs until SIGINT or SIGTERM.

    Returns:
        0 after a clean stop; 2 when the flags, the config or a port is bad.
    """
    from seq2seq.serving.config import ModelSource, read_batching_parameters, read_model_config

    try:
        if bool(args.model_config_file) == bool(args.model_base_path):
            raise ValueError("give either --model_base_path or --model_config_file")
        if args.model_config_file:
            sources = read_model_config(args.model_config_file)
        else:
            if not args.model_base_path.is_dir():
                raise ValueError(f"--model_base_path {args.model_base_path}: not a directory")
            sources = [ModelSource(args.model_name, args.model_base_path)]
        batching = None
        if args.enable_batching or args.batching_parameters_file:
            batching = read_batching_parameters(args.batching_parameters_file)
        if args.max_request_bytes < 1:
            raise ValueError("--max_request_bytes must be positive")
        if not (args.port or args.rest_api_port):
            raise ValueError("--port and --rest_api_port are both 0: nothing to serve on")
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import tensorflow as tf

    if args.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    try:
        return asyncio.run(_serve(args, sources, batching))
    except OSError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace, sources: list, batching) -> int:
    from seq2seq.serving.batching import BatchingPredictor, Predictor
    from seq2seq.serving.config import read_model_config
    from seq2seq.serving.grpc_service import start_grpc
    from seq2seq.serving.rest import RestApi, start_rest
    from seq2seq.serving.servables import LOG, ModelManager, ServingError

    manager = ModelManager(sources)
    # The first load happens before the ports open, as in TF Serving.
    await asyncio.to_thread(manager.poll)
    for source in sources:
        try:
            manager.servable(source.name)
        except ServingError:
            LOG.warning("No versions of servable %s loaded from %s", source.name, source.base_path)
    manager.start_polling(
        args.file_system_poll_wait_seconds,
        (lambda: read_model_config(args.model_config_file)) if args.model_config_file else None,
        args.model_config_file_poll_wait_seconds,
    )
    predictor = BatchingPredictor(batching) if batching else Predictor()

    grpc_server = rest_runner = None
    try:
        if args.port:
            grpc_server = start_grpc(
                manager, predictor, args.host, args.port, args.max_request_bytes
            )
            LOG.info("Running gRPC ModelServer at %s:%d ...", args.host, args.port)
        if args.rest_api_port:
            api = RestApi(manager, predictor, args.max_request_bytes)
            rest_runner = await start_rest(api, args.host, args.rest_api_port)
            LOG.info("Exporting HTTP/REST API at:%s:%d ...", args.host, args.rest_api_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        LOG.info("Stopping: finishing the requests in flight")
    finally:
        if rest_runner is not None:
            await rest_runner.cleanup()
        if grpc_server is not None:
            await asyncio.to_thread(grpc_server.stop(grace=10).wait)
        manager.stop()
        await asyncio.to_thread(predictor.close)
    return 0
