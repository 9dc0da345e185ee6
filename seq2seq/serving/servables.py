"""Loaded SavedModel versions and the manager that keeps them in step with the disk.

A `ModelManager` polls each model's base path the way TF Serving's file-system source
does: a new version directory is loaded while the old one keeps serving, and the old
one is unloaded only once a wanted version is available, so no request is dropped and a
version that fails to load leaves the previous one serving. Requests that are running
keep their own reference to the version they started on.

Errors carry a gRPC status code (`ServingError`); the REST front maps it to an HTTP
status as TF Serving does.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the graphs use)
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2

from seq2seq.serving.config import ModelSource

LOG = logging.getLogger("seq2seq.serve")
State = get_model_status_pb2.ModelVersionStatus.State


class ServingError(Exception):
    """A request that cannot be answered, with the gRPC status code that says why.

    Args:
        code: e.g. `grpc.StatusCode.INVALID_ARGUMENT` or `NOT_FOUND`.
        message: one line for the client.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


_CONTEXT = ("Graph execution error", "Detected at node", "<stack traces", "[[", "in user code")


def _first_line(error: BaseException) -> str:
    r"""The first line of an error message that says what went wrong (TensorFlow's run to
    pages of context: where in the graph, stack traces).

    >>> _first_line(ValueError("Graph execution error:\n\nDetected at node x\n"
    ...                        "assertion failed: [not a WAV file]\n\t [[{{node x}}]]"))
    'assertion failed: [not a WAV file]'
    """
    lines = [line.strip() for line in str(error).splitlines()]
    meaningful = [line for line in lines if line and not line.startswith(_CONTEXT)]
    return next(iter(meaningful), type(error).__name__)


def read_signature_defs(model_dir: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of a SavedModel's `serve` graph, as TF Serving reports them.

    Args:
        model_dir: the SavedModel directory.
    """
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{model_dir}: the SavedModel has no graph tagged 'serve'")


class Servable:
    """One loaded version of a model.

    Args:
        name: the model name.
        version: the version number.
        path: the SavedModel directory.
    """

    def __init__(self, name: str, version: int, path: Path):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        # The signature functions need the variables the loaded object owns: keep it.
        self._loaded = tf.saved_model.load(str(path), tags=["serve"])
        self._functions = self._loaded.signatures

    def signature_def(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        """The SignatureDef that `signature_name` names ("" means `serving_default`).

        Raises:
            ServingError: INVALID_ARGUMENT when the model has no such signature.
        """
        name = signature_name or "serving_default"
        if name not in self._functions:
            raise _invalid(f'Serving signature name: "{name}" not found in signature def')
        return self.signature_defs[name]

    def check_inputs(self, signature_name: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Converts request inputs to the signature's dtypes and checks names and ranks.

        Args:
            signature_name: the signature ("" for `serving_default`).
            inputs: input name to array-like value.

        Returns:
            The inputs as NumPy arrays (strings as `object` arrays of bytes).

        Raises:
            ServingError: INVALID_ARGUMENT naming the input that does not fit.
        """
        specs = self.signature_def(signature_name).inputs
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise _invalid(
                f"input names do not match the signature: expected {sorted(specs)}, "
                f"missing {missing}, unexpected {extra}"
            )
        arrays = {}
        for name, value in inputs.items():
            spec = specs[name]
            dtype = tf.dtypes.as_dtype(spec.dtype)
            try:
                array = _to_array(value, dtype)
            except (TypeError, ValueError, OverflowError, RecursionError) as error:
                raise _invalid(f"input {name!r}: not {dtype.name} values ({error})") from None
            if not spec.tensor_shape.unknown_rank:
                dims = [dim.size for dim in spec.tensor_shape.dim]
                fits = array.ndim == len(dims) and all(
                    want in (-1, have) for want, have in zip(dims, array.shape, strict=True)
                )
                if not fits:
                    raise _invalid(
                        f"input {name!r}: shape {list(array.shape)} does not fit the "
                        f"signature's {dims} (-1: any size)"
                    )
            arrays[name] = array
        return arrays

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on inputs that `check_inputs` returned.

        Raises:
            ServingError: INVALID_ARGUMENT when the graph rejects the values.
        """
        name = signature_name or "serving_default"
        function = self._functions[name]
        dtypes = {
            key: tf.dtypes.as_dtype(spec.dtype)
            for key, spec in self.signature_def(name).inputs.items()
        }
        tensors = {key: tf.constant(value, dtype=dtypes[key]) for key, value in inputs.items()}
        try:
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise _invalid(_first_line(error)) from None
        except UnicodeDecodeError:  # an op's message quoted input bytes that are not UTF-8
            raise _invalid("the model rejected the input (an op quoted it in binary)") from None
        return {key: value.numpy() for key, value in outputs.items()}


def _to_array(value: Any, dtype: tf.dtypes.DType) -> np.ndarray:
    """A request value as a NumPy array of `dtype` (strings as `object` arrays of bytes)."""
    if dtype == tf.string:
        array = np.asarray(value, dtype=object)
        flat = [
            item.encode("utf-8") if isinstance(item, str) else item for item in array.reshape(-1)
        ]
        if not all(isinstance(item, bytes) for item in flat):
            raise TypeError("expected strings")
        result = np.empty(len(flat), dtype=object)
        result[:] = flat
        return result.reshape(array.shape)
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(
            f"expected numbers, got {array.dtype.name if array.dtype != object else 'mixed values'}"
        )
    if dtype.is_integer and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise TypeError("expected integers")
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise OverflowError(f"values outside [{info.min}, {info.max}]")
    return array.astype(dtype.as_numpy_dtype)


@dataclasses.dataclass
class VersionStatus:
    """What the manager knows of one version: its state and, after a failure, why."""

    state: int = State.START
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""
    servable: Servable | None = None
    failed_stamp: float | None = None  # saved_model.pb's mtime when loading it failed


class ModelManager:
    """Keeps the wanted versions of each model loaded, and answers which one serves.

    Args:
        sources: the models to serve.
        loader: loads one version (the `Servable` constructor; tests pass a stand-in).
    """

    def __init__(
        self,
        sources: list[ModelSource],
        loader: Callable[[str, int, Path], Servable] = Servable,
    ):
        self.sources = {source.name: source for source in sources}
        self._loader = loader
        self._versions: dict[str, dict[int, VersionStatus]] = {name: {} for name in self.sources}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._poller: threading.Thread | None = None

    def poll(self) -> None:
        """Loads the wanted versions that are new on disk, then unloads the unwanted ones."""
        for source in list(self.sources.values()):
            self._poll_model(source)

    def reconfigure(self, sources: list[ModelSource]) -> None:
        """Serves `sources` from now on (a re-read model config file): models no longer
        listed are unloaded now, new ones are loaded by the next `poll`, and changed
        policies and labels apply from then on. Call it from the polling thread."""
        wanted = {source.name: source for source in sources}
        with self._lock:
            removed = [name for name in self._versions if name not in wanted]
            for name in removed:
                del self._versions[name]  # running requests keep their servables
            for name in wanted:
                self._versions.setdefault(name, {})
            self.sources = wanted
        for name in removed:
            LOG.info("Unloading all versions of model %s: no longer configured", name)

    def start_polling(
        self,
        interval_seconds: float,
        read_config: Callable[[], list[ModelSource]] | None = None,
        config_interval_seconds: float = 0,
    ) -> None:
        """Polls the base paths every `interval_seconds` (0: never), and re-reads the
        model config every `config_interval_seconds` (0: never), in a background thread.

        Args:
            interval_seconds: seconds between polls of the base paths.
            read_config: returns the models a re-read config file lists; a config that
                fails to read is logged and the current one kept.
            config_interval_seconds: seconds between reads of the config.
        """
        reloads = read_config is not None and config_interval_seconds > 0
        if interval_seconds <= 0 and not reloads:
            return
        tick = min(t for t in (interval_seconds, config_interval_seconds) if t > 0)

        def loop() -> None:
            next_poll = next_read = time.monotonic()
            while not self._stopped.wait(tick):
                now = time.monotonic()
                try:
                    if reloads and now >= next_read + config_interval_seconds:
                        next_read = now
                        try:
                            self.reconfigure(read_config())
                        except ValueError as error:
                            LOG.error("Keeping the current model config: %s", error)
                        self.poll()
                    if interval_seconds > 0 and now >= next_poll + interval_seconds:
                        next_poll = now
                        self.poll()
                except Exception:  # a poll must never end polling
                    LOG.exception("polling the model base paths failed")

        self._poller = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stops polling."""
        self._stopped.set()
        if self._poller is not None:
            self._poller.join()

    def _poll_model(self, source: ModelSource) -> None:
        on_disk = _versions_on_disk(source.base_path)
        wanted = source.wanted(list(on_disk))
        statuses = self._versions[source.name]
        for version in sorted(wanted):
            status = statuses.get(version)
            stamp = _stamp(on_disk[version])
            if status is not None and status.state == State.AVAILABLE:
                continue
            if status is not None and status.failed_stamp == stamp:
                continue  # failed before and unchanged since: do not retry every poll
            self._load(source.name, version, on_disk[version], stamp)
        serving_wanted = any(
            statuses[version].state == State.AVAILABLE for version in wanted if version in statuses
        )
        for version, status in list(statuses.items()):
            gone = version not in on_disk
            if (
                status.state == State.AVAILABLE
                and version not in wanted
                and (serving_wanted or gone)
            ):
                self._unload(source.name, version)

    def _load(self, name: str, version: int, path: Path, stamp: float | None) -> None:
        status = VersionStatus(state=State.LOADING)
        with self._lock:
            self._versions[name][version] = status
        LOG.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
        try:
            servable = self._loader(name, version, path)
        except Exception as error:  # anything that stops a load is reported, not raised
            LOG.error("Loading servable: {name: %s version: %d} failed: %s", name, version, error)
            with self._lock:
                self._versions[name][version] = VersionStatus(
                    state=State.END,
                    error_code=grpc.StatusCode.UNKNOWN,
                    error_message=f"{path}: {_first_line(error)}",
                    failed_stamp=stamp,
                )
            return
        with self._lock:
            self._versions[name][version] = VersionStatus(state=State.AVAILABLE, servable=servable)
        LOG.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload(self, name: str, version: int) -> None:
        with self._lock:
            self._versions[name][version].state = State.UNLOADING
        LOG.info("Unloading servable version {name: %s version: %d}", name, version)
        with self._lock:
            # Requests running on it hold their own reference; it is freed after them.
            self._versions[name][version] = VersionStatus(state=State.END)

    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The loaded version a request names: a version, a label, or else the highest.

        Raises:
            ServingError: NOT_FOUND for an unknown model, version or label, or one that
                is not loaded.
        """
        source = self.sources.get(name)
        if source is None:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        if label is not None:
            if label not in source.labels:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Unrecognized servable version label: {label} (model {name})",
                )
            version = source.labels[label]
        with self._lock:
            available = {
                number: status.servable
                for number, status in self._versions[name].items()
                if status.state == State.AVAILABLE
            }
        if version is None:
            if not available:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
                )
            return available[max(available)]
        if version not in available:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return available[version]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionStatus]]:
        """The known versions of a model (or one of them), highest first.

        Raises:
            ServingError: NOT_FOUND for an unknown model or version.
        """
        if name not in self.sources:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        with self._lock:
            known = sorted(self._versions[name].items(), reverse=True)
        if version is not None:
            known = [(number, status) for number, status in known if number == version]
            if not known:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}"
                )
        elif not known:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        return known


def _versions_on_disk(base_path: Path) -> dict[int, Path]:
    """Version number to directory, for the numeric subdirectories that hold a SavedModel
    (exports in progress have other names, so they are never seen half written)."""
    try:
        children = list(base_path.iterdir())
    except OSError:
        return {}
    return {
        int(child.name): child
        for child in children
        if child.name.isdigit() and (child / "saved_model.pb").is_file()
    }


def _stamp(version_dir: Path) -> float | None:
    try:
        return (version_dir / "saved_model.pb").stat().st_mtime
    except OSError:
        return None
