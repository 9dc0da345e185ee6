"""From a prepared speech corpus to training batches: padded audio, lengths, characters.

A corpus is what `seq2seq prepare asr` writes under `data/asr-en/`: TSV files of
`path<TAB>transcript<TAB>seconds<TAB>voice` whose paths are relative to the TSV's
folder (16 kHz mono 16-bit WAV). Transcripts become character ids up front; the
`tf.data` pipeline then shuffles file names, loads each file (`audio.io.load_audio`)
and augments it (`audio.augment.augment_waveform`: speed perturbation, noise at a
random SNR; or, for a fraction of them, noise alone with an empty transcript) in NumPy
through `tf.numpy_function` - fine in a training input pipeline,
never in an exported model - and batches utterances of similar length together, so
that a batch holds about `batch_seconds` of padded audio whatever its lengths.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audio.augment import augment_waveform, background_noise
from audio.io import AudioError, load_audio
from seq2seq.config import WaveAugmentConfig
from seq2seq.data import characters


@dataclasses.dataclass
class Utterance:
    """One line of a speech TSV: an audio file and its transcript."""

    path: Path
    transcript: str
    seconds: float = 0.0  # 0 when the TSV does not say
    voice: str = ""


def read_speech_tsv(path: str | Path) -> list[Utterance]:
    """The utterances of a `path<TAB>transcript[<TAB>seconds[<TAB>voice]]` file.

    Relative paths are taken from the TSV's folder; a header line (first field `path`),
    blank lines and lines without a transcript column are skipped.

    Raises:
        ValueError: naming the file when it cannot be read.
    """
    path = Path(path)
    utterances = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    for number, line in enumerate(lines):
        fields = line.split("\t")
        if len(fields) < 2 or (number == 0 and fields[0] == "path"):
            continue
        try:
            seconds = float(fields[2]) if len(fields) > 2 and fields[2] else 0.0
        except ValueError:
            seconds = 0.0
        voice = fields[3] if len(fields) > 3 else ""
        utterances.append(Utterance(path.parent / fields[0], fields[1], seconds, voice))
    return utterances


def pad_audio(signals: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mono signals as one zero-padded float32 `[batch, longest]` array and int32 lengths.

    >>> audio, lengths = pad_audio([np.ones(3), np.ones(1)])
    >>> audio.tolist(), lengths.tolist()
    ([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], [3, 1])
    """
    lengths = np.array([len(s) for s in signals], np.int32)
    audio = np.zeros((len(signals), int(lengths.max(initial=0))), np.float32)
    for row, signal in enumerate(signals):
        audio[row, : len(signal)] = signal
    return audio, lengths


def bucket_batch_sizes(
    bucket_seconds: Sequence[float], batch_seconds: float, longest_seconds: float
) -> list[int]:
    """Utterances per batch in each length bucket: `batch_seconds` of padded audio,
    counted at the bucket's upper bound (`longest_seconds` for the last, open bucket).

    >>> bucket_batch_sizes([2.0, 4.0], 16.0, 10.0)
    [8, 4, 1]
    """
    uppers = [*bucket_seconds, max(longest_seconds, bucket_seconds[-1])]
    return [max(1, int(batch_seconds // upper)) for upper in uppers]


def encode_utterances(
    utterances: Sequence[Utterance],
    max_seconds: float | None = None,
    max_chars_per_second: float | None = None,
) -> tuple[list[Utterance], list[list[int]]]:
    """The utterances worth training on, with their character ids.

    Skipped: empty transcripts (after normalization), utterances longer than
    `max_seconds`, and those with more characters than `max_chars_per_second *
    seconds` (too fast for the encoder's frame rate: CTC has no alignment for them).
    """
    kept, ids = [], []
    for utterance in utterances:
        encoded = characters.encode(utterance.transcript)
        if not encoded:
            continue
        if max_seconds and utterance.seconds > max_seconds:
            continue
        if max_chars_per_second and utterance.seconds:
            if len(encoded) > max_chars_per_second * utterance.seconds:
                continue
        kept.append(utterance)
        ids.append(encoded)
    return kept, ids


def _loader(sample_rate: int, augment: WaveAugmentConfig | None):
    """The NumPy function that loads (and augments) one file for `tf.numpy_function`."""

    def load(path: bytes, seed: np.int64, noise_only: np.bool_) -> np.ndarray:
        name = path.decode("utf-8", errors="replace")
        try:
            signal = load_audio(name, sample_rate)
        except AudioError as error:  # skipped by the pipeline: a bad file is no reason to stop
            warnings.warn(f"skipping a training file: {error}", stacklevel=1)
            return np.zeros(0, np.float32)
        rng = np.random.default_rng(int(seed) & 0x7FFFFFFFFFFFFFFF)
        if noise_only:  # as long as the utterance it stands in for
            return background_noise(len(signal), rng)
        if augment is not None and augment.enabled:
            signal = augment_waveform(
                signal,
                rng,
                sample_rate=sample_rate,
                speeds=augment.speeds,
                noise_probability=augment.noise_probability,
                snr_db=tuple(augment.snr_db),
            )
        return np.ascontiguousarray(signal, np.float32)

    return load


def training_batches(
    utterances: Sequence[Utterance],
    ids: Sequence[Sequence[int]],
    batch_seconds: float,
    bucket_seconds: Sequence[float],
    max_seconds: float,
    sample_rate: int = 16000,
    augment: WaveAugmentConfig | None = None,
    shuffle_buffer: int = 0,
    seed: int | None = None,
):
    """A `tf.data.Dataset` of `({"audio", "audio_length", "target_in"}, target_out)`.

    `audio` is float32 `[batch, samples]` zero-padded, `audio_length` int32 `[batch]`,
    `target_in` BOS + characters and `target_out` characters + EOS (0 pads both).
    Utterances are bucketed by their length after augmentation; a batch of bucket
    `(lower, upper]` seconds holds `batch_seconds // upper` utterances. With
    `shuffle_buffer`, files are reshuffled (and re-augmented) every epoch.

    Args:
        utterances, ids: from `encode_utterances`.
        batch_seconds: padded audio seconds per batch.
        bucket_seconds: upper bounds of the length buckets, increasing.
        max_seconds: the longest utterance (after a slow-down), for the last bucket.
        sample_rate: of the model's input.
        augment: waveform augmentation, or None.
        shuffle_buffer: files shuffled at a time (0: in order).
        seed: of the shuffle and of the augmentation.
    """
    import tensorflow as tf  # here only: decoding clients use this module without it

    if len(utterances) != len(ids) or not utterances:
        raise ValueError("training_batches needs as many id sequences as utterances, and some")
    paths = tf.constant([str(u.path) for u in utterances])
    targets = tf.RaggedTensor.from_row_lengths(
        np.concatenate([np.asarray(row, np.int32) for row in ids]),
        np.array([len(row) for row in ids], np.int64),
    )
    dataset = tf.data.Dataset.from_tensor_slices((paths, targets))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip((dataset, seeds))
    load = _loader(sample_rate, augment)
    noise_only_probability = augment.noise_only_probability if augment and augment.enabled else 0

    def load_example(example, example_seed):
        path, target = example
        noise_only = tf.constant(False)
        if noise_only_probability > 0:
            draw = tf.random.stateless_uniform([], tf.stack([example_seed, 1]))
            noise_only = draw < noise_only_probability
            target = tf.cond(noise_only, lambda: target[:0], lambda: target)
        audio = tf.numpy_function(
            load, [path, example_seed, noise_only], tf.float32, stateful=False
        )
        audio.set_shape([None])
        return audio, tf.shape(audio)[0], target

    dataset = dataset.map(load_example, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.filter(lambda audio, length, target: length > 0)
    slowest = min(augment.speeds) if augment is not None and augment.enabled else 1.0
    sizes = bucket_batch_sizes(bucket_seconds, batch_seconds, max_seconds / slowest)
    dataset = dataset.bucket_by_sequence_length(
        lambda audio, length, target: length,
        bucket_boundaries=[int(s * sample_rate) + 1 for s in bucket_seconds],
        bucket_batch_sizes=sizes,
    )

    def to_model_inputs(audio, audio_length, target):
        batch = tf.shape(target)[0]
        target_in = tf.concat([tf.fill([batch, 1], characters.BOS_ID), target], axis=1)
        # EOS goes right after the last character of each row, before the padding.
        target_lengths = tf.reduce_sum(tf.cast(target != characters.PAD_ID, tf.int32), axis=1)
        eos = tf.one_hot(target_lengths, tf.shape(target)[1] + 1, dtype=tf.int32)
        target_out = tf.pad(target, [[0, 0], [0, 1]]) + eos * characters.EOS_ID
        inputs = {"audio": audio, "audio_length": audio_length, "target_in": target_in}
        return inputs, target_out

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def load_utterances(
    utterances: Sequence[Utterance], sample_rate: int = 16000
) -> tuple[list[np.ndarray], list[str]]:
    """The audio and normalized transcripts of utterances (dev sets); files that do not
    load and empty transcripts are skipped with a warning."""
    signals, transcripts = [], []
    for utterance in utterances:
        transcript = characters.normalize_transcript(utterance.transcript)
        if not transcript:
            continue
        try:
            signals.append(load_audio(utterance.path, sample_rate))
        except AudioError as error:
            warnings.warn(f"skipping: {error}", stacklevel=2)
            continue
        transcripts.append(transcript)
    return signals, transcripts


def length_batches(lengths: Sequence[int], max_samples: int, max_rows: int = 64) -> list[list[int]]:
    """Indices of signals grouped into batches of similar length for decoding: sorted by
    length, each batch at most `max_rows` rows and `max_samples` padded samples (a
    longer signal gets a batch of its own).

    >>> length_batches([5, 1, 4, 2], max_samples=10)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    batches: list[list[int]] = []
    for index in order:
        if batches:
            batch = batches[-1]
            rows = len(batch) + 1
            if rows <= max_rows and rows * lengths[index] <= max_samples:
                batch.append(index)
                continue
        batches.append([index])
    return batches
