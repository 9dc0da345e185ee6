import numpy as np
import pytest
from keras import ops

from seq2seq.training.losses import SmoothedCrossEntropy


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
