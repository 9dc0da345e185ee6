"""The translator: shared subword embeddings, a bidirectional GRU encoder, an
attention GRU decoder and an output layer tied to the embeddings.

One vocabulary serves both languages (a joint SentencePiece model), so the
source embeddings, the target embeddings and the output projection can be one
matrix: a third of the parameters to learn, which is what makes a small
corpus on two CPU cores learn fast. A source sentence starts with a target
language tag (`<2fr>`), so one model can translate in several directions.
"""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.config import ModelConfig
from seq2seq.decoders import AttentionDecoder
from seq2seq.encoders import RNNEncoder
from seq2seq.utils import decoding

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@keras.saving.register_keras_serializable(package="seq2seq")
class Translator(keras.Model):
    """Embeddings -> `RNNEncoder` -> `AttentionDecoder` -> vocabulary logits.

    Args:
        vocab_size: Size of the joint subword vocabulary.
        config: a `ModelConfig` (or its dict): sizes, GRU implementation,
            attention kind, tying, dropout.

    Call arguments:
        inputs: `{"source": [batch, source] int32, "target_in": [batch, target]
            int32}`; 0 is padding, `target_in` starts with BOS.
        training: whether dropout is active.

    Returns:
        logits `[batch, target, vocab_size]`.
    """

    def __init__(self, vocab_size: int, config: ModelConfig | dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = ModelConfig(**config)
        config = config or ModelConfig()
        self.vocab_size = vocab_size
        self.model_config = config
        # The tied matrix is initialized for its output role (rows of norm ~1)
        # and scaled up by sqrt(dim) on the input side, so that the GRUs see
        # unit-sized inputs from the first step; with Keras's default
        # uniform(+-0.05) the encoder's signal is too small for the decoder to
        # learn to attend to it.
        self.embedding = keras.layers.Embedding(
            vocab_size,
            config.embedding_dim,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=config.embedding_dim**-0.5
            ),
            mask_zero=True,
            name="embedding",
        )
        self.embedding_scale = config.embedding_dim**0.5
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.encoder = RNNEncoder(
            config.encoder_units,
            config.encoder_layers,
            config.dropout,
            config.gru,
            name="encoder",
        )
        self.bridge = keras.layers.Dense(config.decoder_units, activation="tanh", name="bridge")
        self.decoder = AttentionDecoder(
            units=config.decoder_units,
            output_dim=config.embedding_dim,
            memory_dim=2 * config.encoder_units,
            attention=config.attention,
            attention_units=config.attention_units,
            dropout=config.dropout,
            gru=config.gru,
            name="decoder",
        )
        if config.tie_embeddings:
            self.output_projection = None
        else:
            self.output_projection = keras.layers.Dense(vocab_size, name="output")

    def build(self, input_shape=None):
        if self.model_config.tie_embeddings:
            self.output_bias = self.add_weight(
                shape=(self.vocab_size,), initializer="zeros", name="output_bias"
            )
        # Run once on a dummy batch so that every sub-layer has its weights.
        self._forward(ops.ones((1, 2), "int32"), ops.ones((1, 2), "int32"), training=False)
        self.built = True

    def call(self, inputs, training=False):
        return self._forward(inputs["source"], inputs["target_in"], training=training)

    def _forward(self, source, target_in, training):
        memory, keys, memory_mask, state = self.encode(source, training=training)
        target_mask = ops.not_equal(target_in, PAD_ID)
        embedded = self.embedding_dropout(self._embed(target_in), training=training)
        hidden, _ = self.decoder(
            embedded, state, memory, keys, memory_mask, mask=target_mask, training=training
        )
        return self.logits(hidden)

    def encode(self, source, training=False):
        """`source [batch, length]` -> `(memory, keys, memory_mask, decoder_state)`."""
        memory_mask = ops.not_equal(source, PAD_ID)
        embedded = self.embedding_dropout(self._embed(source), training=training)
        memory, final_state = self.encoder(embedded, mask=memory_mask, training=training)
        keys = self.decoder.attention.keys(memory)
        return memory, keys, memory_mask, self.bridge(final_state)

    def _embed(self, ids):
        return self.embedding_scale * self.embedding(ids)

    def logits(self, hidden):
        """Float32 `[..., vocab]` logits of the decoder's `hidden` vectors. Under a mixed
        policy the vocabulary-sized matmul, the costliest of a training step, runs in
        the compute dtype and only its result is cast."""
        if self.output_projection is not None:
            logits = self.output_projection(hidden)
        else:
            logits = ops.matmul(hidden, ops.transpose(self.embedding.embeddings)) + self.output_bias
        return ops.cast(logits, "float32")

    def decode_step(self, ids, decoder_state, memory, rows=None):
        """One search step, for `seq2seq.utils.decoding.decode`.

        Args:
            ids: `[n]` previous tokens.
            decoder_state: `[n, units]` decoder state, rows aligned with `ids`.
            memory: `(memory, keys, memory_mask)` of `encode`, one row per example.
            rows: the `seq2seq.utils.decoding.Rows` of the search that `ids` are, or
                None when row i is example i.

        Returns:
            `(log_probs [n, vocab], new_decoder_state, attention [n, source])`.
        """
        embedded = self.embedding_scale * ops.take(self.embedding.embeddings, ids, axis=0)
        hidden, decoder_state, attention = self.decoder.step(embedded, decoder_state, *memory, rows)
        log_probs = ops.log_softmax(self.logits(hidden), axis=-1)
        return log_probs, decoder_state, attention

    def search(
        self,
        source,
        beam_size: decoding.BeamSize = 1,
        length_penalty: float = 0.6,
        max_length_ratio: float = 2.0,
        max_length_offset: int = 10,
        n_best: int = 1,
        no_repeat_ngram_size: int = 0,
    ) -> decoding.DecodingResult:
        """Translates a batch of source ids: greedy with `beam_size=1`, else
        beam search. Graph code: the same runs eagerly, in `tf.function` and
        in an exported SavedModel.

        Args:
            source: `[batch, length]` int32, 0-padded, as `encode` takes.
            beam_size: 1 for greedy search; a scalar int32 tensor lets one trace
                serve every beam size (see `seq2seq.utils.decoding`). Default: 1.
            length_penalty: GNMT length penalty alpha (beam only). Default: 0.6.
            max_length_ratio, max_length_offset: an output stops after
                `ratio * source_length + offset` tokens. Defaults: 2.0, 10.
            n_best: hypotheses returned per sentence (beam only). Default: 1.
            no_repeat_ngram_size: when positive, no output holds an n-gram of this
                many subwords twice (see `seq2seq.utils.decoding.beam_search`).
                Default: 0 (off).
        """
        memory, keys, memory_mask, state = self.encode(source)
        source_lengths = ops.sum(ops.cast(memory_mask, "float32"), axis=1)
        max_length = ops.cast(max_length_ratio * source_lengths, "int32") + max_length_offset
        memory = (memory, keys, memory_mask)

        def step(ids, state, rows):
            return self.decode_step(ids, state, memory, rows)

        return decoding.decode(
            step,
            state,
            ops.shape(source)[0],
            BOS_ID,
            EOS_ID,
            max_length,
            beam_size=beam_size,
            length_penalty=length_penalty,
            n_best=n_best,
            no_repeat_ngram_size=no_repeat_ngram_size,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "config": vars(self.model_config),
        }
