"""The character n-gram model against Kneser-Ney smoothing written out by hand, its
pruning, and its TensorFlow scorer against the NumPy look-up."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.utils.ngram import STEP, CharNgramLM, NgramScorer

EOS, BOS, VOCAB = 1, 2, 7  # ids 3-6 are characters; 0 is never predicted


def random_sentences(count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    # Skewed, so that some contexts are frequent and some rare.
    return [list(rng.choice([3, 4, 5, 6], size=rng.integers(0, 9), p=[0.5, 0.3, 0.15, 0.05]))
            for _ in range(count)]  # fmt: skip


def kneser_ney(sentences, order):
    """`p(token, history)` of interpolated Kneser-Ney, from dictionaries of counts."""
    following: dict[tuple, Counter] = defaultdict(Counter)
    for sentence in sentences:
        tokens = [BOS, *sentence, EOS]
        for i in range(1, len(tokens)):
            for k in range(min(order - 1, i) + 1):
                following[tuple(tokens[i - k : i])][tokens[i]] += 1
    predicted = set(following[()])

    def counts(history):  # occurrences for the longest contexts, else left extensions
        if len(history) == order - 1 or history[:1] == (BOS,):
            return following[history]
        left = [h for h in following if len(h) == len(history) + 1 and h[1:] == history]
        return Counter({w: sum(following[h][w] > 0 for h in left) for w in following[history]})

    discounts = {}
    for length in range(order):
        values = [c for h in list(following) if len(h) == length for c in counts(h).values()]
        ones, twos = values.count(1), values.count(2)
        discounts[length] = ones / (ones + 2 * twos) if ones else 0.0

    def probability(token, history):
        history = tuple(history[-(order - 1) :]) if order > 1 else ()
        while history not in following:  # unseen: its longest seen suffix stands in
            history = history[1:]
        c = counts(history)
        total, types, discount = sum(c.values()), len(c), discounts[len(history)]
        if history:
            lower = probability(token, history[1:])
        else:
            lower = (token in predicted) / len(predicted)
        return (max(c[token] - discount, 0) + discount * types * lower) / total

    return probability


@pytest.mark.parametrize("order", [1, 2, 4])
def test_probabilities_are_kneser_ney_written_out(order):
    train, held_out = random_sentences(300, seed=order), random_sentences(30, seed=99)
    lm = CharNgramLM.estimate(train, order, VOCAB, BOS, EOS, min_count=1)
    reference = kneser_ney(train, order)
    for sentence in held_out:
        history = [BOS]
        for token in [*sentence, EOS]:
            with np.errstate(divide="ignore"):
                expected = np.log([reference(t, history) for t in range(VOCAB)])
            # Equal up to the one-byte grid of the stored log-probabilities.
            np.testing.assert_allclose(lm.next_log_probs(history), expected, atol=STEP / 2)
            history.append(token)
        total = sum(np.log(reference(t, [BOS, *sentence[:i]]))
                    for i, t in enumerate([*sentence, EOS]))  # fmt: skip
        assert lm.log_prob(sentence) == pytest.approx(total, abs=(len(sentence) + 1) * STEP / 2)


def test_rows_are_distributions_over_the_predicted_tokens():
    lm = CharNgramLM.estimate(random_sentences(200, seed=1), 3, VOCAB, BOS, EOS)
    probabilities = np.exp(lm.log_probs)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=np.exp(STEP / 2) - 1)
    assert np.isneginf(lm.log_probs[:, [0, BOS]]).all()  # never predicted
    assert (probabilities[:, [EOS, 3, 4, 5, 6]] > 0).all()
    assert lm.keys[0] == 0 and (np.diff(lm.keys) > 0).all()


def test_rare_contexts_are_pruned_and_back_off_to_their_longest_kept_suffix():
    sentences = [[3, 4]] * 5 + [[5, 4]] * 2
    full = CharNgramLM.estimate(sentences, 3, VOCAB, BOS, EOS, min_count=1)
    pruned = CharNgramLM.estimate(sentences, 3, VOCAB, BOS, EOS, min_count=3)
    assert len(pruned.keys) < len(full.keys)
    # (BOS, 5) was seen twice: pruned, so (5) stands in; (BOS, 3) was seen 5 times: kept.
    np.testing.assert_array_equal(pruned.next_log_probs([BOS, 5]), pruned.next_log_probs([5]))
    assert not np.allclose(full.next_log_probs([BOS, 5]), full.next_log_probs([5]))
    np.testing.assert_array_equal(pruned.next_log_probs([BOS, 3]), full.next_log_probs([BOS, 3]))


def test_tensorflow_scorer_equals_the_numpy_look_up():
    lm = CharNgramLM.estimate(random_sentences(300, seed=2), 4, VOCAB, BOS, EOS, min_count=2)
    scorer = NgramScorer(lm)
    step = tf.function(
        scorer.step,
        input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64)],
    )
    sequences = np.array([[*s, *[3] * 10][:10] for s in random_sentences(5, seed=3)], np.int32)
    state = scorer.initial_state(len(sequences))
    ids = np.full(len(sequences), BOS, np.int32)
    for t in range(sequences.shape[1]):  # longer than the order: old tokens drop out
        scores, state = step(ids, state)
        for row, sequence in enumerate(sequences):
            expected = lm.next_log_probs([BOS, *sequence[:t]])
            np.testing.assert_array_equal(scores.numpy()[row], expected)
        ids = sequences[:, t]


def test_save_and_load_round_trip(tmp_path):
    lm = CharNgramLM.estimate(random_sentences(50, seed=4), 3, VOCAB, BOS, EOS)
    lm.save(tmp_path / "lm.npz")
    loaded = CharNgramLM.load(tmp_path / "lm.npz")
    assert (loaded.order, loaded.vocab_size, loaded.bos_id, loaded.eos_id) == (3, VOCAB, BOS, EOS)
    np.testing.assert_array_equal(loaded.keys, lm.keys)
    np.testing.assert_array_equal(loaded.codes, lm.codes)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.npz"):
        CharNgramLM.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    ("order", "sentences", "needle"),
    [(0, [[3]], "at least 1"), (40, [[3]], "too high"), (2, [], "no sentences")],
)
def test_bad_arguments_are_refused(order, sentences, needle):
    with pytest.raises(ValueError, match=needle):
        CharNgramLM.estimate(sentences, order, VOCAB, BOS, EOS)
