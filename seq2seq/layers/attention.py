"""Global attention of a decoder over encoder outputs: Luong or Bahdanau scores.

Both score the decoder state against every encoder position and return the
softmax-weighted sum of the encoder outputs. Keys are computed once per
source sentence (`keys`), so a step-by-step decoder does not recompute them.
The scoring itself is Keras's own `Attention` (dot product) and
`AdditiveAttention` layers.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="seq2seq")
class GlobalAttention(keras.layers.Layer):
    """Attention over a memory (encoder outputs), for any number of queries.

    Args:
        kind: `"luong"`: score = q W k (multiplicative, Luong et al. 2015);
            `"bahdanau"`: score = v tanh(W1 q + W2 k) (additive, Bahdanau et
            al. 2015). Default: `"luong"`.
        units: Size of the additive projections (`"bahdanau"` only).
            Default: 256.
        memory_dim: Size of the memory vectors. Default: 512.

    Call arguments:
        query: `[batch, queries, query_dim]`.
        memory: `[batch, source, memory_dim]`.
        keys: what `keys(memory)` returned for this memory.
        memory_mask: boolean `[batch, source]`, `False` at padding.

    Returns:
        `(context [batch, queries, memory_dim], weights [batch, queries, source])`.

    Example:

    >>> attention = GlobalAttention("bahdanau", units=8, memory_dim=6)
    >>> memory = np.ones((2, 5, 6), "float32")
    >>> context, weights = attention(np.ones((2, 3, 4), "float32"), memory,
    ...                              attention.keys(memory), np.ones((2, 5), bool))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 3, 6), (2, 3, 5))
    """

    def __init__(self, kind: str = "luong", units: int = 256, memory_dim: int = 512, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("luong", "bahdanau"):
            raise ValueError(f"`kind` must be 'luong' or 'bahdanau', got {kind!r}.")
        # Masks are passed explicitly; this only accepts inputs that carry one.
        self.supports_masking = True
        self.kind = kind
        self.units = units
        self.memory_dim = memory_dim
        # Luong's W maps the query into the memory space; Bahdanau's W1 and W2
        # map query and memory into a shared `units`-sized space.
        query_dim = memory_dim if kind == "luong" else units
        self.query_projection = keras.layers.Dense(query_dim, use_bias=False, name="query")
        if kind == "luong":
            self.key_projection = None
            self.score = keras.layers.Attention(score_mode="dot", name="score")
        else:
            self.key_projection = keras.layers.Dense(units, use_bias=False, name="key")
            self.score = keras.layers.AdditiveAttention(use_scale=True, name="score")

    def keys(self, memory):
        """What the queries are scored against, computed once per memory."""
        return memory if self.key_projection is None else self.key_projection(memory)

    def call(self, query, memory, keys, memory_mask):
        context, weights = self.score(
            [self.query_projection(query), memory, keys],
            mask=[None, memory_mask],
            return_attention_scores=True,
        )
        return context, weights

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "units": self.units,
            "memory_dim": self.memory_dim,
        }
