"""CTC prefix scores against brute force over every alignment, and against TensorFlow's
CTC loss; CTC greedy search against NumPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.utils import decoding
from seq2seq.utils.ctc import CTCPrefixScorer, ctc_greedy_search

BLANK, EOS, BOS = 0, 1, 2
A, B = 3, 4
SCORER = CTCPrefixScorer(blank_id=BLANK, bos_id=BOS, eos_id=EOS)


def random_log_probs(rows: int, frames: int, vocab: int, seed: int, scale: float = 1.5):
    logits = scale * np.random.default_rng(seed).normal(size=(rows, frames, vocab))
    return np.log(np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True))


def collapse(path) -> tuple[int, ...]:
    merged = [token for i, token in enumerate(path) if i == 0 or token != path[i - 1]]
    return tuple(token for token in merged if token != BLANK)


def brute_force(log_probs: np.ndarray, frames: int) -> dict[tuple[int, ...], float]:
    """Probability of every transcript: the sum over the alignments that collapse to it
    (alignments over the blank and the characters A, B only)."""
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product((BLANK, A, B), repeat=frames):
        probability = np.exp(sum(log_probs[t, token] for t, token in enumerate(path)))
        transcript = collapse(path)
        totals[transcript] = totals.get(transcript, 0.0) + probability
    return totals


def score_path(log_probs, frame_lengths, hypothesis):
    """Runs the scorer along `hypothesis`: the scores of each step, `[steps, rows, vocab]`."""
    emissions = SCORER.emissions(log_probs, frame_lengths)
    state = SCORER.initial_state(emissions)
    ids = tf.fill([log_probs.shape[0]], BOS)
    steps = []
    for token in [*hypothesis, None]:
        scores, state = SCORER.step(ids, state, emissions)
        steps.append(scores.numpy())
        if token is not None:
            ids = tf.fill([log_probs.shape[0]], token)
    return np.stack(steps)


@pytest.mark.parametrize("hypothesis", [(), (A,), (A, A), (A, B), (B, A, B)])
def test_prefix_scores_are_sums_over_all_alignments(hypothesis):
    frames = 6
    log_probs = random_log_probs(1, frames, 5, seed=len(hypothesis))
    # Only the blank and the characters have probability: the brute force enumerates them.
    log_probs[..., [EOS, BOS]] = -np.inf
    log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
    transcripts = brute_force(log_probs[0], frames)
    steps = score_path(tf.constant(log_probs, tf.float32), tf.constant([frames]), hypothesis)
    for k in range(len(hypothesis) + 1):
        so_far = hypothesis[:k]
        so_far_score = sum(steps[i, 0, hypothesis[i]] for i in range(k))
        for token in (A, B):
            extended = (*so_far, token)
            expected = sum(p for t, p in transcripts.items() if t[: len(extended)] == extended)
            got = so_far_score + steps[k, 0, token]  # log p(so_far + token, ...)
            assert np.exp(got) == pytest.approx(expected, rel=1e-4, abs=1e-9)
        # EOS: the transcript is exactly the hypothesis so far.
        finished = so_far_score + steps[k, 0, EOS]
        assert np.exp(finished) == pytest.approx(transcripts.get(so_far, 0.0), rel=1e-4, abs=1e-9)
    assert (steps[:, 0, [BLANK, BOS]] == -np.inf).all()


def test_a_hypothesis_scores_its_ctc_log_likelihood_over_long_audio():
    """Long utterances (400 frames, 60 characters) keep float32 accuracy, and rows of a
    batch with different lengths are independent."""
    rows, frames, vocab = 3, 400, 31
    log_probs = random_log_probs(rows, frames, vocab, seed=7, scale=4.0).astype(np.float32)
    lengths = np.array([400, 250, 160], np.int32)
    labels = np.random.default_rng(8).integers(3, vocab, size=60)
    steps = score_path(tf.constant(log_probs), tf.constant(lengths), labels.tolist())
    per_row = np.array(
        [steps[np.arange(60), row, labels].sum() + steps[60, row, EOS] for row in range(rows)]
    )
    reference = -tf.nn.ctc_loss(
        tf.constant(np.tile(labels, (rows, 1)), tf.int32),
        tf.constant(log_probs),
        tf.fill([rows], 60),
        tf.constant(lengths),
        logits_time_major=False,
        blank_index=BLANK,
    ).numpy()
    np.testing.assert_allclose(per_row, reference, rtol=2e-4)


def test_no_audio_allows_only_the_empty_transcript():
    log_probs = tf.constant(random_log_probs(2, 4, 5, seed=3), tf.float32)
    steps = score_path(log_probs, tf.constant([0, 4]), [A])
    assert steps[0, 0, EOS] == 0.0 and (steps[0, 0, [A, B]] == -np.inf).all()
    assert (steps[1, 0] == -np.inf).all()  # nothing follows a hypothesis CTC ruled out
    assert np.isfinite(steps[1, 1, [A, B, EOS]]).all()


def test_ctc_greedy_search_is_the_collapsed_best_path():
    log_probs = random_log_probs(3, 9, 5, seed=4).astype(np.float32)
    lengths = np.array([9, 5, 0], np.int32)
    result = ctc_greedy_search(tf.constant(log_probs), tf.constant(lengths))
    for row, frames in enumerate(lengths):
        expected = collapse(log_probs[row, :frames].argmax(axis=-1).tolist())
        n = int(result.lengths[row, 0])
        assert tuple(result.ids.numpy()[row, 0, :n]) == expected
        assert not result.ids.numpy()[row, 0, n:].any()
        best = log_probs[row, :frames].max(axis=-1).sum()
        assert float(result.scores[row, 0]) == pytest.approx(best, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("indices", [None, [0, 3, 4]], ids=["all rows", "running rows"])
def test_a_step_through_rows_equals_a_step_on_each_rows_copy_of_the_emissions(indices):
    """A search's hypotheses read their utterance's emissions through `decoding.Rows`."""
    utterances, beam, frames, vocab = 3, 2, 7, 6
    log_probs = tf.constant(random_log_probs(utterances, frames, vocab, seed=5), tf.float32)
    frame_lengths = tf.constant([7, 3, 5])
    rows = tf.range(utterances * beam) if indices is None else tf.constant(indices)
    ids = tf.constant([A, B, A, BOS, B, A])
    ids = tf.gather(ids, rows)

    def two_steps(emissions, state, through):
        _, state = SCORER.step(tf.fill(tf.shape(ids), BOS), state, emissions, through)
        _, state = SCORER.step(ids, state, emissions, through)
        return SCORER.step(tf.gather([B, A, A, B, EOS, A], rows), state, emissions, through)

    per_row = SCORER.emissions(
        tf.gather(tf.repeat(log_probs, beam, axis=0), rows),
        tf.gather(tf.repeat(frame_lengths, beam), rows),
    )
    expected = two_steps(per_row, SCORER.initial_state(per_row), None)
    shared = SCORER.emissions(log_probs, frame_lengths)
    initial = tf.nest.map_structure(
        lambda t: tf.gather(tf.repeat(t, beam, axis=0), rows), SCORER.initial_state(shared)
    )
    found = two_steps(
        shared, initial, decoding.Rows(utterances, beam, None if indices is None else rows)
    )
    for want, got in zip(tf.nest.flatten(expected), tf.nest.flatten(found), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
