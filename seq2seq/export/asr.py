"""Speech-recognizer SavedModels that stock TensorFlow Serving runs: audio in, text out.

`export_transcriber` (reached through `seq2seq export --run RUN`, which sees the run's
`task: asr`) writes the next version of a TF Serving model base directory with the
machinery of `seq2seq.export.saved_model` (atomic versions, op check, warm-up
requests). The whole job is in the graph: log-mel front-end, encoder, search, and
characters back to text with a constant table - core TensorFlow ops only.

Signatures:

- `serving_default`: `audio` float32 `[batch, samples]` (16 kHz mono, zero-padded) and
  `audio_length` int32 `[batch]` -> `text` string `[batch]`, `score` float32 `[batch]`;
  the export's search: CTC greedy (beam size 0), or greedy or beam search joint with
  the CTC head's prefix scores (`decoding.ctc_weight`) and a character n-gram language
  model (`decoding.lm_order`, `decoding.lm_weight`; estimated at export from the
  corpus' `lm.txt`, and held in the SavedModel's variables);
- `transcribe_wav`: `wav_bytes` string `[batch]` (16-bit PCM WAV files at 16 kHz) ->
  the same outputs with the same search;
- `greedy`, `ctc_greedy` (the CTC head's best path: no decoder) and `beam_N`
  (`ASR_BEAM_SIZES` and the default): `audio`, `audio_length` -> `text`, `score` with
  that search.

`score` is the sum of the log-probs (CTC greedy), the sum of the joint scores
(greedy) or the length-penalized joint score that ranked the transcript (beam); empty
audio gets "" and 0. Audio beyond `MAX_SECONDS` is not transcribed: clients split long
recordings at silences into pieces of `max_piece_seconds` (`assets/export.json`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from audio.layers import decode_wav_batch
from seq2seq.config import Config
from seq2seq.data import characters
from seq2seq.export.saved_model import (
    check_serving_ops,
    load_weights,
    override_decoding,
    publish_version,
    traced_searches,
    write_assets,
    write_prediction_logs,
)
from seq2seq.models.transcriber import Transcriber
from seq2seq.utils.decoding import BeamSize
from seq2seq.utils.ngram import CharNgramLM, NgramScorer
from seq2seq.utils.precision import dtype_policy

ASR_BEAM_SIZES = (4, 8, 16, 32)
"""Beam sizes that always get a `beam_N` signature (beam size 1 is `greedy`, 0 is
`ctc_greedy`)."""

LM_MIN_COUNT = 6
"""Contexts seen fewer times are pruned from the exported language model: on
`seq2seq prepare asr`'s text, the 7-gram model keeps 177,710 contexts (6.9 MB) instead
of 262,088 (10.2 MB at 3) for 0.01 more bits per character on the dev transcripts."""

MAX_SECONDS = 60.0
"""Audio past this many seconds of an utterance is ignored (bounds a request's memory)."""

_AUDIO = tf.TensorSpec([None, None], tf.float32, name="audio")
_AUDIO_LENGTH = tf.TensorSpec([None], tf.int32, name="audio_length")
_WAV_BYTES = tf.TensorSpec([None], tf.string, name="wav_bytes")


def asr_beam_sizes(default: int) -> list[int]:
    """The beam sizes an export has a signature for: 0 (`ctc_greedy`), 1 (`greedy`),
    `ASR_BEAM_SIZES` and the default one.

    >>> asr_beam_sizes(64)
    [0, 1, 4, 8, 16, 32, 64]
    """
    return sorted({0, 1, default, *ASR_BEAM_SIZES})


def ids_to_text(ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Character ids `[batch, length]` and lengths `[batch]` -> strings `[batch]`."""
    table = tf.constant(
        [
            "" if index < characters.FIRST_CHARACTER_ID else token
            for index, token in enumerate(characters.VOCABULARY)
        ]
    )
    mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
    pieces = tf.where(mask, tf.gather(table, ids), "")
    return tf.strings.reduce_join(pieces, axis=1)


def build_transcriber_module(
    model: Transcriber, config: Config, beam_size: int, lm: CharNgramLM | None = None
) -> tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction]]:
    """Wraps a transcriber in a module with audio and WAV signatures.

    Args:
        model: a built `Transcriber` with its trained weights.
        config: the run's config (`decoding` and the front-end's sample rate).
        beam_size: the search of `serving_default` and `transcribe_wav` (1: greedy, 0:
            CTC greedy).
        lm: the language model of the greedy and beam searches, at `decoding.lm_weight`.
            Default: None.

    Returns:
        `(module, signatures)`, ready for `tf.saved_model.save(module, dir, signatures)`.
    """
    decoding = config.decoding
    sample_rate = model.front_end.sample_rate
    max_samples = int(MAX_SECONDS * sample_rate)
    module = tf.Module()
    # TF Serving's session-based loader finds only variables tracked as tf.Variables, not
    # through the Keras variables that wrap them (DESIGN.md, "Pitfalls").
    module.model_variables = [variable.value for variable in model.variables]
    scorer = NgramScorer(lm) if lm is not None else None
    module.lm_variables = scorer.variables if scorer else []

    def search(audio: tf.Tensor, audio_length: tf.Tensor, beam: BeamSize) -> dict[str, tf.Tensor]:
        """Best transcript of each row; an empty batch gets empty outputs."""
        audio = audio[:, :max_samples]
        audio_length = tf.clip_by_value(audio_length, 0, tf.shape(audio)[1])
        # The encoder cannot run on an empty batch, which a gRPC client may send.
        text, score = tf.cond(
            tf.shape(audio)[0] > 0,
            lambda: search_batch(audio, audio_length, beam),
            lambda: (tf.zeros([0], tf.string), tf.zeros([0])),
        )
        return {"text": text, "score": score}

    def search_batch(audio, audio_length, beam):
        # Greedy and beam searches alike are joint with the CTC head and the language
        # model: the attention decoder alone is far behind them at our training budgets.
        result = model.search(
            audio,
            audio_length,
            beam_size=beam,
            length_penalty=decoding.length_penalty,
            max_length_ratio=decoding.max_length_ratio,
            max_length_offset=decoding.max_length_offset,
            ctc_weight=decoding.ctc_weight,
            lm=scorer,
            lm_weight=decoding.lm_weight,
        )
        lengths = result.lengths[:, 0]
        scores = tf.where(audio_length > 0, result.scores[:, 0], 0.0)
        return ids_to_text(result.ids[:, 0], lengths), scores

    # CTC greedy (0) and greedy (1) are searches of their own; the beams share a trace.
    searches = traced_searches(search, [_AUDIO, _AUDIO_LENGTH], single_beams=(0, 1))

    def audio_function(beam: int) -> tf.types.experimental.ConcreteFunction:
        @tf.function(input_signature=[_AUDIO, _AUDIO_LENGTH])
        def transcribe(audio, audio_length):
            return searches(audio, audio_length, beam=beam)

        return transcribe.get_concrete_function()

    @tf.function(input_signature=[_WAV_BYTES])
    def transcribe_wav(wav_bytes):
        audio, audio_length = decode_wav_batch(wav_bytes, sample_rate)
        return searches(audio, audio_length, beam=beam_size)

    functions = {beam: audio_function(beam) for beam in asr_beam_sizes(beam_size)}
    signatures = {
        "serving_default": functions[beam_size],
        "transcribe_wav": transcribe_wav.get_concrete_function(),
        "greedy": functions[1],
        "ctc_greedy": functions[0],
        **{f"beam_{beam}": functions[beam] for beam in functions if beam > 1},
    }
    return module, signatures


def warmup_audio(sample_rate: int = 16000) -> list[np.ndarray]:
    """Signals that exercise the graph: a chirp (1 s), noise (2.5 s), 0.2 s of silence."""
    rng = np.random.default_rng(0)
    t = np.arange(sample_rate) / sample_rate
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    noise = 0.05 * rng.standard_normal(int(2.5 * sample_rate))
    silence = np.zeros(sample_rate // 5)
    return [np.asarray(s, np.float32) for s in (chirp, noise, silence)]


def _warmup_requests(signals: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One request per signal and one with all of them (zero-padded)."""
    from seq2seq.data.speech_pipeline import pad_audio

    batches = [[signal] for signal in signals] + [signals]
    requests = []
    for batch in batches:
        audio, lengths = pad_audio(batch)
        requests.append({"audio": audio, "audio_length": lengths})
    return requests


def export_transcriber(
    base_path: str | Path,
    config: Config,
    weights: list[Path],
    beam_size: int | None = None,
    ctc_weight: float | None = None,
    lm_weight: float | None = None,
    length_penalty: float | None = None,
) -> Path:
    """Exports a trained speech recognizer as the next version of a TF Serving model
    base directory (see the module docstring).

    Args:
        base_path: TF Serving model base directory; created if missing.
        config: the run's config; the model computes under its `decoding.dtype_policy`.
        weights: the weights files: one, or several to average (see `load_weights`).
        beam_size: beam size of `serving_default` (0: CTC greedy). Default:
            `decoding.beam_size`.
        ctc_weight: weight of the CTC prefix score in the greedy and beam searches. Default:
            `decoding.ctc_weight`. The export's `assets/config.yaml` records it.
        lm_weight: weight of the language model in the greedy and beam searches (0: none).
            Default: `decoding.lm_weight`; recorded like `ctc_weight`.
        length_penalty: the GNMT length penalty of the beam searches' ranking.
            Default: `decoding.length_penalty`; recorded like `ctc_weight`.

    Returns:
        The new version directory.

    Raises:
        ValueError: bad weights, beam size or weights of the search, a missing language
            model text, or a SavedModel that TF Serving could not run; nothing is left
            in `base_path` then.
    """
    base_path = Path(base_path)
    beam_size = config.decoding.beam_size if beam_size is None else beam_size
    if beam_size < 0:
        raise ValueError(f"beam size must be 0 (CTC greedy) or more, got {beam_size}")
    config = override_decoding(
        config,
        {
            "ctc_weight": ("--ctc-weight", ctc_weight),
            "lm_weight": ("--lm-weight", lm_weight),
            "length_penalty": ("--length-penalty", length_penalty),
        },
    )
    lm, lm_info = language_model(config) if config.decoding.lm_weight > 0.0 else (None, None)
    with dtype_policy(config.decoding.dtype_policy):
        model = Transcriber(config.model)
        model.build()
    load_weights(model, weights)
    module, signatures = build_transcriber_module(model, config, beam_size, lm)
    sample_rate = model.front_end.sample_rate
    info = {
        "task": "asr",
        "sample_rate": sample_rate,
        "max_seconds": MAX_SECONDS,
        "max_piece_seconds": config.decoding.max_piece_seconds,
        "beam_size": beam_size,
        "beam_sizes": asr_beam_sizes(beam_size),
        "ctc_weight": config.decoding.ctc_weight,
        "lm": lm_info,
        "vocabulary": list(characters.VOCABULARY),
        "dtype_policy": config.decoding.dtype_policy,
    }
    signals = warmup_audio(sample_rate)

    def write(directory: Path) -> None:
        tf.saved_model.save(module, str(directory), signatures=signatures)
        write_assets(directory, config, info)
        write_prediction_logs(directory, base_path.name, _warmup_requests(signals))
        check_serving_ops(directory)
        _check_transcribes(directory, signals)

    return publish_version(base_path, write)


def language_model_texts(config: Config) -> dict[Path, str]:
    """The language-model texts of a speech config, by path: `data.dir/lm.txt`, and the
    `lm.txt` beside each other training TSV (`data.train`) that has one (a corpus
    of `seq2seq prepare asr --data-dir ...`) and holds a sentence the texts before it
    lack: a corpus made from sentences of the first (another prosody draw, `--text`
    of some of its lines) would count them twice.

    Raises:
        ValueError: naming a text that cannot be read.
    """
    from seq2seq.data.speech import LM_TEXT

    data_dir = Path(config.data.dir)
    first = data_dir / LM_TEXT
    texts = {first: _read_language_model_text(first)}
    known = set(texts[first].splitlines())
    for name in config.data.train_files:
        # normpath: export.json records `data/phrases/...`, not `data/asr-en/../phrases/...`
        path = Path(os.path.normpath(data_dir / name)).parent / LM_TEXT
        if path in texts or not path.is_file():
            continue  # a training TSV's own corpus need not have one
        text = _read_language_model_text(path)
        sentences = set(text.splitlines())
        if not sentences <= known:
            known |= sentences
            texts[path] = text
    return texts


def _read_language_model_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(
            f"{path}: cannot read the language model's text ({error.strerror}); run "
            "`seq2seq prepare asr`, or export with --lm-weight 0"
        ) from None


def language_model(config: Config) -> tuple[CharNgramLM, dict]:
    """The character n-gram model of `decoding.lm_order` estimated from the
    sentences of `language_model_texts`, and what `export.json` records of it.

    Raises:
        ValueError: naming the text when it is missing or empty.
    """
    import hashlib

    sentences, texts = [], []
    for path, text in language_model_texts(config).items():
        lines = [characters.encode(line) for line in text.splitlines()]
        sentences += lines
        texts.append(
            {
                "path": str(path),
                "sha1": hashlib.sha1(text.encode()).hexdigest(),
                "sentences": len(lines),
            }
        )
    if not any(sentences):
        raise ValueError(f"{texts[0]['path']}: no text for the language model")
    order = config.decoding.lm_order
    lm = CharNgramLM.estimate(
        sentences, order, characters.VOCAB_SIZE, characters.BOS_ID, characters.EOS_ID,
        LM_MIN_COUNT,
    )  # fmt: skip
    info = {
        "order": order,
        "weight": config.decoding.lm_weight,
        "min_count": LM_MIN_COUNT,
        "contexts": len(lm.keys),
        "texts": texts,
        "sentences": len(sentences),
    }
    return lm, info


def _check_transcribes(export_dir: Path, signals: list[np.ndarray]) -> None:
    """Loads a SavedModel back and transcribes `signals` with `serving_default`.

    Raises:
        ValueError: when the outputs do not have one string and one score per signal.
    """
    from seq2seq.data.speech_pipeline import pad_audio

    audio, lengths = pad_audio(signals)
    outputs = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        audio=tf.constant(audio), audio_length=tf.constant(lengths)
    )
    shapes = {name: tuple(outputs[name].shape) for name in ("text", "score")}
    if shapes != {"text": (len(signals),), "score": (len(signals),)}:
        raise ValueError(f"{export_dir}: serving_default gave outputs of shapes {shapes}")
