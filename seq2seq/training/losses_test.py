import importlib.util
import itertools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from seq2seq.training.losses import SmoothedCrossEntropy, ctc_loss


def reference_loss(labels, logits, smoothing, pad_id=0):
    """Cross-entropy against the smoothed one-hot target, in float64 NumPy."""
    shifted = logits.astype("float64") - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    vocab = logits.shape[-1]
    target = np.full(logits.shape, smoothing / vocab)
    np.put_along_axis(target, labels[..., None], 1.0 - smoothing + smoothing / vocab, axis=-1)
    token_loss = -(target * log_probs).sum(-1)
    weights = (labels != pad_id).astype("float64")
    return (token_loss * weights).sum() / max(weights.sum(), 1.0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_matches_the_smoothed_one_hot_cross_entropy(smoothing):
    rng = np.random.default_rng(0)
    logits = (5 * rng.normal(size=(3, 7, 11))).astype("float32")
    labels = rng.integers(1, 11, size=(3, 7))
    labels[0, 4:] = 0  # padding is left out of the mean
    labels[2, 1:] = 0
    loss = SmoothedCrossEntropy(smoothing)(labels, logits)
    np.testing.assert_allclose(float(loss), reference_loss(labels, logits, smoothing), rtol=1e-5)


def test_gradient_is_softmax_minus_the_smoothed_target():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=(2, 3, 5)).astype("float32"))
    labels = np.array([[1, 2, 0], [4, 3, 3]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = SmoothedCrossEntropy(0.1)(labels, logits)
    gradient = tape.gradient(loss, logits).numpy()
    target = np.full((2, 3, 5), 0.1 / 5)
    np.put_along_axis(target, labels[..., None], 0.9 + 0.1 / 5, axis=-1)
    expected = (ops.convert_to_numpy(ops.softmax(logits)) - target) * (labels != 0)[..., None] / 5
    np.testing.assert_allclose(gradient, expected, atol=1e-6)


def test_rejects_smoothing_outside_zero_to_one():
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedCrossEntropy(1.0)


def brute_force_ctc(labels, logits, blank_id):
    """-log of the summed probability of every frame path that collapses to `labels`
    (merge repeats, drop blanks), in float64 NumPy; inf when none does."""
    frames, classes = logits.shape
    log_probs = logits.astype("float64") - np.log(np.exp(logits.astype("float64")).sum(-1))[:, None]
    total = 0.0
    for path in itertools.product(range(classes), repeat=frames):
        merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
        if [c for c in merged if c != blank_id] == list(labels):
            total += np.exp(log_probs[np.arange(frames), path].sum())
    return -np.log(total) if total else np.inf


def loss_and_gradient(function, logits):
    """`function(logits)` and the gradient of its sum, under the active backend."""
    if keras.backend.backend() == "jax":
        import jax

        gradient = jax.grad(lambda x: ops.sum(function(x)))(logits)
        return np.asarray(function(logits)), np.asarray(gradient)
    import tensorflow as tf

    variable = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        loss = function(variable)
    return loss.numpy(), tape.gradient(loss, variable).numpy()


@pytest.mark.parametrize("blank_id", [0, 2])
def test_ctc_loss_sums_every_alignment(blank_id):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 5, 4)).astype("float32")
    a, b, c = [c for c in range(4) if c != blank_id]
    # The fourth has no labels: its one path is all blanks.
    labels = np.array([[a, b], [a, a], [c, 0], [0, 0], [a, b], [b, b]])
    label_lengths = np.array([2, 2, 1, 0, 2, 2])
    # No alignment for the last two: 1 frame for 2 labels, 2 frames for a repeated
    # label (it needs a blank between).
    logit_lengths = np.array([5, 4, 3, 4, 1, 2])
    expected = [
        brute_force_ctc(labels[i, : label_lengths[i]], logits[i, : logit_lengths[i]], blank_id)
        for i in range(6)
    ]
    assert np.isinf(expected[4:]).all()
    loss, gradient = loss_and_gradient(
        lambda x: ctc_loss(labels, x, label_lengths, logit_lengths, blank_id=blank_id), logits
    )
    np.testing.assert_allclose(loss, [*expected[:4], 0.0, 0.0], rtol=1e-5)
    # Frames after a sequence's length, and sequences with no alignment, get no gradient.
    assert not gradient[1, 4:].any() and not gradient[2, 3:].any() and not gradient[4:].any()
    assert all(np.abs(gradient[i, : logit_lengths[i]]).sum(-1).all() for i in range(4))


def test_ctc_loss_equals_keras_ctc_loss_and_its_gradient():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 60, 31)).astype("float32")
    label_lengths = np.array([20, 7, 25])
    labels = rng.integers(1, 31, size=(3, 25))
    labels[np.arange(25)[None, :] >= label_lengths[:, None]] = 0
    logit_lengths = np.array([60, 41, 52])
    ours, our_gradient = loss_and_gradient(
        lambda x: ctc_loss(labels, x, label_lengths, logit_lengths), logits
    )
    keras_loss, keras_gradient = loss_and_gradient(
        lambda x: ops.ctc_loss(labels, x, label_lengths, logit_lengths, mask_index=0), logits
    )
    np.testing.assert_allclose(ours, keras_loss, rtol=1e-5)
    np.testing.assert_allclose(our_gradient, keras_gradient, atol=1e-4)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or importlib.util.find_spec("jax") is None,
    reason="JAX is not installed (or this run is already the JAX one)",
)
def test_ctc_loss_under_jax():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", __file__, "-k", "ctc_loss_"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout, result.stdout[-3000:]
