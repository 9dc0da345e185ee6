"""A stack of bidirectional GRU layers with residual connections."""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.layers import GRU


def gru_class(name: str):
    """The GRU implementation a config names: ours or the stock Keras one."""
    if name == "ours":
        return GRU
    if name == "stock":
        # cuDNN off so that a model exported next to a GPU still runs on CPU.
        return lambda units, **kwargs: keras.layers.GRU(units, use_cudnn=False, **kwargs)
    raise ValueError(f"Unknown GRU implementation {name!r}: use 'ours' or 'stock'.")


@keras.saving.register_keras_serializable(package="seq2seq")
class RNNEncoder(keras.layers.Layer):
    """Bidirectional GRU layers; layers after the first add their input back.

    Args:
        units: GRU units per direction. Default: 256.
        num_layers: Number of bidirectional layers. Default: 2.
        dropout: Dropout between layers (training only). Default: 0.0.
        gru: `"ours"` or `"stock"`. Default: `"ours"`.

    Call arguments:
        inputs: embedded source `[batch, time, features]`.
        mask: boolean `[batch, time]`, `False` at padding.
        training: whether dropout is active.

    Returns:
        `(outputs [batch, time, 2 * units], final_state [batch, 2 * units])`,
        the final state being the last layer's forward and backward states.
    """

    def __init__(
        self,
        units: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        gru: str = "ours",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be at least 1, got {num_layers}.")
        # Masks are passed explicitly; this only accepts inputs that carry one.
        self.supports_masking = True
        self.units = units
        self.num_layers = num_layers
        self.dropout = dropout
        self.gru = gru
        layer = gru_class(gru)
        self.rnns = [
            keras.layers.Bidirectional(
                layer(units, return_sequences=True, return_state=True), name=f"bigru_{i}"
            )
            for i in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout)

    def call(self, inputs, mask=None, training=False):
        outputs = inputs
        for index, rnn in enumerate(self.rnns):
            layer_inputs = self.dropout_layer(outputs, training=training)
            layer_outputs, forward_state, backward_state = rnn(
                layer_inputs, mask=mask, training=training
            )
            outputs = layer_outputs if index == 0 else outputs + layer_outputs
        return outputs, ops.concatenate([forward_state, backward_state], axis=-1)

    def grow(self, trained_layers: int) -> list:
        """Sets the layers from `trained_layers` on to add nothing, and returns their
        variables: a model with `trained_layers` layers lacks them (training on from it
        with more layers, `seq2seq.export.saved_model.assign_exported_variables`).

        With zero input kernels and biases a GRU started from a zero state stays at zero
        (its candidate is `tanh(r * (0 @ recurrent_kernel))`), so each such layer's
        residual connection passes its input through and the encoder's outputs are
        those of its first `trained_layers` layers. Training moves the input kernel of
        the candidate first, whose gradient is not zero. The final state is the last
        layer's, so it starts at zero.

        Raises:
            ValueError: if `trained_layers` is not between 1 and `num_layers`.
        """
        if not 1 <= trained_layers <= self.num_layers:
            raise ValueError(
                f"cannot grow from {trained_layers} layers to {self.num_layers}: the "
                "first layer has no residual connection to pass its input through"
            )
        new = []
        for rnn in self.rnns[trained_layers:]:
            for direction in (rnn.forward_layer, rnn.backward_layer):
                cell = direction.cell
                for weight in (cell.kernel, cell.bias):
                    if weight is not None:
                        weight.assign(ops.zeros_like(weight))
            new += rnn.weights
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "gru": self.gru,
        }
