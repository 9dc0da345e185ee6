"""From a prepared corpus to training batches: subword ids, direction tags,
length buckets and token-based batch sizes.

Sentences are tokenized once, up front, with the SentencePiece model of the
corpus (a few seconds for the whole Bible); the `tf.data` pipeline then only
shuffles, buckets by length and pads, so the two CPU cores are left to the
model. Batches hold about `batch_tokens` padded tokens whatever their length:
short sentences come in big batches, long ones in small batches.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece
import tensorflow as tf

from seq2seq.models.translator import BOS_ID, EOS_ID

BUCKET_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128)


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """Pairs of a `left<TAB>right` file; lines without exactly one tab are skipped."""
    pairs = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 2:
                pairs.append((fields[0], fields[1]))
    return pairs


def corpus_pair(data_dir: str | Path) -> str:
    """The language pair of a prepared corpus, e.g. `"en-fr"` (TSV column order)."""
    manifest = Path(data_dir) / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text(encoding="utf-8"))["pair"]
    return Path(data_dir).name.removeprefix("translate-")


def language_tag(language: str) -> str:
    """The source-side token that asks for a target language, e.g. `<2fr>`."""
    return f"<2{language}>"


class SubwordTokenizer:
    """A SentencePiece model with the ids the translator expects."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        if (self.processor.pad_id(), self.processor.bos_id(), self.processor.eos_id()) != (
            0,
            BOS_ID,
            EOS_ID,
        ):
            raise ValueError(f"{model_file}: expected pad=0, bos={BOS_ID}, eos={EOS_ID} ids")

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.processor.encode(texts)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.processor.decode(ids)

    def tag_id(self, language: str) -> int:
        tag = language_tag(language)
        token_id = self.processor.piece_to_id(tag)
        if token_id == self.processor.unk_id():
            raise ValueError(f"{self.model_file}: no {tag} token for target language {language}")
        return token_id


@dataclass
class Direction:
    """Which TSV column is the source and which the target, and the tag."""

    source_column: int
    target_column: int
    target_language: str

    @classmethod
    def parse(cls, direction: str, pair: str) -> Direction:
        languages = pair.split("-")
        source, target = direction.split("-")
        if sorted((source, target)) != sorted(languages):
            raise ValueError(f"direction {direction} is not one of the corpus pair {pair}")
        return cls(languages.index(source), languages.index(target), target)


def source_ids(tokenizer: SubwordTokenizer, texts: list[str], target_language: str):
    """Encoder inputs: `<2tgt> subwords </s>` for every text."""
    tag = tokenizer.tag_id(target_language)
    return [[tag, *ids, EOS_ID] for ids in tokenizer.encode(texts)]


def pad_batch(sequences: list[list[int]]) -> np.ndarray:
    """Id sequences as one 0-padded `[batch, longest]` int32 matrix."""
    batch = np.zeros((len(sequences), max(map(len, sequences), default=0)), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence
    return batch


def encode_pairs(
    pairs: list[tuple[str, str]],
    directions: list[str],
    pair: str,
    tokenizer: SubwordTokenizer,
    max_length: int,
) -> tuple[list[list[int]], list[list[int]]]:
    """Source and target id sequences for every pair in every direction;
    pairs longer than `max_length` on either side are dropped."""
    sources, targets = [], []
    for name in directions:
        direction = Direction.parse(name, pair)
        source = source_ids(
            tokenizer, [p[direction.source_column] for p in pairs], direction.target_language
        )
        target = tokenizer.encode([p[direction.target_column] for p in pairs])
        for s, t in zip(source, target, strict=True):
            if len(s) <= max_length and len(t) + 1 <= max_length and len(t) > 0:
                sources.append(s)
                targets.append(t)
    return sources, targets


def _flat(sequences: list[list[int]]) -> tuple[tf.Tensor, tf.Tensor]:
    """All sequences end to end, and where each starts (plus the total)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    values = np.fromiter(
        (token for s in sequences for token in s), dtype=np.int32, count=int(lengths.sum())
    )
    return tf.constant(values), tf.constant(np.concatenate([[0], np.cumsum(lengths)]))


def _buckets(batch_tokens: int) -> tuple[list[int], list[int]]:
    """`training_batches`'s length buckets: their upper bounds (exclusive; the last
    bucket is open) and how many examples a batch of each holds."""
    boundaries = [b + 1 for b in BUCKET_BOUNDARIES]  # buckets are [lower, upper)
    sizes = [max(1, batch_tokens // b) for b in BUCKET_BOUNDARIES]
    sizes.append(max(1, batch_tokens // (2 * BUCKET_BOUNDARIES[-1])))
    return boundaries, sizes


def batch_count(sources: list[list[int]], targets: list[list[int]], batch_tokens: int) -> int:
    """How many batches one pass of `training_batches` yields: the same in every epoch
    and every process (the shuffle changes which examples share a batch, not how many
    examples each length bucket holds).

    >>> sources = [[4] * (1 + n % 30) for n in range(200)]
    >>> targets = [[5] * (1 + n % 13) for n in range(200)]
    >>> batches = training_batches(sources, targets, 128, shuffle_buffer=50, seed=1)
    >>> batch_count(sources, targets, 128), sum(1 for _ in batches)
    (30, 30)
    """
    boundaries, sizes = _buckets(batch_tokens)
    counts = np.zeros(len(sizes), dtype=np.int64)
    for source, target in zip(sources, targets, strict=True):
        counts[bisect.bisect_right(boundaries, max(len(source), len(target) + 1))] += 1
    return int(sum(-(-count // size) for count, size in zip(counts, sizes, strict=True)))


def training_batches(
    sources: list[list[int]],
    targets: list[list[int]],
    batch_tokens: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """`({"source", "target_in"}, target_out)` batches of about `batch_tokens`.

    `target_in` is BOS + target, `target_out` is target + EOS; 0 pads.
    With `shuffle_buffer`, examples are reshuffled every epoch.
    """
    source_values, source_starts = _flat(sources)
    target_values, target_starts = _flat(targets)

    def example(index):
        return (
            source_values[source_starts[index] : source_starts[index + 1]],
            target_values[target_starts[index] : target_starts[index + 1]],
        )

    dataset = tf.data.Dataset.range(len(sources))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries, sizes = _buckets(batch_tokens)
    dataset = dataset.bucket_by_sequence_length(
        lambda source, target: tf.maximum(tf.shape(source)[0], tf.shape(target)[0] + 1),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes,
    )

    def to_model_inputs(source, target):
        batch = tf.shape(target)[0]
        bos = tf.fill([batch, 1], BOS_ID)
        target_in = tf.concat([bos, target], axis=1)
        # EOS goes right after the last real token of each row, before padding.
        lengths = tf.reduce_sum(tf.cast(target != 0, tf.int32), axis=1)
        eos = tf.one_hot(lengths, tf.shape(target)[1] + 1, dtype=tf.int32) * EOS_ID
        target_out = tf.pad(target, [[0, 0], [0, 1]]) + eos
        return {"source": source, "target_in": target_in}, target_out

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
