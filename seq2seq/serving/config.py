"""What `seq2seq serve` serves and how: models, version policies, labels, batching.

The files are TF Serving's own: a `--model_config_file` is a text-format
`ModelServerConfig` (a `model_config_list` of models, each with a name, a base path, a
version policy and version labels), and a `--batching_parameters_file` is a text-format
`BatchingParameters`. The same files configure a real `tensorflow/serving` container
(see `deploy/`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """One served model: where its versions are and which of them to serve.

    Args:
        name: the model name in request URLs and `ModelSpec`s.
        base_path: the directory whose numeric subdirectories are versions.
        policy: `"latest"`, `"all"` or `"specific"` (TF Serving's version policies).
        latest_versions: with `"latest"`, how many of the highest versions to serve.
        specific_versions: with `"specific"`, the versions to serve.
        labels: version labels (e.g. `{"stable": 1}`) for `/labels/L` and `version_label`.
    """

    name: str
    base_path: Path
    policy: str = "latest"
    latest_versions: int = 1
    specific_versions: tuple[int, ...] = ()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)

    def wanted(self, versions: list[int]) -> set[int]:
        """The versions among `versions` (those on disk) that the policy serves.

        Args:
            versions: the version numbers found under the base path.

        >>> ModelSource("m", Path("."), latest_versions=2).wanted([1, 3, 2])
        {2, 3}
        >>> ModelSource("m", Path("."), policy="specific", specific_versions=(1, 7)).wanted([1, 2])
        {1}
        """
        if self.policy == "all":
            return set(versions)
        if self.policy == "specific":
            return set(versions) & set(self.specific_versions)
        return set(sorted(versions)[-self.latest_versions :])


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters that `seq2seq serve` honours.

    Args:
        max_batch_size: most rows (first-dimension entries) merged into one model call.
        batch_timeout_micros: longest wait for a batch to fill before it runs anyway.
        num_batch_threads: model calls that run at the same time.
        max_enqueued_batches: batches allowed to wait; beyond that requests are refused.
        pad_variable_length_inputs: whether requests whose inputs differ in a non-batch
            dimension are padded (zeros, empty strings) to be merged.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100
    pad_variable_length_inputs: bool = False


def batching_parameters_message() -> type[message.Message]:
    """The class of TF Serving's `tensorflow.serving.BatchingParameters` message.

    tensorflow-serving-api does not ship it: it is declared in the server's
    `tensorflow_serving/servables/tensorflow/session_bundle_config.proto`, so it is
    built here with that file's field names, numbers and types, which is all that the
    text format (a `--batching_parameters_file`) and the wire format need. Fields the
    server added later are unknown here, so a file using them fails to parse.

    >>> params = batching_parameters_message()()
    >>> params.max_batch_size.value = 32
    >>> text_format.MessageToString(params)
    'max_batch_size {\\n  value: 32\\n}\\n'
    """
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=[wrappers.name],
        syntax="proto3",
    )
    batching = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in (
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ):
        batching.field.add(
            name=name,
            number=number,
            label=field.LABEL_OPTIONAL,
            type=field.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    batching.field.add(
        name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64
    )
    batching.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=field.LABEL_OPTIONAL,
        type=field.TYPE_BOOL,
    )
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def read_batching_parameters(path: str | Path | None) -> BatchingOptions:
    """Reads a TF Serving batching parameters file (text format).

    Args:
        path: the file; None for the defaults.

    Raises:
        ValueError: naming the file when it cannot be read, does not parse, or holds a
            value that is not positive.
    """
    if path is None:
        return BatchingOptions()
    message = batching_parameters_message()()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), message)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"{path}: not a batching parameters file ({error})") from None
    values = {
        name: getattr(message, name).value
        for name in (
            "max_batch_size",
            "batch_timeout_micros",
            "num_batch_threads",
            "max_enqueued_batches",
        )
        if message.HasField(name)
    }
    for name, value in values.items():
        if value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{path}: {name} must be positive, not {value}")
    return BatchingOptions(**values, pad_variable_length_inputs=message.pad_variable_length_inputs)


def read_model_config(path: str | Path) -> list[ModelSource]:
    """Reads a TF Serving model config file (a text-format `ModelServerConfig`).

    Relative base paths are taken from the current directory, as TF Serving does.

    Args:
        path: the file.

    Raises:
        ValueError: naming the file and the model when the file does not parse, lists
            no models, repeats a name, or names a base path that is not a directory.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), config)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"{path}: not a model config file ({error})") from None
    if not config.model_config_list.config:
        raise ValueError(f"{path}: model_config_list lists no models")
    sources = [_model_source(model, path) for model in config.model_config_list.config]
    names = [source.name for source in sources]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{path}: model {name!r} is configured twice")
    return sources


def _model_source(model: model_server_config_pb2.ModelConfig, path: str | Path) -> ModelSource:
    """A `ModelSource` from one `ModelConfig` of a config file (named in errors)."""
    where = f"{path}: model {model.name!r}"
    if not model.name or "/" in model.name or ":" in model.name:
        raise ValueError(f"{where}: a model name must be non-empty, without '/' or ':'")
    if model.model_platform not in ("", "tensorflow"):
        raise ValueError(f"{where}: platform {model.model_platform!r} is not served (tensorflow)")
    base_path = Path(model.base_path)
    if not base_path.is_dir():
        raise ValueError(f"{where}: base_path {model.base_path!r} is not a directory")
    policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
    latest = model.model_version_policy.latest.num_versions or 1
    specific = tuple(model.model_version_policy.specific.versions)
    if policy == "specific" and not specific:
        raise ValueError(f"{where}: the specific version policy lists no versions")
    return ModelSource(
        name=model.name,
        base_path=base_path,
        policy=policy,
        latest_versions=latest,
        specific_versions=specific,
        labels=dict(model.version_labels),
    )
