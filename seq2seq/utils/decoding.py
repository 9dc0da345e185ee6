"""Greedy and beam search, written as TensorFlow graph code.

The model is reached only through a step function (`StepFn`), so the searches serve any
decoder. Both searches are one `tf.while_loop` over core TensorFlow ops: the same code runs
eagerly, inside `tf.function` (batch size and maximum lengths may be dynamic) and inside a
SavedModel that stock TensorFlow Serving runs.

Greedy search is beam search with a single beam: the top-1 candidate of one beam is the
argmax, and a single beam is its own parent. The beam size may be a scalar int32 tensor, so
that one traced graph serves every beam size (an export's `beam_N` signatures share it); a
Python int lets the graph skip what a single beam does not need. Modelled on OpenNMT-tf's
`opennmt/utils/decoding.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

StepOutput = tuple[tf.Tensor, Any, tf.Tensor | None]
StepFn = Callable[[tf.Tensor, Any], StepOutput]
"""`step_fn(ids, state) -> (log_probs, new_state, attention)`.

`ids` is `[N]` int32, the previous token of each row (BOS at the first step); `state` is a
nested structure of tensors with leading dimension `N`. `log_probs` is `[N, vocab]` float32,
already log-softmaxed; `new_state` has the structure of `state`; `attention` is
`[N, src_len]` float32, or None.
"""

_NEG_INF = float("-inf")

BeamSize = int | tf.Tensor
"""A number of beams: a Python int, or a scalar int32 tensor (see the module docstring)."""


@dataclasses.dataclass
class DecodingResult:
    """The hypotheses a search returns, best first.

    Attributes:
        ids: `[batch, n_best, length]` int32 token ids without EOS, padded with 0 after each
            hypothesis; `length` is that of the longest returned hypothesis.
        lengths: `[batch, n_best]` int32 number of tokens of each hypothesis, EOS excluded.
        scores: `[batch, n_best]` float32: the sum of the log-probs (greedy search), or the
            length-penalized score that ranked the hypothesis (beam search).
        attention: `[batch, n_best, length, src_len]` float32 attention of each returned
            token (0 after each hypothesis), or None when the step function returns none.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor | None


class _Beams(NamedTuple):
    """The `tf.while_loop` variables of a search over `batch * beam_size` rows."""

    step: tf.Tensor  # scalar int32: steps run so far
    last_ids: tf.Tensor  # [batch, beam] int32: the input of the next step
    state: Any  # the step function's state, leading dimension batch * beam
    scores: tf.Tensor  # [batch, beam] float32: sum of the log-probs
    num_steps: tf.Tensor  # [batch, beam] int32: tokens generated, EOS included
    finished: tf.Tensor  # [batch, beam] bool
    tokens: tf.TensorArray  # per step, [batch, beam] int32: the token each beam took
    parents: tf.TensorArray  # per step, [batch, beam] int32: the beam each beam extended
    attention: tf.TensorArray  # per step, [batch, beam, src_len] float32
    history: Any  # [batch, beam, max_steps + 1] int32 tokens of each hypothesis (-1 after
    # them) when repeated n-grams are blocked, else ()


def tile_for_beam(structure: Any, beam_size: BeamSize) -> Any:
    """Repeats every tensor of a nested structure `beam_size` times along axis 0.

    The result is batch-major (`[b0, b0, ..., b1, b1, ...]`), the row order of beam search.
    `beam_search` tiles its initial state itself; its callers tile what their step function
    closes over (`decode`'s read it through `Rows` instead).

    Args:
        structure: nested structure of tensors with leading dimension `batch`.
        beam_size: number of copies of each row.

    Returns:
        The same structure, with leading dimension `batch * beam_size`.
    """
    if _is_single_beam(beam_size):
        return structure
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), structure)


def greedy_search(
    step_fn: StepFn,
    initial_state: Any,
    batch_size: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
    max_length: int | tf.Tensor,
    no_repeat_ngram_size: int = 0,
) -> DecodingResult:
    """Decodes by taking the most likely token at each step.

    Args:
        step_fn: the model's step function (see `StepFn`), called on `batch_size` rows.
        initial_state: nested structure of tensors with leading dimension `batch_size`.
        batch_size: number of examples (a Python int or a scalar int32 tensor).
        bos_id: token fed to the first step.
        eos_id: token that finishes a sequence.
        max_length: maximum number of tokens per sequence, EOS excluded: a Python int, a
            scalar int32 tensor, or a `[batch]` int32 tensor. A sequence that reaches it is
            finished without EOS.
        no_repeat_ngram_size: when positive, no hypothesis holds the same n-gram of this
            many tokens twice (see `beam_search`). Default: 0 (off).

    Returns:
        A `DecodingResult` with `n_best = 1` whose scores are sums of log-probs.
    """
    return beam_search(
        step_fn,
        initial_state,
        batch_size,
        bos_id,
        eos_id,
        max_length,
        1,
        0.0,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )


def beam_search(
    step_fn: StepFn,
    initial_state: Any,
    batch_size: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
    max_length: int | tf.Tensor,
    beam_size: BeamSize,
    length_penalty: float = 0.6,
    n_best: int = 1,
    no_repeat_ngram_size: int = 0,
) -> DecodingResult:
    """Decodes with a batched beam search over `batch_size * beam_size` rows.

    Every candidate is ranked by its sum of log-probs divided by the GNMT length penalty
    `((5 + steps) / 6) ** length_penalty`, where `steps` counts the hypothesis's tokens,
    EOS included. A finished hypothesis keeps its score and its place in the beam until
    better candidates push it out. An example's search ends once its `n_best` finished
    hypotheses can no longer be beaten by a running one (log-probs are at most 0, so a
    running hypothesis's sum only falls; see `_settled`): what it returns is what
    searching on until every beam finished would return, in fewer steps. The loop stops
    when every example's search has ended.

    Args:
        step_fn: the model's step function (see `StepFn`), called on `batch_size *
            beam_size` rows in batch-major order; tensors it closes over must be tiled
            with `tile_for_beam`.
        initial_state: nested structure of tensors with leading dimension `batch_size`
            (tiled here).
        batch_size: number of examples (a Python int or a scalar int32 tensor).
        bos_id: token fed to the first step.
        eos_id: token that finishes a hypothesis.
        max_length: maximum number of tokens per hypothesis, EOS excluded: a Python int, a
            scalar int32 tensor, or a `[batch]` int32 tensor. A hypothesis that reaches it
            is finished without EOS.
        beam_size: number of hypotheses kept per example (a `BeamSize`).
        length_penalty: the GNMT alpha; 0 ranks by the raw sum of log-probs.
        n_best: number of hypotheses returned per example, at most `beam_size` (checked
            when that is a Python int; a tensor smaller than `n_best` fails at run time).
        no_repeat_ngram_size: when positive, a token that would make a hypothesis hold
            the same n-gram of this many tokens twice gets log-prob -inf (EOS excepted),
            like `no_repeat_ngram_size` of Hugging Face's `generate`: it stops the loops
            that a weak model falls into ("and his two sons, and his two sons, ...")
            until the length limit. Default: 0 (off).

    Returns:
        A `DecodingResult` with the `n_best` best hypotheses per example, best first.
        Should an example have fewer than `n_best` hypotheses with a finite score, the
        rest have score -inf.
    """
    return _search(
        step_fn,
        initial_state,
        batch_size,
        bos_id,
        eos_id,
        max_length,
        beam_size,
        length_penalty,
        n_best,
        no_repeat_ngram_size,
    )


@dataclasses.dataclass(frozen=True)
class Rows:
    """Which rows of a `batch * beam_size` search a step function is given, so that it can
    read what an example's beams share (encoder memory, CTC emissions) once per example.

    Copying such values for every row, as `tile_for_beam` does, and gathering them again
    for the running rows at every step costs a pass over beam-size copies of them;
    attention over the untiled memory with the beams as queries (`group` the queries,
    `ungroup` the result) reads it once per example, in fewer and larger matmuls, and
    `take` copies only the slices a row needs.

    Attributes:
        batch_size: the number of examples (int or scalar int32 tensor).
        beam_size: rows per example (a `BeamSize`).
        indices: int32 `[n]` indices of the given rows among all `batch * beam_size`
            (batch-major), or None when all of them are given, in order.

    Example:

    >>> rows = Rows(2, 2, tf.constant([0, 3]))
    >>> rows.group(tf.constant([[1.0], [2.0]]))[..., 0].numpy().tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    >>> rows.ungroup(tf.constant([[[1.0], [5.0]], [[6.0], [2.0]]]))[:, 0].numpy().tolist()
    [1.0, 2.0]
    >>> rows.examples().numpy().tolist(), rows.take(tf.constant([10, 20])).numpy().tolist()
    ([0, 1], [10, 20])
    """

    batch_size: int | tf.Tensor
    beam_size: BeamSize
    indices: tf.Tensor | None = None

    def group(self, values: tf.Tensor) -> tf.Tensor:
        """`[n, ...]` (one per given row) -> `[batch, beam, ...]`, zeros where a row is not
        given."""
        shape = tf.shape(values)[1:]
        if self.indices is not None:
            total = self.batch_size * self.beam_size
            values = tf.scatter_nd(
                self.indices[:, tf.newaxis], values, tf.concat([[total], shape], 0)
            )
        return tf.reshape(values, tf.concat([[self.batch_size, self.beam_size], shape], 0))

    def ungroup(self, grouped: tf.Tensor) -> tf.Tensor:
        """`[batch, beam, ...]` -> `[n, ...]`: the given rows, the inverse of `group`."""
        flat = tf.reshape(grouped, tf.concat([[-1], tf.shape(grouped)[2:]], 0))
        return flat if self.indices is None else tf.gather(flat, self.indices)

    def examples(self) -> tf.Tensor:
        """int32 `[n]`: the example each given row belongs to."""
        given = tf.range(self.batch_size * self.beam_size) if self.indices is None else self.indices
        return given // self.beam_size

    def take(self, per_example: tf.Tensor) -> tf.Tensor:
        """`[batch, ...]` -> `[n, ...]`: each given row's copy of its example's values."""
        return tf.gather(per_example, self.examples())


def decode(
    step_fn: Callable[[tf.Tensor, Any, Rows], StepOutput],
    initial_state: Any,
    batch_size: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
    max_length: int | tf.Tensor,
    beam_size: BeamSize = 1,
    length_penalty: float = 0.6,
    n_best: int = 1,
    no_repeat_ngram_size: int = 0,
) -> DecodingResult:
    """Greedy search (`beam_size=1`) or beam search of an encoder-decoder.

    What every step reads and never changes (the encoder outputs, a CTC head's
    emissions) is `step_fn`'s to close over, one row per example: it is neither carried
    in the search state, where beam search would gather (copy) all of it at every step to
    follow the beams' parents, nor tiled beam-size times. Each step is told which rows it
    is given (`Rows`), so that it reads an example's values once for all of its beams.

    Once some hypotheses are finished, `step_fn` runs on the other rows only: the results
    are those of `greedy_search` and `beam_search`, and the finished rows cost nothing
    (see `_step_running`).

    Args:
        step_fn: `step_fn(ids, state, rows) -> (log_probs, new_state, attention)`, the
            `StepFn` contract with the `Rows` that `ids` are as a third argument.
        initial_state, batch_size, bos_id, eos_id, max_length: as `beam_search` takes.
        beam_size: 1 for greedy search (a `BeamSize`; a tensor holding 1 searches
            greedily too). Default: 1.
        length_penalty, n_best: beam search only, as `beam_search` takes. Defaults: 0.6, 1.
        no_repeat_ngram_size: as `beam_search` takes. Default: 0 (off).

    Returns:
        The `DecodingResult` of `greedy_search` or `beam_search`.
    """

    def step(ids: tf.Tensor, state: Any, rows: tf.Tensor | None) -> StepOutput:
        return step_fn(ids, state, Rows(batch_size, beam_size, rows))

    if _is_single_beam(beam_size):
        length_penalty, n_best = 0.0, 1
    elif isinstance(beam_size, tf.Tensor):  # greedy's scores are the raw sums
        length_penalty = tf.where(beam_size == 1, 0.0, length_penalty)
    return _search(
        step,
        initial_state,
        batch_size,
        bos_id,
        eos_id,
        max_length,
        beam_size,
        length_penalty,
        n_best,
        no_repeat_ngram_size,
        running_rows_only=True,
    )


def _search(
    step_fn: StepFn,
    initial_state: Any,
    batch_size: int | tf.Tensor,
    bos_id: int,
    eos_id: int,
    max_length: int | tf.Tensor,
    beam_size: BeamSize,
    length_penalty: float | tf.Tensor,
    n_best: int,
    no_repeat_ngram_size: int = 0,
    running_rows_only: bool = False,
) -> DecodingResult:
    """Runs the search loop and reads out the best hypotheses.

    The arguments are those of `beam_search`; greedy search is `beam_size=1` with
    `length_penalty=0`. With `running_rows_only`, `step_fn` takes a third argument, the
    int32 indices of the rows it is given (None for all of them; see `_step_running`).

    Raises:
        ValueError: unless `1 <= n_best <= beam_size` (a tensor `beam_size`: `n_best >= 1`),
            or for a negative `no_repeat_ngram_size`.
    """
    if n_best < 1 or (isinstance(beam_size, int) and n_best > beam_size):
        raise ValueError(f"need 1 <= n_best <= beam_size, got {n_best=}, {beam_size=}")
    if no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must not be negative, got {no_repeat_ngram_size}")
    single_beam = _is_single_beam(beam_size)
    max_length = tf.broadcast_to(tf.cast(max_length, tf.int32), [batch_size])
    max_steps = tf.reduce_max(max_length)
    returns_attention = False

    def cond(beams: _Beams) -> tf.Tensor:
        # At least one step, so that the histories are never empty: an empty TensorArray
        # whose element shape is not fully known (dynamic batch) cannot be stacked.
        running = (beams.step < max_steps) & ~tf.reduce_all(beams.finished)
        return (beams.step == 0) | running

    def body(beams: _Beams) -> tuple[_Beams]:
        nonlocal returns_attention
        ids = tf.reshape(beams.last_ids, [-1])
        history = tf.reshape(beams.history, [tf.size(ids), -1]) if no_repeat_ngram_size else None

        # Each beam's length penalty is one positive number, so a beam's candidates rank
        # as their log-probs do: the best `beam_size` of all are among each beam's best
        # `beam_size`, and only those are scored and ranked (in the order of the flat
        # beam-major ranking, ties included), not all `beam_size * vocab` of them.
        def select(log_probs: tf.Tensor, rows: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
            if no_repeat_ngram_size:
                rows_history = history if rows is None else tf.gather(history, rows)
                log_probs = _block_repeated_ngrams(
                    log_probs, rows_history, beams.step, no_repeat_ngram_size, eos_id
                )
            return top_k(log_probs, tf.minimum(beam_size, tf.shape(log_probs)[-1]))

        if running_rows_only:
            candidates, state, attention = _step_running(
                step_fn, select, ids, beams.state, ~tf.reshape(beams.finished, [-1]), eos_id
            )
        else:
            log_probs, state, attention = step_fn(ids, beams.state)
            values, tokens = select(log_probs, None)
            finished = tf.reshape(beams.finished, [-1, 1])
            absorbing = _absorbing_candidates(tf.size(ids), tf.shape(values)[1], eos_id)
            candidates = tuple(
                tf.where(finished, a, c) for a, c in zip(absorbing, (values, tokens), strict=True)
            )
        returns_attention = attention is not None
        per_beam = tf.shape(candidates[0])[-1]
        candidate_log_probs, candidate_tokens = (
            tf.reshape(t, [-1, beam_size, per_beam]) for t in candidates
        )
        totals = beams.scores[:, :, tf.newaxis] + candidate_log_probs
        candidate_steps = beams.num_steps + tf.cast(~beams.finished, tf.int32)
        ranking = _penalize(totals, candidate_steps[:, :, tf.newaxis], length_penalty)
        _, top = tf.math.top_k(tf.reshape(ranking, [batch_size, -1]), beam_size)
        parents = top // per_beam
        tokens = tf.gather(tf.reshape(candidate_tokens, [batch_size, -1]), top, batch_dims=1)
        scores = tf.gather(tf.reshape(totals, [batch_size, -1]), top, batch_dims=1)
        num_steps = tf.gather(candidate_steps, parents, batch_dims=1)
        finished = (
            tf.gather(beams.finished, parents, batch_dims=1)
            | (tokens == eos_id)
            | (num_steps >= max_length[:, tf.newaxis])
            | (scores == _NEG_INF)  # a dead beam, picked when candidates ran out
        )
        if not single_beam:
            settled = _settled(scores, num_steps, finished, max_length, length_penalty, n_best)
            finished |= settled[:, tf.newaxis]
        # The parents' rows in the flattened batch * beam axis.
        rows = parents + beam_size * tf.range(tf.shape(parents)[0])[:, tf.newaxis]
        rows = tf.reshape(rows, [-1])
        history = beams.history
        if no_repeat_ngram_size:
            if not single_beam:
                history = tf.gather(history, parents, batch_dims=1)
            is_step = tf.range(tf.shape(history)[2]) == beams.step
            history = tf.where(is_step, tokens[:, :, tf.newaxis], history)
        if not single_beam:
            state = tf.nest.map_structure(lambda t: tf.gather(t, rows), state)
        attention_history = beams.attention
        if attention is not None:
            attention = tf.gather(attention, rows)
            attention = tf.reshape(attention, [-1, beam_size, tf.shape(attention)[-1]])
            attention_history = attention_history.write(beams.step, attention)
        return (
            _Beams(
                step=beams.step + 1,
                last_ids=tokens,
                state=state,
                scores=scores,
                num_steps=num_steps,
                finished=finished,
                tokens=beams.tokens.write(beams.step, tokens),
                parents=beams.parents.write(beams.step, parents),
                attention=attention_history,
                history=history,
            ),
        )

    # Only beam 0 starts alive, so that the first step does not fill the beam with copies
    # of the same hypothesis.
    scores = tf.tile(tf.where(tf.range(beam_size) == 0, 0.0, _NEG_INF)[tf.newaxis], [batch_size, 1])
    initial = _Beams(
        step=tf.constant(0),
        last_ids=tf.fill([batch_size, beam_size], bos_id),
        state=tile_for_beam(initial_state, beam_size),
        scores=scores,
        num_steps=tf.zeros([batch_size, beam_size], tf.int32),
        finished=tf.broadcast_to(max_length[:, tf.newaxis] <= 0, [batch_size, beam_size]),
        tokens=tf.TensorArray(tf.int32, size=0, dynamic_size=True),
        parents=tf.TensorArray(tf.int32, size=0, dynamic_size=True),
        attention=tf.TensorArray(tf.float32, size=0, dynamic_size=True),
        # One column more than steps, so that it has one even when max_steps is 0.
        history=tf.fill([batch_size, beam_size, max_steps + 1], -1) if no_repeat_ngram_size else (),
    )
    (final,) = tf.while_loop(cond, body, (initial,))

    scores, best = tf.math.top_k(_penalize(final.scores, final.num_steps, length_penalty), n_best)
    histories = [final.tokens.stack()]
    if returns_attention:  # known now: the loop body has been traced or run
        histories.append(final.attention.stack())
    paths = _backtrack(histories, final.parents.stack(), best)
    # Finished hypotheses go on with EOS, so each one is the tokens before its first EOS.
    before_eos = tf.cumsum(tf.cast(paths[0] == eos_id, tf.int32), axis=-1) == 0
    lengths = tf.reduce_sum(tf.cast(before_eos, tf.int32), axis=-1)
    length = tf.maximum(tf.reduce_max(lengths), 0)  # reduce_max is the int32 minimum if empty
    mask = tf.sequence_mask(lengths, length)
    attention = None
    if returns_attention:
        attention = tf.where(mask[..., tf.newaxis], paths[1][:, :, :length], 0.0)
    return DecodingResult(
        ids=tf.where(mask, paths[0][:, :, :length], 0),
        lengths=lengths,
        scores=scores,
        attention=attention,
    )


def top_k(values: tf.Tensor, k: int | tf.Tensor, width: int = 64) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.math.top_k(values, k)` (values and indices, ties to the lower index), computed
    through blocks of the last axis: the top k of a row lie in its k blocks with the
    highest maxima (a value outside them would have k greater blocks' maxima above it),
    so those blocks' elements are all that need ranking.

    On the CPU `tf.math.top_k` costs about 3 ns an element against 0.3 for a
    `reduce_max`: over a beam search's `[160, 8000]` log-probs it took 4.0 ms for k = 5
    and this 0.9 ms, with identical results; it was the search's costliest op.

    Args:
        values: `[..., n]` float32.
        k: how many to take, at most `n` (a Python int or a scalar int32 tensor).
        width: elements per block. Default: 64.

    Returns:
        `(top values [..., k], their indices [..., k] int32)`, best first.
    """
    shape = tf.shape(values)
    size = shape[-1]
    flat = tf.reshape(values, [-1, size])
    rows = tf.shape(flat)[0]
    blocks = (size + width - 1) // width

    def by_blocks() -> tuple[tf.Tensor, tf.Tensor]:
        padded = tf.pad(flat, [[0, 0], [0, blocks * width - size]], constant_values=_NEG_INF)
        grouped = tf.reshape(padded, [rows, blocks, width])
        _, best_blocks = tf.math.top_k(tf.reduce_max(grouped, axis=2), k)
        best_blocks = tf.sort(best_blocks, axis=1)  # in index order, for the ties
        candidates = tf.reshape(tf.gather(grouped, best_blocks, batch_dims=1), [rows, -1])
        top, positions = tf.math.top_k(candidates, k)
        indices = tf.gather(best_blocks, positions // width, batch_dims=1) * width
        # A padding element ranks only where a row has fewer than k finite values.
        return top, tf.minimum(indices + positions % width, size - 1)

    top, indices = tf.cond(k <= blocks, by_blocks, lambda: tuple(tf.math.top_k(flat, k)))
    out_shape = tf.concat([shape[:-1], [k]], axis=0)
    return tf.reshape(top, out_shape), tf.reshape(indices, out_shape)


def _is_single_beam(beam_size: BeamSize) -> bool:
    """Whether `beam_size` is known, while tracing, to be 1."""
    return isinstance(beam_size, int) and beam_size == 1


def _absorbing_candidates(
    rows: tf.Tensor, k: tf.Tensor, eos_id: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The `k` candidates of each of `rows` finished hypotheses, as the search's top-k
    makes them of a finished hypothesis's log-probs (EOS at no cost, nothing else, so
    that it keeps its score and its place in the beam): EOS at 0, then the lowest other
    tokens at -inf.

    Returns:
        `(values [rows, k] float32, tokens [rows, k] int32)`.
    """
    others = tf.range(k - 1)
    values = tf.where(tf.range(k) == 0, 0.0, _NEG_INF)
    tokens = tf.concat([[eos_id], others + tf.cast(others >= eos_id, tf.int32)], 0)
    shape = tf.stack([rows, k])
    return tf.broadcast_to(values, shape), tf.broadcast_to(tokens, shape)


def _step_running(
    step_fn: Callable[[tf.Tensor, Any, tf.Tensor | None], StepOutput],
    select: Callable[[tf.Tensor, tf.Tensor | None], tuple[tf.Tensor, tf.Tensor]],
    ids: tf.Tensor,
    state: Any,
    running: tf.Tensor,
    eos_id: int,
) -> tuple[tuple[tf.Tensor, tf.Tensor], Any, tf.Tensor | None]:
    """Runs `step_fn` and `select` on the rows still running only, and gives the finished
    ones what the search makes of them anyway: the absorbing candidates, their old state
    and no attention.

    In a batch of sentences, the rows of the short ones and of hypotheses that ended
    early finish first; about half the rows of a beam-5 translation of a length-sorted
    batch are finished ones, and each would cost as much as a running one (the output
    layer over the vocabulary, the CTC prefix scores over all frames). While every row
    runs, `step_fn` gets them all, and nothing is gathered.

    Args:
        step_fn: `step_fn(ids, state, rows) -> (log_probs, new_state, attention)`, where
            `rows` holds the int32 indices of the given rows among all, or is None when
            all rows are given.
        select: `select(log_probs, rows) -> (values, tokens)`, both `[rows, k]`: the
            candidates of the given rows, the best first.
        ids: `[N]` int32, the input of each row.
        state: nested structure of tensors with leading dimension `N`.
        running: `[N]` bool, the rows to run.
        eos_id: the token of the absorbing candidates (`_absorbing_candidates`).

    Returns:
        `((values [N, k], tokens [N, k]), new_state, attention [N, src_len] or None)`.
    """
    returns_attention = False

    def pack(candidates: tuple, new_state: Any, attention: tf.Tensor | None) -> tuple:
        nonlocal returns_attention
        returns_attention = attention is not None
        return (candidates, new_state, attention) if returns_attention else (candidates, new_state)

    def all_rows() -> tuple:
        log_probs, new_state, attention = step_fn(ids, state, None)
        return pack(select(log_probs, None), new_state, attention)

    def running_rows() -> tuple:
        rows = tf.cast(tf.where(running)[:, 0], tf.int32)
        indices = rows[:, tf.newaxis]

        def take(t: tf.Tensor) -> tf.Tensor:
            return tf.gather(t, rows)

        log_probs, new_state, attention = step_fn(
            take(ids), tf.nest.map_structure(take, state), rows
        )
        candidates = select(log_probs, rows)
        absorbing = _absorbing_candidates(tf.size(ids), tf.shape(candidates[0])[1], eos_id)
        candidates = tuple(
            tf.tensor_scatter_nd_update(a, indices, c)
            for a, c in zip(absorbing, candidates, strict=True)
        )
        new_state = tf.nest.map_structure(
            lambda old, new: tf.tensor_scatter_nd_update(old, indices, new), state, new_state
        )
        if attention is not None:
            zeros = tf.zeros([tf.size(ids), tf.shape(attention)[1]], attention.dtype)
            attention = tf.tensor_scatter_nd_update(zeros, indices, attention)
        return pack(candidates, new_state, attention)

    outputs = tf.cond(tf.reduce_all(running), all_rows, running_rows)
    return outputs if returns_attention else (*outputs, None)


def _block_repeated_ngrams(
    log_probs: tf.Tensor,
    history: tf.Tensor,
    step: tf.Tensor,
    size: int,
    eos_id: int,
) -> tf.Tensor:
    """Gives log-prob -inf to each token that would complete an n-gram of `size` tokens
    that the hypothesis already holds (EOS excepted).

    The next token goes at position `step`; an earlier n-gram starting at `i <= step -
    size` is repeated when its first `size - 1` tokens equal the hypothesis's last `size
    - 1`, and then its last token is the one to block. Finished hypotheses need no
    exception: the search gives them the absorbing candidates instead.

    Args:
        log_probs: `[rows, vocab]` float32.
        history: `[rows, width]` int32: tokens at positions `0 .. step - 1`.
        step: scalar int32, the number of tokens so far.
        size: the n-gram length, at least 1.
        eos_id: the token never blocked.

    Returns:
        `log_probs` with the blocked entries at -inf.
    """
    width = tf.shape(history)[1]
    starts = tf.maximum(width - size + 1, 0)  # positions where an n-gram may start
    shape = tf.stack([tf.shape(history)[0], starts])  # [rows, starts]
    repeated = tf.broadcast_to(tf.range(starts) <= step - size, shape)
    for k in range(size - 1):
        position = tf.clip_by_value(step - size + 1 + k, 0, width - 1)
        suffix_token = tf.gather(history, position, axis=1)
        repeated &= history[:, k : k + starts] == suffix_token[:, tf.newaxis]
    completing = history[:, size - 1 : size - 1 + starts]
    found = tf.where(repeated & (completing != eos_id))  # [n, 2]: row, start
    tokens = tf.gather_nd(completing, found)
    indices = tf.stack([tf.cast(found[:, 0], tf.int32), tokens], axis=1)
    blocked = tf.fill(tf.shape(tokens), _NEG_INF)
    return tf.tensor_scatter_nd_update(log_probs, indices, blocked)


def _settled(
    scores: tf.Tensor,
    num_steps: tf.Tensor,
    finished: tf.Tensor,
    max_length: tf.Tensor,
    length_penalty: float | tf.Tensor,
    n_best: int,
) -> tf.Tensor:
    """`[batch]` bool: whether an example's `n_best` finished hypotheses can no longer
    be beaten, so that searching on would return the same ones.

    Log-probs are at most 0, so a running hypothesis's sum can only fall, and the length
    penalty divides it by at most that of `max_length`: `scores / penalty(max_length)`
    bounds every ranking score it can still reach.

    Args:
        scores, num_steps, finished: `[batch, beam]`, as in `_Beams`.
        max_length: `[batch]` int32.
        length_penalty, n_best: as `beam_search` takes.
    """
    ranked = tf.where(finished, _penalize(scores, num_steps, length_penalty), _NEG_INF)
    nth_finished = tf.math.top_k(ranked, n_best).values[:, -1]
    reachable = _penalize(scores, max_length[:, tf.newaxis], length_penalty)
    best_running = tf.reduce_max(tf.where(finished, _NEG_INF, reachable), axis=1)
    return nth_finished > best_running


def _penalize(
    scores: tf.Tensor, num_steps: tf.Tensor, length_penalty: float | tf.Tensor
) -> tf.Tensor:
    """Divides sums of log-probs by the GNMT length penalty of their number of steps.

    Args:
        scores: float32 sums of log-probs.
        num_steps: int32 numbers of tokens (EOS included), broadcastable to `scores`.
        length_penalty: the GNMT alpha (a float or a scalar tensor); 0 leaves the
            scores as they are.

    Returns:
        `scores / ((5 + num_steps) / 6) ** length_penalty`.
    """
    if isinstance(length_penalty, float | int) and length_penalty == 0:
        return scores
    return scores / ((5.0 + tf.cast(num_steps, tf.float32)) / 6.0) ** length_penalty


def _backtrack(
    histories: list[tf.Tensor], parents: tf.Tensor, beam_indices: tf.Tensor
) -> list[tf.Tensor]:
    """Follows parent pointers back from the last step to read whole hypotheses.

    Args:
        histories: tensors `[steps, batch, beam, ...]` whose entry `[t, b, k]` belongs to
            the hypothesis in beam `k` of example `b` after step `t`.
        parents: `[steps, batch, beam]` int32: the beam that each beam extended at each step.
        beam_indices: `[batch, n]` int32: the beams to read, after the last step.

    Returns:
        One tensor `[batch, n, steps, ...]` per history.
    """
    num_steps = tf.shape(parents)[0]
    paths = [tf.TensorArray(history.dtype, size=num_steps) for history in histories]

    def body(t, beams, paths):
        paths = [
            path.write(t, tf.gather(history[t], beams, batch_dims=1))
            for path, history in zip(paths, histories, strict=True)
        ]
        return t - 1, tf.gather(parents[t], beams, batch_dims=1), paths

    _, _, paths = tf.while_loop(lambda t, *_: t >= 0, body, (num_steps - 1, beam_indices, paths))
    stacked = [path.stack() for path in paths]  # [steps, batch, n, ...]
    return [tf.transpose(path, [1, 2, 0, *range(3, path.shape.rank)]) for path in stacked]
