"""CTC searches and scores over a CTC head's outputs, as TensorFlow graph code.

- `ctc_greedy_search`: the best path of every utterance, collapsed.
- `CTCPrefixScorer`: the CTC prefix score of Watanabe et al. (2017), "Hybrid
  CTC/Attention Architecture for End-to-End Speech Recognition", for joint decoding:
  an attention decoder's beam search adds `w * log p_ctc(prefix)` to each hypothesis,
  which keeps the hypotheses aligned with the audio (no loops, no early or late ends).

Core TensorFlow ops only, so the same code runs eagerly, in `tf.function` and in a
SavedModel that stock TensorFlow Serving runs. The blank is id `blank_id` of the CTC
head's vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import tensorflow as tf

from seq2seq.utils import decoding

_NEG_INF = float("-inf")


def ctc_greedy_search(ctc_logits, frame_lengths, blank_id: int = 0) -> decoding.DecodingResult:
    """The CTC head's best path, collapsed: the most likely token of every frame, then
    repeats merged and blanks dropped. One pass over the frames and no decoder, so it
    is the fastest search, and it cannot loop the way an attention decoder can.

    Args:
        ctc_logits: float `[batch, frames, vocab]` of the CTC head.
        frame_lengths: int32 `[batch]`.
        blank_id: the blank's id (also the padding of the returned ids). Default: 0.

    Returns:
        A `DecodingResult` with one hypothesis per row; `scores` is the best path's
        log-probability.
    """
    log_probs = tf.nn.log_softmax(tf.cast(ctc_logits, tf.float32), axis=-1)
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    valid = tf.sequence_mask(frame_lengths, tf.shape(best)[1])
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = valid & (best != blank_id) & (best != previous)
    ragged = tf.ragged.boolean_mask(best, keep)
    ids = ragged.to_tensor(default_value=blank_id)
    lengths = tf.cast(ragged.row_lengths(), tf.int32)
    scores = tf.reduce_sum(tf.where(valid, tf.reduce_max(log_probs, axis=-1), 0.0), axis=1)
    return decoding.DecodingResult(
        ids=ids[:, tf.newaxis],
        lengths=lengths[:, tf.newaxis],
        scores=scores[:, tf.newaxis],
        attention=None,
    )


class CTCPrefixState(NamedTuple):
    """What `CTCPrefixScorer.step` carries for each hypothesis (row) `h`: its CTC
    forward variables and the prefix probabilities of its one-token extensions, so that
    the next step extends `h` by the token the search chose.

    Attributes:
        non_blank: float32 `[rows, frames]`: `log r_t^n(h)`, the probability of the
            frames up to `t` with prefix `h`, ending in `h`'s last token.
        blank: float32 `[rows, frames]`: `log r_t^b(h)`, the same ending in a blank.
        last: int32 `[rows]`: `h`'s last token; `bos_id` for the empty hypothesis.
        prefix: float32 `[rows, vocab]`: `log p_ctc(h + c, ...)`, the probability that
            the transcript starts with `h + c`.
    """

    non_blank: tf.Tensor
    blank: tf.Tensor
    last: tf.Tensor
    prefix: tf.Tensor


class CTCEmissions(NamedTuple):
    """A CTC head's outputs as `CTCPrefixScorer.step` reads them, one row per utterance
    (the hypotheses of a search read their utterance's through `decoding.Rows`).

    The cumulative sums are stored by token (`[utterances, vocab, frames]`), so that the
    frames of the one token a hypothesis extends by are a contiguous slice.

    Attributes:
        probs: float32 `[utterances, frames, vocab]`, the probabilities, 0 past each
            one's frames.
        log_probs_by_token: their logarithms, `[utterances, vocab, frames]`.
        emitted: the log-probs' cumulative sums over frames, `[utterances, vocab,
            frames]`.
        emitted_before: the same sums up to the frame before (exclusive), which the
            closed forms of the recursions divide by.
        frame_lengths: int32 `[utterances]`.
    """

    probs: tf.Tensor
    log_probs_by_token: tf.Tensor
    emitted: tf.Tensor
    emitted_before: tf.Tensor
    frame_lengths: tf.Tensor


@dataclasses.dataclass(frozen=True)
class CTCPrefixScorer:
    """Scores every one-token extension of each hypothesis of a search by CTC.

    `step(ids, state, emissions)` returns, for every token `c`, `log p_ctc(h + c, ...) -
    log p_ctc(h, ...)`, the CTC prefix score's increment, and for `eos_id` the
    probability that the transcript is exactly `h`: the sum of a hypothesis's
    increments, EOS included, is its CTC log-likelihood. `blank_id` and `bos_id` get
    -inf.

    The forward recursions over frames are first-order linear in the probability
    domain, so each is one cumulative log-sum-exp over all frames at once rather than
    a loop over frames. They run only for the extension the search chose (`[rows,
    frames]`); the prefix probabilities of all extensions need no recursion, only a sum
    over frames: a step costs `O(rows * frames * vocab)` in one batched matmul, which
    reads each utterance's emissions once for all of its hypotheses.

    Args:
        blank_id: the CTC blank.
        bos_id: the search's first input, which stands for the empty hypothesis.
        eos_id: the token that ends a hypothesis.

    Example:

    >>> scorer = CTCPrefixScorer(blank_id=0, bos_id=2, eos_id=1)
    >>> probs = np.array([[[0.1, 0.1, 0.1, 0.7], [0.1, 0.1, 0.1, 0.7]]], "float32")
    >>> emissions = scorer.emissions(np.log(probs), np.array([2]))
    >>> scores, state = scorer.step(np.array([2]), scorer.initial_state(emissions), emissions)
    >>> round(float(np.exp(scores[0, 3])), 2)  # p(the transcript starts with token 3)
    0.77
    """

    blank_id: int
    bos_id: int
    eos_id: int

    def emissions(self, ctc_logits, frame_lengths) -> CTCEmissions:
        """`CTCEmissions` of CTC head logits `[utterances, frames, vocab]` and frame
        lengths."""
        log_probs = tf.nn.log_softmax(tf.cast(ctc_logits, tf.float32), axis=-1)
        by_token = tf.transpose(log_probs, [0, 2, 1])
        emitted = tf.cumsum(by_token, axis=2)
        emitted_before = emitted - by_token
        frame_lengths = tf.cast(frame_lengths, tf.int32)
        valid = tf.sequence_mask(frame_lengths, tf.shape(log_probs)[1])
        probs = tf.where(valid[:, :, tf.newaxis], tf.exp(log_probs), 0.0)
        by_token = tf.where(valid[:, tf.newaxis], by_token, _NEG_INF)
        return CTCEmissions(probs, by_token, emitted, emitted_before, frame_lengths)

    def initial_state(self, emissions: CTCEmissions) -> CTCPrefixState:
        """The empty hypothesis of each utterance (the search's first input is BOS): only
        blanks so far, and the empty prefix is certain."""
        blank = emissions.emitted[:, self.blank_id]
        return CTCPrefixState(
            non_blank=tf.fill(tf.shape(blank), _NEG_INF),
            blank=blank,
            last=tf.fill(tf.shape(blank)[:1], self.bos_id),
            prefix=tf.zeros_like(emissions.probs[:, 0]),
        )

    def step(
        self,
        ids,
        state: CTCPrefixState,
        emissions: CTCEmissions,
        rows: decoding.Rows | None = None,
    ) -> tuple[tf.Tensor, CTCPrefixState]:
        """Extends each row's hypothesis by `ids` (the token the search last chose; BOS
        for the empty hypothesis, which stays empty), and scores the extensions of the
        result.

        Args:
            ids: int32 `[rows]`.
            state: what `initial_state` or the previous `step` returned, in the
                search's row order.
            emissions: the CTC head's outputs, one row per utterance.
            rows: which utterance's hypothesis each row is (the `decoding.Rows` a
                search step is given); None: row i is utterance i's.

        Returns:
            `(scores [rows, vocab], new_state)`.
        """
        ids = tf.cast(ids, tf.int32)
        rows = rows or decoding.Rows(tf.shape(ids)[0], 1)
        utterances = rows.examples()
        empty = tf.equal(ids, self.bos_id)
        non_blank, blank = self._extend(state, ids, emissions, utterances)
        non_blank = tf.where(empty[:, tf.newaxis], state.non_blank, non_blank)
        blank = tf.where(empty[:, tf.newaxis], state.blank, blank)
        prefix = tf.gather(state.prefix, ids, axis=1, batch_dims=1)  # [rows]
        # The prefix probability of h + c: c first emitted at any frame, after the frames
        # before hold h; a repeat of h's last token needs a blank in between. Before the
        # first frame, only the empty prefix is there.
        start = tf.where(empty, 0.0, _NEG_INF)[:, tf.newaxis]
        either = tf.reduce_logsumexp(tf.stack([non_blank, blank]), axis=0)
        either_before = tf.concat([start, either[:, :-1]], axis=1)
        blank_before = tf.concat([start, blank[:, :-1]], axis=1)
        # Summed over frames in the probability domain, each row's `either_before`
        # shifted by its maximum: one matmul per utterance, which reads its emissions once
        # for all of its hypotheses (an extension less likely than e^-87 times the best
        # frame's rounds to -inf, where no search would take it anyway).
        shift = tf.reduce_max(either_before, axis=1, keepdims=True)
        shift = tf.where(tf.math.is_finite(shift), shift, 0.0)
        weights = rows.group(tf.exp(either_before - shift))  # [utterances, beam, frames]
        new_prefix = tf.math.log(rows.ungroup(tf.matmul(weights, emissions.probs))) + shift
        repeated = _of_token(emissions.log_probs_by_token, utterances, ids)
        repeated = tf.reduce_logsumexp(blank_before + repeated, axis=1)
        tokens = tf.range(tf.shape(new_prefix)[1])[tf.newaxis, :]
        repeat = (tokens == ids[:, tf.newaxis]) & ~empty[:, tf.newaxis]
        new_prefix = tf.where(repeat, repeated[:, tf.newaxis], new_prefix)  # [rows, vocab]
        # EOS: the frames end with h. Empty audio has only the empty transcript.
        frame_lengths = rows.take(emissions.frame_lengths)
        last = tf.maximum(frame_lengths - 1, 0)
        complete = tf.gather(either, last, axis=1, batch_dims=1)
        complete = tf.where(frame_lengths > 0, complete, tf.where(empty, 0.0, _NEG_INF))
        totals = tf.where(tokens == self.eos_id, complete[:, tf.newaxis], new_prefix)
        special = (tokens == self.blank_id) | (tokens == self.bos_id)
        scores = tf.where(special, _NEG_INF, totals - prefix[:, tf.newaxis])
        # A hypothesis CTC rules out has no extension CTC allows (and -inf - -inf is NaN).
        scores = tf.where(tf.math.is_finite(prefix)[:, tf.newaxis], scores, _NEG_INF)
        return scores, CTCPrefixState(non_blank, blank, ids, new_prefix)

    def _extend(
        self, state: CTCPrefixState, ids: tf.Tensor, emissions: CTCEmissions, utterances
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The forward variables `(non_blank, blank)` of `h + c` for each row's hypothesis
        `h` (`state`, of utterance `utterances`) and token `c` (`ids`), `[rows, frames]`
        each."""
        # phi_t(c): the frames up to t hold h and are ready for c; a repeat of h's last
        # token needs a blank in between. Before the first frame, only the empty h is.
        either = tf.reduce_logsumexp(tf.stack([state.non_blank, state.blank]), axis=0)
        ready = tf.where((ids == state.last)[:, tf.newaxis], state.blank, either)
        start = tf.where(tf.equal(state.last, self.bos_id), 0.0, _NEG_INF)[:, tf.newaxis]
        ready_before = tf.concat([start, ready[:, :-1]], axis=1)
        # r_t^n(h+c) = (r_{t-1}^n(h+c) + phi_{t-1}(c)) * y_t(c), in closed form.
        emitted_token = _of_token(emissions.emitted, utterances, ids)
        emitted_token_before = _of_token(emissions.emitted_before, utterances, ids)
        non_blank = emitted_token + tf.math.cumulative_logsumexp(
            ready_before - emitted_token_before, axis=1
        )
        # r_t^b(h+c) = (r_{t-1}^b(h+c) + r_{t-1}^n(h+c)) * y_t(blank), the same way.
        non_blank_before = tf.pad(non_blank[:, :-1], [[0, 0], [1, 0]], constant_values=_NEG_INF)
        blanks = tf.fill(tf.shape(ids), self.blank_id)
        blank = _of_token(emissions.emitted, utterances, blanks) + tf.math.cumulative_logsumexp(
            non_blank_before - _of_token(emissions.emitted_before, utterances, blanks), axis=1
        )
        return non_blank, blank


def _of_token(by_token, utterances, ids):
    """`by_token[utterances[i], ids[i]]` for every row i: `[rows, frames]`."""
    return tf.gather_nd(by_token, tf.stack([utterances, ids], axis=1))
