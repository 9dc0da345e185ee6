"""The attention decoder's search step: beams as queries over the untiled memory."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.decoders.attention_decoder import AttentionDecoder
from seq2seq.utils.decoding import Rows, tile_for_beam

BATCH, BEAM, SOURCE, MEMORY_DIM, UNITS = 3, 2, 5, 6, 8
LENGTHS = np.array([5, 2, 4])


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
@pytest.mark.parametrize("indices", [None, [0, 3, 4]], ids=["all rows", "running rows"])
def test_a_step_through_rows_equals_a_step_on_each_rows_copy_of_the_memory(attention, indices):
    rng = np.random.default_rng(0)
    decoder = AttentionDecoder(
        UNITS, output_dim=4, memory_dim=MEMORY_DIM, attention=attention, attention_units=7
    )
    memory = tf.constant(rng.normal(size=(BATCH, SOURCE, MEMORY_DIM)), tf.float32)
    memory_mask = tf.sequence_mask(LENGTHS, SOURCE)
    decoder(
        tf.zeros((BATCH, 1, 4)),
        tf.zeros((BATCH, UNITS)),
        memory,
        decoder.attention.keys(memory),
        memory_mask,
    )  # builds the weights
    rows = BATCH * BEAM if indices is None else len(indices)
    inputs = tf.constant(rng.normal(size=(rows, 4)), tf.float32)
    state = tf.constant(rng.normal(size=(rows, UNITS)), tf.float32)

    given = None if indices is None else tf.constant(indices)
    per_row = tile_for_beam((memory, memory_mask), BEAM)
    if given is not None:
        per_row = tuple(tf.gather(t, given) for t in per_row)
    expected = decoder.step(
        inputs, state, per_row[0], decoder.attention.keys(per_row[0]), per_row[1]
    )
    found = decoder.step(
        inputs,
        state,
        memory,
        decoder.attention.keys(memory),
        memory_mask,
        Rows(BATCH, BEAM, given),
    )
    for name, want, got in zip(("hidden", "state", "attention"), expected, found, strict=True):
        assert got.shape == (rows, want.shape[-1]), name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    # Each row attends over its own example's frames only.
    examples = np.arange(BATCH * BEAM) if indices is None else np.asarray(indices)
    for weights, length in zip(np.asarray(found[2]), LENGTHS[examples // BEAM], strict=True):
        assert np.all(weights[:length] > 0) and np.all(weights[length:] == 0)
