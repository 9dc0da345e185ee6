"""A character n-gram language model for the speech recognizer's search (shallow fusion).

- `CharNgramLM`: estimated with NumPy from text (interpolated Kneser-Ney smoothing,
  contexts seen fewer than `min_count` times pruned), saved and loaded as `.npz`.
- `NgramScorer`: its next-character log-probabilities as TensorFlow graph code, for
  the beam search to add `lm_weight * log p_lm(c | history)` to each extension.

Every kept context stores its whole interpolated next-token distribution, so scoring
needs no back-off chain: the scorer looks the row up for the longest kept context
(sorted keys and `tf.searchsorted`, core ops only, so the same code runs in a
SavedModel that stock TensorFlow Serving runs). A context of tokens `t_1 ... t_k`
(oldest first) has the key `sum_j (t_{k-j} + 1) * B**j` in base `B = vocab_size + 1`:
the newest token is the lowest digit, so `key mod B**j` is the key of the newest `j`
tokens, and no digit is 0, so contexts of different lengths never share a key. A
sentence's history starts with BOS; the empty context has key 0 (the unigram row).
Log-probabilities take one byte each (`STEP`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

_NEG_INF = float("-inf")
STEP = 16.0 / 254
"""Log-probabilities are kept on a grid of `STEP` nats down to -16 (one byte each:
codes 0-254, 255 for -inf), so that a SavedModel holds a large model in few bytes; the
rounding moves a log-probability by at most `STEP / 2` (0.03 nats)."""
_IMPOSSIBLE = 255


@dataclasses.dataclass(frozen=True)
class CharNgramLM:
    """An n-gram model over token ids, in the scorer's lookup form.

    Args:
        order: n, the tokens of a context plus the predicted one (>= 1).
        vocab_size: ids are `0 .. vocab_size - 1`.
        keys: int64 `[contexts]`, sorted, the kept contexts' keys (0, the empty
            context, always among them).
        codes: uint8 `[contexts, vocab_size]`, each context's next-token
            log-probabilities as multiples of `-STEP` (255: never predicted).
        bos_id, eos_id: the token a history starts with; the token that ends a sentence.

    Example:

    >>> lm = CharNgramLM.estimate([[3, 4], [3, 4, 4]], order=2, vocab_size=5, bos_id=2,
    ...                           eos_id=1, min_count=1)
    >>> round(float(np.exp(lm.next_log_probs([2])[3])), 1)  # (2 - 1/7 + 1/7 * 0.25) / 2
    0.9
    >>> round(lm.log_prob([3, 4]), 2)  # log(0.95 * 0.96 * 0.64), each to a byte's grid
    -0.57
    """

    order: int
    vocab_size: int
    keys: np.ndarray
    codes: np.ndarray
    bos_id: int
    eos_id: int

    @property
    def base(self) -> int:
        return self.vocab_size + 1

    @property
    def log_probs(self) -> np.ndarray:
        """float32 `[contexts, vocab_size]`: the log-probabilities the codes stand for."""
        return decode_log_probs(self.codes)

    @classmethod
    def estimate(
        cls,
        sentences: Iterable[Iterable[int]],
        order: int,
        vocab_size: int,
        bos_id: int,
        eos_id: int,
        min_count: int = 2,
    ) -> CharNgramLM:
        """Estimates the model from sentences of token ids (without BOS and EOS).

        Interpolated Kneser-Ney (Chen and Goodman, 1998, with one discount per order):
        `p(w | h) = max(c(h, w) - D, 0) / c(h) + D T(h) / c(h) p(w | h')`, where `h'`
        is `h` without its oldest token, `T(h)` counts the distinct tokens after `h`,
        and `D = n1 / (n1 + 2 n2)` from the order's counts of counts. The longest
        contexts count occurrences; shorter ones count distinct left extensions
        (how many contexts a pair continues), except those that start with BOS, which
        have none. The empty context interpolates with the uniform distribution over
        the tokens ever predicted. A context seen fewer than `min_count` times is
        dropped (its longest kept suffix stands in for it).

        Raises:
            ValueError: on an order below 1, a key that would not fit in int64, or
                no sentences.
        """
        if order < 1:
            raise ValueError(f"order must be at least 1, not {order}")
        if (vocab_size + 1) ** order >= 2**62:
            raise ValueError(f"order {order} is too high for a vocabulary of {vocab_size}")
        streams = [[bos_id, *sentence, eos_id] for sentence in sentences]
        if not streams:
            raise ValueError("no sentences to estimate a language model from")
        tokens = np.concatenate([np.asarray(s, np.int64) for s in streams])
        # Position of each token in its sentence (BOS at 0): a context may reach back to BOS.
        starts = np.cumsum([0] + [len(s) for s in streams[:-1]])
        positions = np.arange(len(tokens)) - np.repeat(starts, [len(s) for s in streams])
        predicted = positions > 0
        base = vocab_size + 1

        # Occurrences of each (context of length k, token) pair, as sorted pair keys.
        pairs = []
        key = np.zeros(len(tokens), np.int64)  # key of the context of length k before i
        for k in range(order):
            if k:
                previous = np.roll(tokens, k)
                key = np.where(positions >= k, key + (previous + 1) * base ** (k - 1), 0)
            mask = predicted & (positions >= k)
            pairs.append(np.unique(key[mask] * base + tokens[mask], return_counts=True))

        keys_by_order, rows_by_order = [], []
        seen = np.zeros(vocab_size, bool)
        seen[np.unique(tokens[predicted])] = True
        for k, (pair_keys, occurrences) in enumerate(pairs):
            counts = occurrences
            if k < order - 1:
                counts = _left_extensions(pair_keys, occurrences, pairs[k + 1][0], k, base)
            context_keys, context_index = np.unique(pair_keys // base, return_inverse=True)
            table = np.zeros((len(context_keys), vocab_size))
            np.add.at(table, (context_index, pair_keys % base), counts)
            seen_times = np.bincount(context_index, weights=occurrences)
            ones, twos = np.sum(counts == 1), np.sum(counts == 2)
            discount = ones / (ones + 2 * twos) if ones else 0.0
            keep = seen_times >= (min_count if k else 1)
            context_keys, table = context_keys[keep], table[keep]
            totals, types = table.sum(axis=1, keepdims=True), (table > 0).sum(axis=1)[:, None]
            if k == 0:
                lower = np.where(seen, 1.0 / seen.sum(), 0.0)[None, :]
            else:
                parents = np.searchsorted(keys_by_order[-1], context_keys % base ** (k - 1))
                lower = rows_by_order[-1][parents]
            rows = (np.maximum(table - discount, 0) + discount * types * lower) / totals
            keys_by_order.append(context_keys)
            rows_by_order.append(rows)
        keys = np.concatenate(keys_by_order)
        ordering = np.argsort(keys)
        probabilities = np.concatenate(rows_by_order)[ordering]
        with np.errstate(divide="ignore"):
            steps = np.round(-np.log(probabilities) / STEP)
        codes = np.where(probabilities > 0, np.minimum(steps, _IMPOSSIBLE - 1), _IMPOSSIBLE)
        return cls(order, vocab_size, keys[ordering], codes.astype(np.uint8), bos_id, eos_id)

    def row(self, history: Iterable[int]) -> int:
        """Index of the longest kept context that ends `history` (the tokens so far,
        BOS first)."""
        history = list(history)[-(self.order - 1) :] if self.order > 1 else []
        for start in range(len(history) + 1):
            key = 0
            for token in history[start:]:
                key = key * self.base + token + 1
            index = int(np.searchsorted(self.keys, key))
            if index < len(self.keys) and self.keys[index] == key:
                return index
        raise AssertionError("the empty context is always kept")

    def next_log_probs(self, history: Iterable[int]) -> np.ndarray:
        """Log-probabilities `[vocab_size]` of the token after `history` (BOS first)."""
        return decode_log_probs(self.codes[self.row(history)])

    def log_prob(self, sentence: Iterable[int]) -> float:
        """Natural-log probability of a sentence (ids without BOS and EOS), EOS included."""
        history, total = [self.bos_id], 0.0
        for token in [*sentence, self.eos_id]:
            total += float(self.next_log_probs(history)[token])
            history.append(token)
        return total

    def save(self, path: str | Path) -> None:
        """Writes the model to an `.npz` file (`load` reads it)."""
        header = np.array([self.order, self.vocab_size, self.bos_id, self.eos_id])
        with open(path, "wb") as out:
            np.savez_compressed(out, header=header, keys=self.keys, codes=self.codes)

    @classmethod
    def load(cls, path: str | Path) -> CharNgramLM:
        """Reads a model `save` wrote.

        Raises:
            ValueError: naming the file when it is missing or not such a model.
        """
        try:
            with np.load(path) as data:
                order, vocab_size, bos_id, eos_id = (int(v) for v in data["header"])
                return cls(order, vocab_size, data["keys"], data["codes"], bos_id, eos_id)
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path}: not a character n-gram model ({error})") from None


class NgramScorer:
    """A `CharNgramLM` as TensorFlow graph code for a search's step function.

    The state of a row is the key of its last `order - 1` tokens (int64 `[rows]`);
    `step(ids, state)` appends the token the search chose last (BOS first) and
    returns the log-probabilities of every next token.

    Args:
        lm: the model. Its tables become two non-trainable variables (`variables`), so
            that the functions of a SavedModel share one copy of them.

    Example:

    >>> lm = CharNgramLM.estimate([[3, 4]], order=2, vocab_size=5, bos_id=2, eos_id=1,
    ...                           min_count=1)
    >>> scorer = NgramScorer(lm)
    >>> scores, state = scorer.step(np.array([2]), scorer.initial_state(1))
    >>> bool(np.allclose(scores[0], lm.next_log_probs([2])))
    True
    """

    def __init__(self, lm: CharNgramLM):
        self.order = lm.order
        self.base = lm.base
        self.keys = tf.Variable(lm.keys, trainable=False, dtype=tf.int64, name="lm_keys")
        self.codes = tf.Variable(lm.codes, trainable=False, dtype=tf.uint8, name="lm_codes")
        self.variables = [self.keys, self.codes]

    def initial_state(self, rows):
        """The empty history of `rows` hypotheses."""
        return tf.zeros([rows], tf.int64)

    def step(self, ids, state):
        """`(log_probs [rows, vocab], new_state)` after appending `ids` (int `[rows]`)."""
        span = self.base ** max(self.order - 1, 0)
        state = (state * self.base + tf.cast(ids, tf.int64) + 1) % span
        # The keys of the newest k tokens, longest first; key 0 (k = 0) is always kept.
        suffixes = tf.stack([state % self.base**k for k in range(self.order - 1, -1, -1)])
        index = tf.searchsorted(self.keys, tf.reshape(suffixes, [-1]), side="left")
        index = tf.minimum(index, tf.size(self.keys, out_type=tf.int32) - 1)
        index = tf.reshape(index, tf.shape(suffixes))
        found = tf.equal(tf.gather(self.keys, index), suffixes)  # [orders, rows]
        longest = tf.argmax(tf.cast(found, tf.int32), axis=0, output_type=tf.int32)
        rows = tf.gather(tf.transpose(index), longest, axis=1, batch_dims=1)
        codes = tf.gather(self.codes, rows)
        log_probs = -STEP * tf.cast(codes, tf.float32)
        return tf.where(tf.equal(codes, _IMPOSSIBLE), _NEG_INF, log_probs), state


def _left_extensions(pair_keys, occurrences, longer_pair_keys, k: int, base: int) -> np.ndarray:
    """Kneser-Ney's counts of (context of length k, token) pairs: in how many distinct
    contexts of length k + 1 each pair occurs. A pair whose context starts with BOS
    occurs in none (nothing comes before BOS) and keeps its occurrences."""
    shorter = (longer_pair_keys // base % base**k) * base + longer_pair_keys % base
    extended, extensions = np.unique(shorter, return_counts=True)
    index = np.minimum(np.searchsorted(extended, pair_keys), len(extended) - 1)
    found = extended[index] == pair_keys
    return np.where(found, extensions[index], occurrences)


def decode_log_probs(codes: np.ndarray) -> np.ndarray:
    """float32 log-probabilities of `CharNgramLM` codes."""
    return np.where(codes == _IMPOSSIBLE, _NEG_INF, -STEP * codes.astype(np.float32))
