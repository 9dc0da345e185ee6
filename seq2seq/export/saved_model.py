"""Translator SavedModels that stock TensorFlow Serving runs: text in, text out.

`export_run` turns a training run directory into the next version of a TF Serving model
base directory. The SavedModel is a `tf.Module` whose signatures hold the whole job:

- SentencePiece tokenization with tensorflow-text ops (which TF Serving links in): the
  target-language tag in front, EOS at the end, at most `max_source_tokens` tokens;
- greedy or beam search (`Translator.search`, core TensorFlow ops only);
- detokenization with the same SentencePiece model.

Signatures, all with input `text` (tf.string `[batch]`):

- `serving_default`: beam search with the export's beam size -> `text`, `score`;
- `greedy`, `beam_2`, `beam_3`, `beam_4`, `beam_5`, `beam_8` (and `beam_N` for a default
  beam size N not among them): the same outputs with that search, so that a client picks
  one by name. `score` is the sum of the log-probs (greedy) or the length-penalized score
  that ranked the hypothesis (beam); 0 for a blank text, whose translation is "";
- `n_best` (when the export's beam size is above 1): `serving_default`'s search ->
  every hypothesis of its beam, best first: `text` `[batch, N]` and `score` `[batch, N]`
  for beam size N ("" and -inf where a text has fewer than N finished hypotheses);
- `align`: greedy -> `source_tokens` `[batch, S]`, `target_tokens` `[batch, T]` (subword
  pieces, "" as padding) and `attention` float32 `[batch, T, S]`.

`assets/` holds `spm.model`, `config.yaml` (the run's, with the export's overrides of its
`decoding` section) and `export.json` (direction, token limit, beam sizes);
`assets.extra/tf_serving_warmup_requests` holds warm-up requests in TF Serving's format. An
export is written into a hidden temporary directory, checked (`check_serving_ops`, then a
translation), and only then renamed to its version number, so a polling server never sees
half a model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text
import yaml
from tensorflow.core.framework import op_def_pb2
from tensorflow.core.protobuf import saved_model_pb2

# Not public API, but the only way to list the ops a plugin library registers.
from tensorflow.python.client import pywrap_tf_session

from seq2seq.config import Config, TranslationDecodingConfig, config_from_dict, validate
from seq2seq.data.pipeline import SubwordTokenizer
from seq2seq.encoders import RNNEncoder
from seq2seq.export import EXPORT_INFO, export_info, next_version, resolve_model_dir
from seq2seq.models.translator import EOS_ID, PAD_ID, Translator
from seq2seq.utils import precision
from seq2seq.utils.decoding import BeamSize

BEAM_SIZES = (2, 3, 4, 5, 8)
"""Beam sizes that always get a `beam_N` signature (beam size 1 is `greedy`)."""

MAX_SOURCE_TOKENS = 256
"""Upper bound on the source length (tag and EOS included), whatever the training length."""

# Python-function ops cannot run outside the Python process that made them; cuDNN ops have
# no CPU kernel. Both are in `tf.raw_ops`, so the core-op test alone would let them pass.
_FORBIDDEN_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_FORBIDDEN_PREFIX = "Cudnn"

_TEXT = tf.TensorSpec([None], tf.string, name="text")

WARMUP_SENTENCES = {
    "en": [
        "Hello.",
        "The red cat sees three dogs.",
        "In the beginning, God created the heavens and the earth.",
        "",
    ],
    "fr": [
        "Bonjour.",
        "Le chat rouge voit trois chiens.",
        "Au commencement, Dieu créa les cieux et la terre.",
        "",
    ],
}
"""Warm-up requests per source language (English for others: they only exercise the graph)."""


def build_serving_module(
    model: Translator,
    spm_model: bytes,
    tag_id: int,
    max_source_tokens: int,
    decoding: TranslationDecodingConfig,
    beam_size: int,
) -> tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction]]:
    """Wraps a translator and its SentencePiece model in a module with text signatures.

    Args:
        model: a built `Translator` with its trained weights.
        spm_model: the bytes of the SentencePiece model the translator was trained with.
        tag_id: the id of the target-language tag (`<2fr>`) put in front of every source.
        max_source_tokens: sources are cut to this many tokens, tag and EOS included, so
            that one huge input cannot exhaust the server's memory.
        decoding: length penalty and maximum output length of the searches.
        beam_size: the search of `serving_default` (1: greedy).

    Returns:
        `(module, signatures)`, ready for `tf.saved_model.save(module, dir, signatures)`.
    """
    if max_source_tokens < 3:
        raise ValueError(f"max_source_tokens must leave room for a token, got {max_source_tokens}")
    module = tf.Module()
    # TF Serving's session-based loader finds only variables tracked as tf.Variables, not
    # through the Keras variables that wrap them (DESIGN.md, "Pitfalls").
    module.model_variables = [variable.value for variable in model.variables]
    module.tokenizer = tokenizer = tensorflow_text.SentencepieceTokenizer(model=spm_model)

    def encode(text: tf.Tensor) -> tf.Tensor:
        """`[batch]` strings -> `[batch, length]` 0-padded `<2tgt> subwords EOS` ids."""
        pieces = tokenizer.tokenize(text)[:, : max_source_tokens - 2]
        batch_size = tf.shape(text)[0]
        tag = tf.RaggedTensor.from_tensor(tf.fill([batch_size, 1], tag_id))
        eos = tf.RaggedTensor.from_tensor(tf.fill([batch_size, 1], EOS_ID))
        return tf.concat([tag, pieces, eos], axis=1).to_tensor(PAD_ID)

    def search(text: tf.Tensor, beam: BeamSize, n_best: int = 1) -> tuple[tf.Tensor, ...]:
        """The `n_best` best hypotheses of each text: `(source, ids [batch, n_best,
        length], lengths [batch, n_best], scores [batch, n_best], attention)`; a blank text
        gets hypotheses of length 0 and score 0."""
        # The encoder cannot run on an empty batch, which a gRPC client may send.
        return tf.cond(
            tf.size(text) > 0,
            lambda: search_batch(text, beam, n_best),
            lambda: (
                tf.zeros([0, 0], tf.int32),
                tf.zeros([0, n_best, 0], tf.int32),
                tf.zeros([0, n_best], tf.int32),
                tf.zeros([0, n_best]),
                tf.zeros([0, n_best, 0, 0]),
            ),
        )

    def search_batch(text: tf.Tensor, beam: BeamSize, n_best: int) -> tuple[tf.Tensor, ...]:
        """`search` for a batch of at least one text."""
        source = encode(text)
        result = model.search(
            source,
            beam_size=beam,
            length_penalty=decoding.length_penalty,
            max_length_ratio=decoding.max_length_ratio,
            max_length_offset=decoding.max_length_offset,
            n_best=n_best,
            no_repeat_ngram_size=decoding.no_repeat_ngram_size,
        )
        # The model would answer a lone tag with something; a blank text has no translation.
        blank = tf.equal(tf.strings.length(tf.strings.strip(text)), 0)[:, tf.newaxis]
        lengths = tf.where(blank, 0, result.lengths)
        scores = tf.where(blank, 0.0, result.scores)
        width = tf.reduce_max(lengths)
        ids, attention = result.ids[:, :, :width], result.attention[:, :, :width]
        return source, ids, lengths, scores, attention

    searches = traced_searches(search, [_TEXT], single_beams=(1,))

    def translate_function(beam: int) -> tf.types.experimental.ConcreteFunction:
        """The `text` -> `text`, `score` signature of a search (`beam` 1: greedy)."""

        @tf.function(input_signature=[_TEXT])
        def translate(text: tf.Tensor) -> dict[str, tf.Tensor]:
            _, ids, lengths, scores, _ = searches(text, beam=beam)
            return {"text": detokenize(ids[:, 0], lengths[:, 0]), "score": scores[:, 0]}

        return translate.get_concrete_function()

    def detokenize(ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """`[..., length]` ids, each row `lengths` long -> `[...]` strings."""
        flat_lengths = tf.reshape(lengths, [-1])
        flat_ids = tf.reshape(ids, [tf.size(flat_lengths), -1])
        texts = tokenizer.detokenize(tf.RaggedTensor.from_tensor(flat_ids, lengths=flat_lengths))
        return tf.reshape(texts, tf.shape(lengths))

    # Every hypothesis of the default beam search, best first; one more trace of it.
    n_best_search = tf.function(
        functools.partial(search, beam=beam_size, n_best=beam_size), input_signature=[_TEXT]
    )

    @tf.function(input_signature=[_TEXT])
    def n_best(text: tf.Tensor) -> dict[str, tf.Tensor]:
        """`text` [batch, n] and `score` [batch, n]: the hypotheses of `serving_default`'s
        search, best first ("" and -inf where a text has fewer than n)."""
        _, ids, lengths, scores, _ = n_best_search(text)
        texts = detokenize(ids, lengths)
        return {"text": tf.where(tf.math.is_finite(scores), texts, ""), "score": scores}

    @tf.function(input_signature=[_TEXT])
    def align(text: tf.Tensor) -> dict[str, tf.Tensor]:
        """Greedy search with its tokens and attention, "" and 0 as padding."""
        source, ids, lengths, _, attention = searches(text, beam=1)
        ids, lengths, attention = ids[:, 0], lengths[:, 0], attention[:, 0]
        target_mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        return {
            "source_tokens": tf.where(source != PAD_ID, tokenizer.id_to_string(source), ""),
            "target_tokens": tf.where(target_mask, tokenizer.id_to_string(ids), ""),
            "attention": tf.where(target_mask[:, :, tf.newaxis], attention, 0.0),
        }

    functions = {beam: translate_function(beam) for beam in beam_sizes(beam_size)}
    signatures = {
        "serving_default": functions[beam_size],
        "greedy": functions[1],
        **{f"beam_{beam}": functions[beam] for beam in functions if beam > 1},
        "align": align.get_concrete_function(),
    }
    if beam_size > 1:
        signatures["n_best"] = n_best.get_concrete_function()
    return module, signatures


def traced_searches(
    search: Callable[..., Any], input_signature: list[tf.TensorSpec], single_beams: tuple[int, ...]
) -> Callable[..., Any]:
    """`search(*inputs, beam)` as `tf.function`s that every signature of an export shares:
    one trace per beam size of `single_beams` (Python ints, whose graphs skip what a
    single beam does not need), and one for every other beam size, passed as a scalar
    int32 tensor (see `seq2seq.utils.decoding`).

    Args:
        search: `search(*inputs, beam)`, graph code.
        input_signature: the specs of `inputs`.
        single_beams: the beam sizes traced on their own.

    Returns:
        `run(*inputs, beam)` for a Python int `beam`.
    """
    singles = {
        beam: tf.function(functools.partial(search, beam=beam), input_signature=input_signature)
        for beam in single_beams
    }
    beams = tf.function(
        search, input_signature=[*input_signature, tf.TensorSpec([], tf.int32, name="beam")]
    )

    def run(*inputs: tf.Tensor, beam: int) -> Any:
        if beam in singles:
            return singles[beam](*inputs)
        return beams(*inputs, tf.constant(beam))

    return run


def beam_sizes(default: int) -> list[int]:
    """The beam sizes an export has a signature for: 1 (`greedy`), `BEAM_SIZES` (`beam_N`)
    and the default one.

    Args:
        default: the beam size of `serving_default`.
    """
    return sorted({1, default, *BEAM_SIZES})


def check_serving_ops(export_dir: str | Path) -> None:
    """Refuses a SavedModel that stock TensorFlow Serving could not run.

    Every op of every graph and graph function in `saved_model.pb` must be a core
    TensorFlow op (`tf.raw_ops`) or a tensorflow-text op, and none may be a Python
    function (`PyFunc`, `EagerPyFunc`, ...) or a cuDNN op.

    Args:
        export_dir: a SavedModel directory.

    Raises:
        ValueError: naming the unsupported op(s).
        OSError: when `saved_model.pb` cannot be read.
    """
    used = saved_model_ops(export_dir)
    allowed = set(dir(tf.raw_ops)) | tensorflow_text_ops()
    unsupported = sorted(
        op
        for op in used
        if op in _FORBIDDEN_OPS or op.startswith(_FORBIDDEN_PREFIX) or op not in allowed
    )
    if unsupported:
        raise ValueError(
            f"{export_dir}: TensorFlow Serving cannot run unsupported op(s): "
            + ", ".join(unsupported)
        )


def saved_model_ops(export_dir: str | Path) -> set[str]:
    """The op types of every graph and graph function in `saved_model.pb`
    (calls of the SavedModel's own functions are not op types).

    Raises:
        OSError: when `saved_model.pb` cannot be read.
    """
    saved_model = saved_model_pb2.SavedModel.FromString(
        (Path(export_dir) / "saved_model.pb").read_bytes()
    )
    ops, functions = set(), set()
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def tensorflow_text_ops() -> frozenset[str]:
    """The names of the ops that tensorflow-text's op libraries register."""
    names = set()
    for library in (Path(tensorflow_text.__file__).parent / "python" / "ops").glob("*.so"):
        handle = pywrap_tf_session.TF_LoadLibrary(str(library))  # already loaded: a lookup
        try:
            op_list = op_def_pb2.OpList.FromString(pywrap_tf_session.TF_GetOpList(handle))
        finally:
            pywrap_tf_session.TF_DeleteLibraryHandle(handle)
        names.update(op.name for op in op_list.op)
    return frozenset(names)


def write_warmup_requests(export_dir: str | Path, model_name: str, sentences: list[str]) -> Path:
    """Writes `assets.extra/tf_serving_warmup_requests`, which TF Serving replays on load.

    One `PredictionLog` per sentence and one with all of them, so that both a single
    sentence and a batch are warm.

    Args:
        export_dir: the SavedModel directory.
        model_name: the model's name in TF Serving (its base directory's name).
        sentences: source texts to translate.

    Returns:
        The path of the file written.
    """
    batches = [[sentence] for sentence in sentences] + [sentences]
    requests = [{"text": tf.make_tensor_proto(batch, dtype=tf.string)} for batch in batches]
    return write_prediction_logs(export_dir, model_name, requests)


def write_prediction_logs(
    export_dir: str | Path,
    model_name: str,
    requests: list[dict[str, tf.Tensor]],
    signature_name: str = "serving_default",
) -> Path:
    """Writes `assets.extra/tf_serving_warmup_requests`: one `PredictionLog` per request.

    Args:
        export_dir: the SavedModel directory.
        model_name: the model's name in TF Serving (its base directory's name).
        requests: each a mapping of input name to a `TensorProto` (or a value that
            `tf.make_tensor_proto` takes).
        signature_name: the signature the requests call.

    Returns:
        The path of the file written.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def publish_version(base_path: str | Path, write: Callable[[Path], None]) -> Path:
    """Writes a model version atomically: `write(directory)` fills a hidden temporary
    directory in `base_path`, which is then renamed to the next version number, so that
    a polling server never sees half a model. Should `write` raise, nothing is left.

    Args:
        base_path: TF Serving model base directory; created if missing.
        write: saves, completes and checks the SavedModel in the directory it is given.

    Returns:
        The new version directory, `base_path/<version>`.
    """
    base_path = Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_exports(base_path)
    # Hidden and not numeric: TF Serving ignores it until the rename.
    temporary = base_path / f".export-tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        write(temporary)
        version = base_path / str(next_version(base_path))
        os.rename(temporary, version)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return version


def _remove_abandoned_exports(base_path: Path) -> None:
    """Removes the temporary directories of exports whose process is gone (killed)."""
    for directory in base_path.glob(".export-tmp-*"):
        pid = directory.name.removeprefix(".export-tmp-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(directory, ignore_errors=True)


WeightsFiles = str | Path | Sequence[str | Path]
"""One weights file, or several to average."""


def weights_files(run_dir: Path, weights: WeightsFiles | None) -> list[Path]:
    """The weights files an export loads: `weights` (one path or several), or the run's
    `best.weights.h5` when None."""
    if weights is None:
        return [run_dir / "best.weights.h5"]
    if isinstance(weights, (str, Path)):
        return [Path(weights)]
    return [Path(path) for path in weights]


_SEED_STATE = "seed_generator_state"
"""In the name of the variables of `keras.random.SeedGenerator`s (dropout, SpecAugment)."""


def assign_exported_variables(model: Any, path: str | Path) -> None:
    """Assigns the variables of a `seq2seq export` SavedModel (kept in the order of
    `model.variables` as `model_variables`) to the built `model`.

    Args:
        model: a built model of the same model section (random-number states aside),
            or with more encoder layers.
        path: a version directory, or a model base directory (highest version).

    Raises:
        ValueError: when `path` is no export of ours or its variables do not fit.
    """
    export_dir = resolve_model_dir(path)
    values = getattr(tf.saved_model.load(str(export_dir)), "model_variables", None)
    if values is None:
        raise ValueError(f"{export_dir}: not a SavedModel of `seq2seq export`")
    # A model with more encoder layers than the exported one starts its new layers
    # adding nothing (`RNNEncoder.grow`); they have no exported values.
    new = set()
    if isinstance(getattr(model, "encoder", None), RNNEncoder):
        trained = load_run(export_dir / "assets").model
        new = {id(v) for v in model.encoder.grow(trained.encoder_layers)}
    # Random-number states are not learned, and a model may have more or fewer of them
    # than the exported one (SpecAugment switched on or off).
    variables = [v for v in model.variables if _SEED_STATE not in v.path and id(v) not in new]
    values = [value for value in values if _SEED_STATE not in value.name]
    if len(values) != len(variables):
        raise ValueError(
            f"{export_dir}: it has {len(values)} variables, this model {len(variables)}"
        )
    # A model can fit a trained value to a changed layer (a wider CTC head).
    fit = getattr(model, "warm_start_value", lambda variable, value: value)
    values = [fit(variable, value) for variable, value in zip(variables, values, strict=True)]
    shapes = [tuple(variable.shape) for variable in variables]
    if [tuple(value.shape) for value in values] != shapes:
        raise ValueError(f"{export_dir}: its variables do not have this model's shapes")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(tf.cast(value, variable.dtype))  # exported under another dtype policy


def load_weights(model: Any, files: Sequence[Path]) -> None:
    """Loads one weights file into `model`, or the average of several (checkpoint
    averaging, e.g. a run's last epochs in `checkpoints/`): every floating-point variable
    gets the mean of its values in `files`; the others (random-number states) are not
    averaged. A directory is an export of ours (`assign_exported_variables`).

    Raises:
        ValueError: naming the file that is missing or does not fit the model.
    """
    for path in files:
        if not Path(path).exists():
            raise ValueError(f"{path}: no such weights file")
    totals = [0.0 for _ in model.variables]
    for path in files:
        try:
            if Path(path).is_dir():
                assign_exported_variables(model, path)
            else:
                model.load_weights(path)
        except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
            # h5py's errors do not name the file
            reason = next(iter(str(error).strip().splitlines()), type(error).__name__)
            raise ValueError(f"{path}: cannot load the weights ({reason})") from None
        if len(files) > 1:
            totals = [
                total + np.asarray(variable.numpy(), np.float64)
                for total, variable in zip(totals, model.variables, strict=True)
            ]
    if len(files) == 1:
        return
    for variable, total in zip(model.variables, totals, strict=True):
        if keras.backend.is_float_dtype(variable.dtype):
            variable.assign(tf.cast(total / len(files), variable.dtype))


def load_run(run_dir: str | Path) -> Config:
    """The `Config` saved in a training run directory.

    Args:
        run_dir: a directory written by `seq2seq train`.

    Raises:
        ValueError: when the run has no readable config.
    """
    path = Path(run_dir) / "config.yaml"
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read the run's config ({error.strerror})") from error
    return config_from_dict(values, str(path))


def override_decoding(config: Config, overrides: dict[str, tuple[str, Any]]) -> Config:
    """`config` with the `decoding` values an export's command line gave, validated.

    Args:
        config: the run's config.
        overrides: `{decoding key: (flag, value)}`; a value of None was not given.

    Raises:
        ValueError: naming the flags, for a value the config would refuse.
    """
    given = {key: value for key, (_, value) in overrides.items() if value is not None}
    if not given:
        return config
    config = dataclasses.replace(config, decoding=dataclasses.replace(config.decoding, **given))
    validate(config, " and ".join(overrides[key][0] for key in given))
    return config


def write_assets(directory: Path, config: Config, info: dict[str, Any]) -> Path:
    """Writes an export's `assets/config.yaml` (the config it was made with, its
    `serving_default` beam size included, so that exporting the export again keeps it)
    and `assets/export.json` (`info`) into the SavedModel `directory`; returns `assets/`."""
    decoding = dataclasses.replace(config.decoding, beam_size=info["beam_size"])
    config = dataclasses.replace(config, decoding=decoding)
    assets = directory / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "config.yaml").write_text(
        yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8"
    )
    (assets / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return assets


def export_run(
    run_dir: str | Path,
    base_path: str | Path,
    weights: WeightsFiles | None = None,
    direction: str | None = None,
    beam_size: int | None = None,
    ctc_weight: float | None = None,
    lm_weight: float | None = None,
    length_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    dtype_policy: str | None = None,
) -> Path:
    """Exports a trained translator as the next version of a TF Serving model base dir.

    A run of `task: asr` is a speech recognizer: it goes to
    `seq2seq.export.asr.export_transcriber` (`direction` must then be None).

    Args:
        run_dir: training run directory (`config.yaml`, `spm.model`, weights), or an
            export of ours (a version or model base directory), whose assets and
            variables are then exported again, with this code and these settings.
        base_path: TF Serving model base directory; created if missing. Its name is the
            model name in the warm-up requests.
        weights: weights file, or several to average (see `load_weights`). Default:
            `run_dir/best.weights.h5`, or the export that `run_dir` is.
        direction: `source-target` direction to serve, one of the run's
            `data.directions`. Default: the export's when `run_dir` is one, else the
            first of them.
        beam_size: beam size of `serving_default`. Default: the run's
            `decoding.beam_size`.
        ctc_weight, lm_weight: speech recognizers only: `decoding.ctc_weight` and
            `decoding.lm_weight` of the export's greedy and beam searches. Default: the run's.
        length_penalty: `decoding.length_penalty` of the export's beam searches.
            Default: the run's.
        no_repeat_ngram_size: translators only: `decoding.no_repeat_ngram_size` of the
            export's searches. Default: the run's. The export's `assets/config.yaml` records the
            config it was made with.
        dtype_policy: `decoding.dtype_policy`, the Keras dtype policy the export computes
            under ("float32" or "bfloat16"). Default: the run's (float32 unless set).

    Returns:
        The new version directory, `base_path/<version>`.

    Raises:
        ValueError: bad run directory, weights, direction or beam size, or a SavedModel
            that TF Serving could not run; nothing is left in `base_path` then.
    """
    run_dir, base_path = Path(run_dir), Path(base_path)
    exported: dict[str, Any] = {}  # an export's own settings, where they are not its run's
    if run_dir.is_dir() and not (run_dir / "config.yaml").is_file():
        # An export re-exported (new search settings or signatures): its assets hold the
        # run's config and tokenizer, and its variables are the weights.
        try:
            export_dir = resolve_model_dir(run_dir)
        except ValueError:
            pass  # neither: load_run names what is missing
        else:
            run_dir, weights = export_dir / "assets", weights or export_dir
            exported = export_info(export_dir)
    config = load_run(run_dir)
    config = override_decoding(config, {"dtype_policy": ("--dtype-policy", dtype_policy)})
    weights = weights_files(run_dir, weights)
    if config.task == "asr":  # a speech recognizer: seq2seq.export.asr
        translator_flags = {"--direction": direction, "--no-repeat-ngram": no_repeat_ngram_size}
        for flag, value in translator_flags.items():
            if value is not None:
                raise ValueError(f"{run_dir}: {flag} is for translators; this run is task asr")
        from seq2seq.export.asr import export_transcriber

        return export_transcriber(
            base_path, config, weights, beam_size, ctc_weight, lm_weight, length_penalty
        )
    for flag, value in (("--ctc-weight", ctc_weight), ("--lm-weight", lm_weight)):
        if value is not None:
            raise ValueError(f"{run_dir}: {flag} is for speech recognizers, not translators")
    direction = direction or exported.get("direction") or config.data.directions[0]
    beam_size = config.decoding.beam_size if beam_size is None else beam_size
    if direction not in config.data.directions:
        raise ValueError(
            f"{run_dir}: direction {direction} was not trained; "
            f"choose one of {', '.join(config.data.directions)}"
        )
    if beam_size < 1:
        raise ValueError(f"beam size must be at least 1, got {beam_size}")
    config = override_decoding(
        config,
        {
            "length_penalty": ("--length-penalty", length_penalty),
            "no_repeat_ngram_size": ("--no-repeat-ngram", no_repeat_ngram_size),
        },
    )
    source_language, target_language = direction.split("-")
    tokenizer = SubwordTokenizer(run_dir / "spm.model")
    with precision.dtype_policy(config.decoding.dtype_policy):
        model = Translator(tokenizer.vocab_size, config.model)
        model.build()
    load_weights(model, weights)
    max_source_tokens = min(config.data.max_length, MAX_SOURCE_TOKENS)
    module, signatures = build_serving_module(
        model,
        tokenizer.model_file.read_bytes(),
        tokenizer.tag_id(target_language),
        max_source_tokens,
        config.decoding,
        beam_size,
    )
    info = {
        "direction": direction,
        "max_source_tokens": max_source_tokens,
        "beam_size": beam_size,
        "beam_sizes": beam_sizes(beam_size),
        "no_repeat_ngram_size": config.decoding.no_repeat_ngram_size,
        "dtype_policy": config.decoding.dtype_policy,
    }
    sentences = WARMUP_SENTENCES.get(source_language, WARMUP_SENTENCES["en"])

    def write(directory: Path) -> None:
        tf.saved_model.save(module, str(directory), signatures=signatures)
        assets = write_assets(directory, config, info)
        shutil.copyfile(tokenizer.model_file, assets / "spm.model")
        write_warmup_requests(directory, base_path.name, sentences)
        check_serving_ops(directory)
        _check_translates(directory, sentences)

    return publish_version(base_path, write)


def _check_translates(export_dir: Path, sentences: list[str]) -> None:
    """Loads a SavedModel back and translates `sentences` with `serving_default`.

    Args:
        export_dir: the SavedModel directory.
        sentences: source texts.

    Raises:
        ValueError: when the outputs do not have one string and one score per sentence.
    """
    outputs = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        text=tf.constant(sentences)
    )
    shapes = {name: tuple(outputs[name].shape) for name in ("text", "score")}
    if shapes != {"text": (len(sentences),), "score": (len(sentences),)}:
        raise ValueError(f"{export_dir}: serving_default gave outputs of shapes {shapes}")
