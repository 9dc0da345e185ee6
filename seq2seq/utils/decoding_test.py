"""Greedy and beam search against brute force, on toy Markov-chain models.

The toy model is a second-order Markov chain per example ("context"): the next token's
log-probs depend on the last two tokens, one of them carried in the step function's state,
so that beam search must reorder the state correctly to match brute force. Its attention
is a one-hot vector on the input token, so that every returned attention row is known.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.export.saved_model import saved_model_ops
from seq2seq.utils import decoding
from seq2seq.utils.decoding import DecodingResult, beam_search, greedy_search, tile_for_beam

VOCAB, BOS, EOS = 5, 0, 1
A, B, C = 2, 3, 4  # the other tokens


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))).astype(np.float32)


def random_tables(contexts: int, seed: int = 0) -> np.ndarray:
    """`[contexts, previous, input, next]` log-probs of random second-order chains."""
    rng = np.random.default_rng(seed)
    return log_softmax(2.0 * rng.normal(size=(contexts, VOCAB, VOCAB, VOCAB)))


def markov_step_fn(tables, with_attention: bool = True):
    """A step function over `tables`; its state is `{"context", "previous"}` (int32)."""

    def step_fn(ids, state):
        indices = tf.stack([state["context"], state["previous"], ids], axis=1)
        log_probs = tf.gather_nd(tables, indices)
        attention = tf.one_hot(ids, VOCAB) if with_attention else None
        return log_probs, {"context": state["context"], "previous": ids}, attention

    return step_fn


def initial_state(contexts) -> dict:
    contexts = tf.convert_to_tensor(contexts, tf.int32)
    return {"context": contexts, "previous": tf.fill(tf.shape(contexts), BOS)}


def decode(search, tables, contexts, max_length, with_attention=True, **kwargs) -> DecodingResult:
    step_fn = markov_step_fn(tf.constant(tables), with_attention)
    return search(step_fn, initial_state(contexts), len(contexts), BOS, EOS, max_length, **kwargs)


def token_log_prob(table: np.ndarray, prefix: tuple[int, ...], token: int) -> float:
    inputs = (BOS, BOS, *prefix)
    return float(table[inputs[-2], inputs[-1], token])


def brute_force(table: np.ndarray, max_length: int, length_penalty: float) -> list:
    """Every hypothesis a search can return, best first, as `(tokens, penalized score)`."""
    found = []

    def extend(prefix, score):
        for token in range(VOCAB):
            total = score + token_log_prob(table, prefix, token)
            if token == EOS:
                found.append((prefix, total, len(prefix) + 1))
            elif len(prefix) + 1 == max_length:
                found.append(((*prefix, token), total, max_length))
            else:
                extend((*prefix, token), total)

    extend((), 0.0)
    ranked = [
        (tokens, total / ((5 + steps) / 6) ** length_penalty) for tokens, total, steps in found
    ]
    return sorted(ranked, key=lambda hypothesis: -hypothesis[1])


def repeats_an_ngram(tokens: tuple[int, ...], size: int) -> bool:
    """Whether `tokens` holds some n-gram of `size` tokens twice (0: never)."""
    grams = [tokens[i : i + size] for i in range(len(tokens) - size + 1)] if size else []
    return len(grams) != len(set(grams))


def stepwise_argmax(
    table: np.ndarray, max_length: int, no_repeat_ngram_size: int = 0
) -> tuple[tuple[int, ...], float]:
    tokens, score = (), 0.0
    while len(tokens) < max_length:
        allowed = [
            t == EOS or not repeats_an_ngram((*tokens, t), no_repeat_ngram_size)
            for t in range(VOCAB)
        ]
        log_probs = [token_log_prob(table, tokens, t) for t in range(VOCAB)]
        token = int(np.argmax(np.where(allowed, log_probs, -np.inf)))
        score += token_log_prob(table, tokens, token)
        if token == EOS:
            break
        tokens = (*tokens, token)
    return tokens, score


def reference_beam_search(
    table: np.ndarray, max_length: int, beam_size: int, length_penalty: float
) -> list:
    """Beam search over Python tuples, best first, as `(tokens, penalized score)`."""

    def ranking(hypothesis):
        _, total, steps, _ = hypothesis
        return total / ((5 + steps) / 6) ** length_penalty

    beam = [((), 0.0, 0, False)]  # (tokens, sum of log-probs, steps, finished)
    while not all(finished for *_, finished in beam):
        candidates = []
        for tokens, total, steps, finished in beam:
            if finished:
                candidates.append((tokens, total, steps, True))
                continue
            for token in range(VOCAB):
                new_total = total + token_log_prob(table, tokens, token)
                if token == EOS:
                    candidates.append((tokens, new_total, steps + 1, True))
                else:
                    done = steps + 1 == max_length
                    candidates.append(((*tokens, token), new_total, steps + 1, done))
        beam = sorted(candidates, key=ranking, reverse=True)[:beam_size]
    return [(hypothesis[0], ranking(hypothesis)) for hypothesis in beam]


def hypotheses(result: DecodingResult) -> list[list[tuple[tuple[int, ...], float]]]:
    """Per example, the returned `(tokens, score)` pairs in order."""
    ids, lengths, scores = result.ids.numpy(), result.lengths.numpy(), result.scores.numpy()
    return [
        [
            (tuple(int(t) for t in ids[b, k, : lengths[b, k]]), float(scores[b, k]))
            for k in range(ids.shape[1])
        ]
        for b in range(ids.shape[0])
    ]


def assert_same_hypotheses(found, expected) -> None:
    assert [tokens for tokens, _ in found] == [tokens for tokens, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5)


@pytest.mark.parametrize(
    "max_length",
    [6, tf.constant(6), tf.constant([2, 6, 4]), 0],
    ids=["int", "scalar-tensor", "per-example", "zero"],
)
def test_greedy_is_stepwise_argmax(max_length):
    tables = random_tables(3)
    result = decode(greedy_search, tables, [0, 1, 2], max_length)
    limits = np.broadcast_to(np.asarray(max_length), [3])
    for b, found in enumerate(hypotheses(result)):
        assert_same_hypotheses(found, [stepwise_argmax(tables[b], int(limits[b]))])
    # Greedy search is beam search with one beam and raw scores.
    single_beam = decode(beam_search, tables, [0, 1, 2], max_length, beam_size=1, length_penalty=0)
    for name in ("ids", "lengths", "scores", "attention"):
        np.testing.assert_array_equal(getattr(result, name), getattr(single_beam, name))


@pytest.mark.parametrize(
    ("length_penalty", "no_repeat_ngram_size"),
    [(0.0, 0), (0.6, 0), (1.5, 0), (0.6, 1), (0.6, 2), (0.6, 3)],
)
def test_wide_beam_finds_the_brute_force_n_best(length_penalty, no_repeat_ngram_size):
    tables, max_length = random_tables(3, seed=1), 4
    # 1 + 4 + 16 + 64 hypotheses end with EOS, 4 ** 4 reach max_length: 341 in all, so a
    # beam of 350 never prunes one. Blocking repeated n-grams leaves out those that
    # repeat one.
    result = decode(
        beam_search,
        tables,
        [0, 1, 2],
        max_length,
        beam_size=350,
        length_penalty=length_penalty,
        n_best=5,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )
    for b, found in enumerate(hypotheses(result)):
        allowed = [
            hypothesis
            for hypothesis in brute_force(tables[b], max_length, length_penalty)
            if not repeats_an_ngram(hypothesis[0], no_repeat_ngram_size)
        ]
        assert_same_hypotheses(found, allowed[:5])


def looping_tables() -> np.ndarray:
    """A chain that goes A, B, A, B, ... and is least likely to end."""
    first_order = np.full((VOCAB, VOCAB), 0.1)
    first_order[:, EOS] = 0.01
    first_order[[BOS, B], A] = first_order[A, B] = 0.6
    first_order /= first_order.sum(axis=1, keepdims=True)
    return np.broadcast_to(np.log(first_order), (1, VOCAB, VOCAB, VOCAB)).astype(np.float32)


@pytest.mark.parametrize("beam_size", [1, 3, "tensor"])
def test_no_repeat_ngram_breaks_a_loop(beam_size):
    tables, max_length = looping_tables(), 9
    beam_size = tf.constant(3) if beam_size == "tensor" else beam_size

    def search(size):
        return decoding.decode(
            memory_step_fn(tf.constant(tables), tf.constant([0])),
            tf.fill([1], BOS),
            1,
            BOS,
            EOS,
            max_length,
            beam_size,
            no_repeat_ngram_size=size,
        )

    looping = hypotheses(search(0))[0][0][0]
    assert looping == (A, B) * 4 + (A,)
    for size in (2, 3):
        tokens = hypotheses(search(size))[0][0][0]
        assert not repeats_an_ngram(tokens, size)
        assert tokens[:size] == looping[:size]
        if beam_size == 1:
            assert tokens == stepwise_argmax(tables[0], max_length, size)[0]


def test_beam_finds_what_greedy_misses():
    first_order = np.zeros((VOCAB, VOCAB))
    # From BOS, A is likelier than B, but B is almost surely followed by EOS and A is not.
    first_order[BOS] = [0.02, 0.02, 0.5, 0.4, 0.06]
    first_order[A] = [0.02, 0.3, 0.2, 0.25, 0.23]
    first_order[B] = [0.0125, 0.95, 0.0125, 0.0125, 0.0125]
    first_order[C] = [0.1, 0.5, 0.2, 0.1, 0.1]
    first_order[EOS] = 0.2
    tables = np.broadcast_to(np.log(first_order), (1, VOCAB, VOCAB, VOCAB)).astype(np.float32)
    greedy = hypotheses(decode(greedy_search, tables, [0], 3))[0]
    beam = hypotheses(decode(beam_search, tables, [0], 3, beam_size=3, length_penalty=0))[0]
    assert greedy[0][0] == (A,)
    assert beam[0][0] == (B,)
    assert_same_hypotheses(beam, brute_force(tables[0], 3, 0.0)[:1])
    assert beam[0][1] > greedy[0][1]


@pytest.mark.parametrize(("beam_size", "length_penalty"), [(2, 0.0), (3, 0.6), (4, 1.5)])
def test_narrow_beam_matches_a_reference_beam_search(beam_size, length_penalty):
    tables, max_lengths = random_tables(3, seed=6), [3, 7, 5]
    result = decode(
        beam_search,
        tables,
        [0, 1, 2],
        tf.constant(max_lengths),
        beam_size=beam_size,
        length_penalty=length_penalty,
        n_best=beam_size,
    )
    for b, found in enumerate(hypotheses(result)):
        expected = reference_beam_search(tables[b], max_lengths[b], beam_size, length_penalty)
        assert_same_hypotheses(found, expected)


@pytest.mark.parametrize("n_best", [1, 2])
@pytest.mark.parametrize("seed", range(6))
def test_early_end_returns_what_a_search_to_the_end_returns(seed, n_best):
    # With n_best below the beam size, an example's search ends once its n best are
    # settled; the reference searches on until every beam is finished.
    tables, max_lengths = random_tables(3, seed=10 + seed), [4, 9, 6]
    result = decode(
        beam_search, tables, [0, 1, 2], tf.constant(max_lengths), beam_size=3, n_best=n_best
    )
    for b, found in enumerate(hypotheses(result)):
        expected = reference_beam_search(tables[b], max_lengths[b], 3, 0.6)
        assert_same_hypotheses(found, expected[:n_best])


def test_search_ends_once_the_best_cannot_be_beaten():
    # Ending at once is likely (0.9) and later ends are unlikely: the best hypothesis is
    # the empty one, and nothing that runs on can catch up with it.
    tables = np.full((1, VOCAB, VOCAB, VOCAB), np.log(0.25), np.float32)
    tables[..., EOS] = np.log(1e-4)
    tables[0, BOS, BOS] = np.log([1e-9, 0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3])
    step_fn = markov_step_fn(tf.constant(tables))
    calls = []

    def counting_step_fn(ids, state):
        calls.append(ids.shape[0])
        return step_fn(ids, state)

    result = beam_search(counting_step_fn, initial_state([0]), 1, BOS, EOS, 40, beam_size=3)
    assert hypotheses(result)[0] == [((), pytest.approx(np.log(0.9)))]
    assert len(calls) == 1  # a search to the end would take 40


def memory_step_fn(tables, contexts, calls: list | None = None):
    """`markov_step_fn` for `decoding.decode`: the context is each example's (`contexts`,
    closed over like an encoder's outputs), not state, and each row reads its example's
    through the `Rows` it is given; its ids go through `Rows.group` and back. Each call's
    input ids are recorded in `calls` (when eager)."""

    def step_fn(ids, previous, rows):
        if calls is not None:
            calls.append(ids.numpy())
        ids = rows.ungroup(rows.group(ids))
        indices = tf.stack([rows.take(contexts), previous, ids], axis=1)
        return tf.gather_nd(tables, indices), ids, tf.one_hot(ids, VOCAB)

    return step_fn


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decode_runs_only_the_rows_still_running(beam_size):
    tables, contexts, max_lengths = random_tables(4, seed=8), [3, 0, 2, 1], [2, 8, 3, 6]
    kwargs = {"beam_size": beam_size, "n_best": beam_size} if beam_size > 1 else {}
    search = beam_search if beam_size > 1 else greedy_search
    expected = decode(search, tables, contexts, tf.constant(max_lengths), **kwargs)
    calls = []
    found = decoding.decode(
        memory_step_fn(tf.constant(tables), tf.constant(contexts), calls),
        tf.fill([4], BOS),
        4,
        BOS,
        EOS,
        tf.constant(max_lengths),
        **kwargs,
    )
    for name in ("ids", "lengths", "scores", "attention"):
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name), name)
    # Rows drop out as they finish: never an EOS input after the first step, and the
    # rows of the example whose hypotheses stop after 2 tokens are gone by step 3.
    assert len(calls[0]) == 4 * beam_size
    assert all(EOS not in ids for ids in calls[1:])
    assert all(len(ids) <= 3 * beam_size for ids in calls[2:])
    assert len(calls) <= max(max_lengths)


def test_a_tensor_beam_size_is_one_trace_for_every_beam_size():
    tables, contexts, max_lengths = random_tables(3, seed=4), [2, 0, 1], [5, 8, 3]

    def search(beam_size):
        return decoding.decode(
            memory_step_fn(tf.constant(tables), tf.constant(contexts)),
            tf.fill([3], BOS),
            3,
            BOS,
            EOS,
            tf.constant(max_lengths),
            beam_size,
            length_penalty=0.6,
        )

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def traced(beam_size):
        result = search(beam_size)
        return result.ids, result.lengths, result.scores, result.attention

    for beam_size in (1, 2, 3, 5):
        found = DecodingResult(*traced(tf.constant(beam_size)))
        expected = search(beam_size)  # a Python int: 1 is greedy search, raw sums as scores
        for name in ("ids", "lengths", "scores", "attention"):
            np.testing.assert_allclose(  # scores: graph and eager round apart
                getattr(found, name), getattr(expected, name), 1e-6, err_msg=f"{beam_size}: {name}"
            )
    assert traced.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_search_stops_once_every_hypothesis_is_finished(search):
    # BOS is never generated and every sequence surely ends after its first token: the
    # other tokens have log-prob -inf, so a beam wider than the vocabulary gets dead
    # (-inf) hypotheses, which must not keep the search running.
    tables = random_tables(2, seed=7)
    tables[..., BOS] = -np.inf
    tables[:, :, A:, :] = -np.inf
    tables[:, :, A:, EOS] = 0.0
    step_fn = markov_step_fn(tf.constant(tables))
    calls = []

    def counting_step_fn(ids, state):
        calls.append(ids.shape[0])
        return step_fn(ids, state)

    kwargs = {"beam_size": VOCAB + 3, "n_best": 2} if search is beam_search else {}
    result = search(counting_step_fn, initial_state([0, 1]), 2, BOS, EOS, 50, **kwargs)
    assert len(calls) <= 2
    assert np.all(result.lengths <= 1) and np.all(np.isfinite(result.scores))


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_batch_rows_are_independent(search):
    tables, contexts, max_lengths = random_tables(3, seed=2), [2, 0, 1], [2, 7, 5]
    kwargs = {"beam_size": 3, "n_best": 2} if search is beam_search else {}
    batched = decode(search, tables, contexts, tf.constant(max_lengths), **kwargs)
    for b, (context, max_length) in enumerate(zip(contexts, max_lengths, strict=True)):
        alone = decode(search, tables, [context], max_length, **kwargs)
        length = alone.ids.shape[-1]
        np.testing.assert_array_equal(batched.lengths[b], alone.lengths[0])
        np.testing.assert_array_equal(batched.scores[b], alone.scores[0])
        np.testing.assert_array_equal(batched.ids[b, :, :length], alone.ids[0])
        np.testing.assert_array_equal(batched.attention[b, :, :length], alone.attention[0])
        assert not np.any(batched.ids[b, :, length:])


def test_n_best_are_distinct_sorted_and_padded():
    tables, max_length, beam_size, length_penalty = random_tables(3, seed=3), 6, 4, 0.6
    result = decode(
        beam_search,
        tables,
        [0, 1, 2],
        max_length,
        beam_size=beam_size,
        length_penalty=length_penalty,
        n_best=beam_size,
    )
    ids, lengths = result.ids.numpy(), result.lengths.numpy()
    assert ids.shape[:2] == lengths.shape == result.scores.shape == (3, beam_size)
    assert ids.shape[2] == lengths.max()
    for b, found in enumerate(hypotheses(result)):
        assert len({tokens for tokens, _ in found}) == beam_size
        assert all(s1 >= s2 for (_, s1), (_, s2) in zip(found, found[1:], strict=False))
        for k, (tokens, score) in enumerate(found):
            assert EOS not in tokens and len(tokens) <= max_length
            assert not np.any(ids[b, k, len(tokens) :])
            # Shorter than max_length means it ended with EOS, which the score includes.
            total = sum(
                token_log_prob(tables[b], tokens[:t], tokens[t]) for t in range(len(tokens))
            )
            steps = len(tokens)
            if steps < max_length:
                total += token_log_prob(tables[b], tokens, EOS)
                steps += 1
            np.testing.assert_allclose(
                score, total / ((5 + steps) / 6) ** length_penalty, rtol=1e-5
            )


def test_attention_follows_the_returned_hypotheses():
    tables = random_tables(3, seed=4)
    result = decode(beam_search, tables, [0, 1, 2], 6, beam_size=3, n_best=3)
    ids, lengths, attention = result.ids.numpy(), result.lengths.numpy(), result.attention.numpy()
    assert attention.shape == (*ids.shape, VOCAB)
    for b in range(3):
        for k in range(3):
            length = lengths[b, k]
            # Step t reads token t - 1, the toy model's attention.
            inputs = np.concatenate([[BOS], ids[b, k, : length - 1]])[:length]
            np.testing.assert_array_equal(attention[b, k, :length], np.eye(VOCAB)[inputs])
            assert not np.any(attention[b, k, length:])
    assert decode(beam_search, tables, [0], 6, with_attention=False, beam_size=3).attention is None
    assert decode(greedy_search, tables, [0], 6, with_attention=False).attention is None


@pytest.mark.parametrize("size, width", [(8000, 64), (37, 8), (5, 64)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_by_blocks_equals_tf_top_k(size, width, k):
    rng = np.random.default_rng(size + k)
    values = rng.normal(size=(2, 6, size)).astype("float32")
    values[0, 1] = np.round(values[0, 1])  # ties, broken towards the lower index
    values[1, 2] = -np.inf  # an absorbing row: one finite value
    values[1, 2, 3] = 0.0
    top, indices = decoding.top_k(tf.constant(values), tf.constant(min(k, size)), width)
    expected_top, expected_indices = tf.math.top_k(values, min(k, size))
    np.testing.assert_array_equal(top.numpy(), expected_top.numpy())
    finite = np.isfinite(expected_top.numpy())
    np.testing.assert_array_equal(indices.numpy()[finite], expected_indices.numpy()[finite])
    assert ((0 <= indices.numpy()) & (indices.numpy() < size)).all()


def test_tile_for_beam_is_batch_major():
    tiled = tile_for_beam({"a": tf.constant([1, 2]), "b": (tf.constant([[3.0], [4.0]]),)}, 3)
    np.testing.assert_array_equal(tiled["a"], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(tiled["b"][0], [[3.0]] * 3 + [[4.0]] * 3)


def test_a_negative_no_repeat_ngram_size_is_rejected():
    with pytest.raises(ValueError, match="no_repeat_ngram_size must not be negative"):
        decode(beam_search, random_tables(1), [0], 4, beam_size=2, no_repeat_ngram_size=-1)


def test_n_best_above_beam_size_is_rejected():
    with pytest.raises(ValueError, match="n_best"):
        decode(beam_search, random_tables(1), [0], 4, beam_size=2, n_best=3)


class Translator(tf.Module):
    """What an export wraps: searches in a signature with a dynamic batch."""

    def __init__(self, tables: np.ndarray):
        super().__init__()
        self.tables = tf.Variable(tables, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="contexts")])
    def decode(self, contexts):
        step_fn = markov_step_fn(self.tables)
        batch_size = tf.shape(contexts)[0]
        max_length = 2 * contexts + 2  # per example, like 2 * source_length + 10
        greedy = greedy_search(step_fn, initial_state(contexts), batch_size, BOS, EOS, max_length)
        beam = beam_search(
            step_fn, initial_state(contexts), batch_size, BOS, EOS, max_length, 3, n_best=2
        )
        decoded = decoding.decode(
            memory_step_fn(self.tables, contexts),
            tf.fill([batch_size], BOS),
            batch_size,
            BOS,
            EOS,
            max_length,
            3,
            n_best=2,
        )
        return {
            **{f"greedy_{name}": getattr(greedy, name) for name in ("ids", "lengths", "scores")},
            **{f"beam_{name}": getattr(beam, name) for name in ("ids", "lengths", "scores")},
            "beam_attention": beam.attention,
            # decode runs the rows still running only: a cond inside the loop
            **{f"decode_{name}": getattr(decoded, name) for name in ("ids", "lengths", "scores")},
        }


def session_run(path, contexts: np.ndarray) -> dict:
    """Runs `serving_default` through the session-based loader, as TF Serving does."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        fetches = {name: info.name for name, info in signature.outputs.items()}
        return session.run(fetches, {signature.inputs["contexts"].name: contexts})


def test_runs_in_tf_function_and_saved_model(tmp_path):
    tables = random_tables(3, seed=5)
    translator = Translator(tables)
    batches = [np.array([2, 0, 1], np.int32), np.array([1], np.int32)]
    expected = []
    for contexts in batches:
        step_fn = markov_step_fn(tf.constant(tables))
        max_length = tf.constant(2 * contexts + 2)
        greedy = greedy_search(
            step_fn, initial_state(contexts), len(contexts), BOS, EOS, max_length
        )
        beam = beam_search(
            step_fn, initial_state(contexts), len(contexts), BOS, EOS, max_length, 3, n_best=2
        )
        expected.append(
            {
                **{
                    f"greedy_{name}": getattr(greedy, name) for name in ("ids", "lengths", "scores")
                },
                **{f"beam_{name}": getattr(beam, name) for name in ("ids", "lengths", "scores")},
                "beam_attention": beam.attention,
                **{f"decode_{name}": getattr(beam, name) for name in ("ids", "lengths", "scores")},
            }
        )

    path = tmp_path / "translator"
    tf.saved_model.save(translator, str(path), signatures={"serving_default": translator.decode})
    loaded = tf.saved_model.load(str(path))
    for contexts, eager in zip(batches, expected, strict=True):
        for outputs in (
            translator.decode(contexts),
            loaded.decode(contexts),
            loaded.signatures["serving_default"](contexts=tf.constant(contexts)),
            session_run(path, contexts),
        ):
            assert outputs.keys() == eager.keys()
            for name, value in eager.items():
                np.testing.assert_array_equal(outputs[name], value, err_msg=name)

    ops = saved_model_ops(path)
    assert {"While", "StatelessWhile"} & ops
    assert not {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & ops
    assert {op for op in ops if not hasattr(tf.raw_ops, op)} == set()
