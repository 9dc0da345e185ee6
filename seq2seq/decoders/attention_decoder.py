"""A GRU decoder with global attention over the encoder's outputs.

The attention reads the decoder's GRU state after each step (Luong et al.'s
arrangement, without input feeding): in training the GRU runs over the whole
target sequence at once in our fused kernel, and attention is then one batched
matmul; `step` does the same one token at a time for search.
"""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.encoders.rnn_encoder import gru_class
from seq2seq.layers.attention import GlobalAttention


@keras.saving.register_keras_serializable(package="seq2seq")
class AttentionDecoder(keras.layers.Layer):
    """GRU -> attention over the memory -> tanh combination of state and context.

    Args:
        units: GRU units. Default: 512.
        output_dim: Size of the attentional hidden vector it returns (the
            embedding size when embeddings are tied). Default: 256.
        memory_dim: Size of the encoder outputs. Default: 512.
        attention: `"luong"` or `"bahdanau"`. Default: `"luong"`.
        attention_units: Additive attention size (Bahdanau). Default: 256.
        dropout: Dropout on the GRU outputs (training only). Default: 0.0.
        gru: `"ours"` or `"stock"`. Default: `"ours"`.

    Call arguments:
        inputs: embedded target (shifted right) `[batch, time, features]`.
        initial_state: `[batch, units]`.
        memory, keys, memory_mask: encoder outputs, `attention.keys(memory)`,
            and the source padding mask.
        mask: target padding mask `[batch, time]`.
        training: whether dropout is active.

    Returns:
        `(hidden [batch, time, output_dim], attention [batch, time, source])`.
    """

    def __init__(
        self,
        units: int = 512,
        output_dim: int = 256,
        memory_dim: int = 512,
        attention: str = "luong",
        attention_units: int = 256,
        dropout: float = 0.0,
        gru: str = "ours",
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Masks are passed explicitly; this only accepts inputs that carry one.
        self.supports_masking = True
        self.units = units
        self.output_dim = output_dim
        self.memory_dim = memory_dim
        self.attention_kind = attention
        self.attention_units = attention_units
        self.dropout = dropout
        self.gru = gru
        self.rnn = gru_class(gru)(units, return_sequences=True, name="gru")
        self.attention = GlobalAttention(attention, attention_units, memory_dim, name="attention")
        self.combine = keras.layers.Dense(output_dim, activation="tanh", name="combine")
        self.dropout_layer = keras.layers.Dropout(dropout)

    def call(self, inputs, initial_state, memory, keys, memory_mask, mask=None, training=False):
        states = self.rnn(inputs, initial_state=initial_state, mask=mask, training=training)
        states = self.dropout_layer(states, training=training)
        return self._attend(states, memory, keys, memory_mask)

    def step(self, inputs, state, memory, keys, memory_mask, rows=None):
        """One decoding step: `inputs [n, features]`, `state [n, units]` ->
        `(hidden [n, output_dim], new_state [n, units], attention [n, source])`, the
        attention in float32 under any dtype policy, as `seq2seq.utils.decoding` takes it.

        `memory`, `keys` and `memory_mask` have one row per example. With `rows` (the
        `seq2seq.utils.decoding.Rows` of a beam search), an example's beams are its
        queries, so the memory is read once per example rather than once per beam; with
        None, row i is example i.
        """
        new_state, _ = self.rnn.cell(inputs, [state])
        if rows is None:
            group, ungroup = (lambda t: ops.expand_dims(t, 1)), (lambda t: t[:, 0])
        else:
            group, ungroup = rows.group, rows.ungroup
        context, weights = self.attention(group(new_state), memory, keys, memory_mask)
        hidden = self.combine(ops.concatenate([new_state, ungroup(context)], axis=-1))
        return hidden, new_state, ops.cast(ungroup(weights), "float32")

    def _attend(self, states, memory, keys, memory_mask):
        context, weights = self.attention(states, memory, keys, memory_mask)
        return self.combine(ops.concatenate([states, context], axis=-1)), weights

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "output_dim": self.output_dim,
            "memory_dim": self.memory_dim,
            "attention": self.attention_kind,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "gru": self.gru,
        }
