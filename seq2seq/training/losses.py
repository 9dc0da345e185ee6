"""Label-smoothed cross-entropy over the non-padding tokens of a batch."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy against `(1 - smoothing)` on the label plus `smoothing`
    spread over the vocabulary, averaged over the tokens whose label is not
    padding (id 0).

    Args:
        label_smoothing: Mass moved from the label to the uniform
            distribution. Default: 0.1.
        pad_id: Label of padding, ignored. Default: 0.

    Call arguments:
        y_true: int labels `[batch, time]`.
        y_pred: logits `[batch, time, vocab]`.
    """

    def __init__(self, label_smoothing: float = 0.1, pad_id: int = 0, **kwargs):
        kwargs.setdefault("name", "smoothed_cross_entropy")
        super().__init__(**kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = label_smoothing
        self.pad_id = pad_id

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        labels = ops.cast(y_true, "int32")
        # -log p(label), from the backend's fused softmax cross-entropy kernel.
        label_loss = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        # -mean over the vocabulary of log p = logsumexp(logits) - mean(logits).
        uniform_loss = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)
        token_loss = (1.0 - self.label_smoothing) * label_loss + self.label_smoothing * uniform_loss
        weights = ops.cast(ops.not_equal(labels, self.pad_id), "float32")
        # One scalar per batch: the mean over real tokens, not over padding.
        return ops.sum(token_loss * weights) / ops.maximum(ops.sum(weights), 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "pad_id": self.pad_id,
        }
