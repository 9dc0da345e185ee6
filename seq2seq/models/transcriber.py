"""The speech recognizer: raw audio in, characters out, trained with joint CTC and
attention losses.

    audio [batch, samples] + lengths
      -> LogMel (librosa's log-mel, in the graph) -> FeatureNormalization
      -> VTLP and SpecAugment (training only)
      -> ConvSubsampling (strided 3x3 convolutions: 10 ms frames -> 40 ms with two)
      -> RNNEncoder (bidirectional GRU layers)  -> CTC head (characters + blank,
                                                   `ctc_upsampling` outputs a frame)
      -> AttentionDecoder (GRU + attention)      -> characters

The front-end is part of the model, so an exported SavedModel takes audio samples and
needs no Python at serving time. Every stage carries frame lengths and masks: a batch
transcribes each utterance as it would be transcribed alone (up to float rounding).
The CTC head shares the encoder with the attention decoder (Kim, Hori and Watanabe,
2017): it makes the encoder learn alignments early, and its prefix scores join the
decoder's in the search (`search(..., ctc_weight=...)`), which keeps the transcript
aligned with the audio.
"""

from __future__ import annotations

import keras
from keras import ops

from audio.features import FrontEndConfig
from audio.layers import VTLP, FeatureNormalization, LogMel, SpecAugment
from seq2seq.config import FrontEndSection, SpecAugmentSection, SpeechModelConfig, VTLPSection
from seq2seq.data.characters import BLANK_ID, BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE
from seq2seq.decoders import AttentionDecoder
from seq2seq.encoders import RNNEncoder
from seq2seq.training.losses import SmoothedCrossEntropy, ctc_loss
from seq2seq.utils import decoding
from seq2seq.utils.ctc import CTCPrefixScorer, ctc_greedy_search
from seq2seq.utils.ngram import NgramScorer


def subsampled_lengths(lengths, steps: int):
    """Frame lengths after `steps` stride-2 convolutions with 'half' padding
    (`ceil(length / 2)` per step)."""
    for _ in range(steps):
        lengths = (lengths + 1) // 2
    return lengths


@keras.saving.register_keras_serializable(package="seq2seq")
class ConvSubsampling(keras.layers.Layer):
    """Stride-2 3x3 convolutions over (time, mel) with ReLU, then a projection and
    layer normalization.

    Each convolution pads `kernel // 2` zeros on both sides of both axes and runs
    'valid', so that the output frame `i` sees input frames `2i - k//2 .. 2i + k//2`
    whatever the padded length of the batch (TensorFlow's 'SAME' padding would
    depend on the parity of the batch's length). Frames past each length are zeroed
    after every convolution, so padding never leaks into valid frames. The layer
    normalization gives the encoder inputs of unit scale: without it, the projected
    frames of freshly initialized convolutions are ~0.1 in size, and the encoder's CTC
    loss on 400 training utterances fell from 3.3 only to 2.25 in 150 steps (1.90
    with it; 1.73 with it and a 3x learning rate).

    Args:
        channels: Output channels of each convolution (one 2x subsampling each).
        kernel: Odd kernel size. Default: 3.
        output_dim: Size of the projected frame vectors.
        n_mels: Number of input bands.

    Call arguments:
        features: `[batch, frames, n_mels]`, 0 past each length.
        lengths: int32 `[batch]`.

    Returns:
        `(outputs [batch, frames / 2**len(channels), output_dim], lengths)`, outputs
        0 past each length.
    """

    def __init__(self, channels, kernel: int = 3, output_dim: int = 256, n_mels: int = 80, **kw):
        super().__init__(**kw)
        if kernel % 2 != 1:
            raise ValueError(f"`kernel` must be odd, got {kernel}.")
        self.channels = [int(c) for c in channels]
        self.kernel = int(kernel)
        self.output_dim = int(output_dim)
        self.n_mels = int(n_mels)
        self.convs = [
            keras.layers.Conv2D(c, kernel, strides=2, activation="relu", name=f"conv_{i}")
            for i, c in enumerate(self.channels)
        ]
        bands = subsampled_lengths(self.n_mels, len(self.channels))
        self.flat_dim = bands * self.channels[-1]
        self.projection = keras.layers.Dense(output_dim, name="projection")
        self.norm = keras.layers.LayerNormalization(name="norm")

    def call(self, features, lengths):
        pad = self.kernel // 2
        outputs = features[:, :, :, None]
        for conv in self.convs:
            outputs = conv(ops.pad(outputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]]))
            lengths = subsampled_lengths(lengths, 1)
            mask = ops.arange(ops.shape(outputs)[1], dtype="int32")[None, :] < lengths[:, None]
            outputs = outputs * ops.cast(mask, outputs.dtype)[:, :, None, None]
        batch, frames = ops.shape(outputs)[0], ops.shape(outputs)[1]
        outputs = ops.reshape(outputs, (batch, frames, self.flat_dim))
        outputs = self.norm(self.projection(outputs))
        return outputs * ops.cast(mask, outputs.dtype)[:, :, None], lengths

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel": self.kernel,
            "output_dim": self.output_dim,
            "n_mels": self.n_mels,
        }


def _model_config(config) -> SpeechModelConfig:
    if isinstance(config, SpeechModelConfig):
        return config
    values = dict(config or {})
    values["front_end"] = FrontEndSection(**values.get("front_end", {}))
    values["spec_augment"] = SpecAugmentSection(**values.get("spec_augment", {}))
    values["vtlp"] = VTLPSection(**values.get("vtlp", {}))
    return SpeechModelConfig(**values)


def front_end_config(section: FrontEndSection) -> FrontEndConfig:
    """The `audio.features.FrontEndConfig` of a config's `model.front_end`."""
    return FrontEndConfig(
        sample_rate=section.sample_rate,
        n_fft=section.n_fft,
        hop_length=section.hop_length,
        n_mels=section.n_mels,
        fmin=section.fmin,
        fmax=section.fmax,
    )


@keras.saving.register_keras_serializable(package="seq2seq")
class Transcriber(keras.Model):
    """Audio -> characters (see the module docstring).

    Args:
        config: a `SpeechModelConfig` (or its dict).
        label_smoothing: of the decoder's cross-entropy in training. Default: 0.1.

    Call arguments:
        inputs: `{"audio": [batch, samples] float32 (zero-padded), "audio_length":
            [batch] int32, "target_in": [batch, chars] int32}`; `target_in` starts with
            BOS, 0 pads.
        training: whether dropout, VTLP and SpecAugment are active.

    Returns:
        `{"logits": [batch, chars, vocab], "ctc_logits": [batch, frames, vocab],
        "ctc_lengths": [batch]}`; `fit` trains `ctc_weight * CTC + (1 - ctc_weight) *
        smoothed CE` against `target_out` (characters + EOS, 0-padded).
    """

    def __init__(self, config=None, label_smoothing: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        config = _model_config(config)
        self.model_config = config
        self.label_smoothing = label_smoothing
        self.front_end = front_end_config(config.front_end)
        # The front-end layers compute in float32 under any policy (`Float32Layer`).
        self.log_mel = LogMel(self.front_end, name="log_mel")
        self.normalization = FeatureNormalization(
            config.front_end.n_mels, config.front_end.normalization, name="normalization"
        )
        self.vtlp = (
            VTLP(self.front_end, config.vtlp.max_warp, name="vtlp") if config.vtlp.enabled else None
        )
        augment = config.spec_augment
        self.spec_augment = (
            SpecAugment(
                augment.freq_masks,
                augment.freq_width,
                augment.time_masks,
                augment.time_width,
                augment.time_ratio,
                name="spec_augment",
            )
            if augment.enabled
            else None
        )
        self.subsampling = ConvSubsampling(
            config.conv_channels,
            config.conv_kernel,
            config.encoder_units,
            config.front_end.n_mels,
            name="subsampling",
        )
        self.dropout = keras.layers.Dropout(config.dropout)
        self.encoder = RNNEncoder(
            config.encoder_units,
            config.encoder_layers,
            config.dropout,
            config.gru,
            name="encoder",
        )
        # Both heads output float32 under a mixed policy (Keras's advice for the last
        # layer): losses and search scores are float32; over characters they cost little.
        self.ctc_head = keras.layers.Dense(
            VOCAB_SIZE * config.ctc_upsampling, name="ctc_head", dtype="float32"
        )
        self.bridge = keras.layers.Dense(config.decoder_units, activation="tanh", name="bridge")
        self.embedding = keras.layers.Embedding(
            VOCAB_SIZE, config.embedding_dim, mask_zero=True, name="embedding"
        )
        self.decoder = AttentionDecoder(
            units=config.decoder_units,
            output_dim=config.decoder_units,
            memory_dim=2 * config.encoder_units,
            attention=config.attention,
            attention_units=config.attention_units,
            dropout=config.dropout,
            gru=config.gru,
            name="decoder",
        )
        self.output_projection = keras.layers.Dense(VOCAB_SIZE, name="output", dtype="float32")
        self.cross_entropy = SmoothedCrossEntropy(label_smoothing)
        self.ce_tracker = keras.metrics.Mean(name="ce_loss")
        self.ctc_tracker = keras.metrics.Mean(name="ctc_loss")

    @property
    def subsampling_factor(self) -> int:
        return 2 ** len(self.model_config.conv_channels)

    @property
    def ctc_frame_rate(self) -> float:
        """CTC frames per second of audio: the most characters a second it can emit."""
        encoder_rate = self.front_end.sample_rate / self.front_end.hop_length
        return encoder_rate / self.subsampling_factor * self.model_config.ctc_upsampling

    def build(self, input_shape=None):
        # Run once on a dummy batch so that every sub-layer has its weights.
        samples = 4 * self.front_end.hop_length * self.subsampling_factor
        self._forward(
            ops.zeros((1, samples)),
            ops.full((1,), samples, "int32"),
            ops.full((1, 2), BOS_ID, "int32"),
            training=False,
        )
        self.built = True

    def call(self, inputs, training=False):
        return self._forward(
            inputs["audio"], inputs["audio_length"], inputs["target_in"], training=training
        )

    def _forward(self, audio, audio_length, target_in, training):
        memory, keys, memory_mask, state, ctc_logits, lengths = self.encode(
            audio, audio_length, training=training
        )
        embedded = self.dropout(self.embedding(target_in), training=training)
        hidden, _ = self.decoder(
            embedded,
            state,
            memory,
            keys,
            memory_mask,
            mask=ops.not_equal(target_in, PAD_ID),
            training=training,
        )
        return {
            "logits": self.output_projection(hidden),
            "ctc_logits": ctc_logits,
            "ctc_lengths": lengths,
        }

    def features(self, audio, audio_length, training=False):
        """Normalized (and, in training, warped and masked) log-mel features and their
        frame lengths."""
        features, lengths = self.log_mel(audio, audio_length)
        features = self.normalization(features, lengths)
        if self.vtlp is not None:  # per-band normalization commutes with the warp
            features = self.vtlp(features, training=training)
        if self.spec_augment is not None:
            features = self.spec_augment(features, lengths, training=training)
        return features, lengths

    def encode(self, audio, audio_length, training=False):
        """`audio, audio_length` -> `(memory, keys, memory_mask, decoder_state,
        ctc_logits, ctc_lengths)`; CTC frames are `ctc_upsampling` per encoder frame."""
        features, lengths = self.features(audio, audio_length, training=training)
        frames, lengths = self.subsampling(features, lengths)
        frames = self.dropout(frames, training=training)
        memory_mask = ops.arange(ops.shape(frames)[1], dtype="int32")[None, :] < lengths[:, None]
        memory, final_state = self.encoder(frames, mask=memory_mask, training=training)
        keys = self.decoder.attention.keys(memory)
        # Each encoder frame's k CTC frames are consecutive slices of one head output.
        ctc_logits = ops.reshape(self.ctc_head(memory), (ops.shape(memory)[0], -1, VOCAB_SIZE))
        ctc_lengths = lengths * self.model_config.ctc_upsampling
        return memory, keys, memory_mask, self.bridge(final_state), ctc_logits, ctc_lengths

    def warm_start_value(self, variable, value):
        """`value` of a trained model's `variable`, fitted to this model: a CTC head with
        fewer outputs a frame is repeated, so that every CTC frame of an encoder frame
        starts as the trained head's one (same greedy transcripts). Other variables
        must match in shape (`seq2seq.training.callbacks.warm_start` calls this)."""
        shape, value_shape = tuple(variable.shape), tuple(value.shape)
        if shape != value_shape and any(variable is weight for weight in self.ctc_head.weights):
            repeats, remainder = divmod(shape[-1], value_shape[-1])
            if not remainder and value_shape[:-1] == shape[:-1]:
                return ops.tile(value, [1] * (len(shape) - 1) + [repeats])
        return value

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`ctc_weight * CTC + (1 - ctc_weight) * smoothed CE`, both per target character
        (the CE also counts EOS); tracked as `ce_loss` and `ctc_loss`."""
        weight = self.model_config.ctc_weight
        ce = self.cross_entropy(y, y_pred["logits"])
        labels = ops.where(ops.equal(y, EOS_ID), PAD_ID, y)
        label_lengths = ops.sum(ops.cast(ops.not_equal(labels, PAD_ID), "int32"), axis=1)
        ctc = ctc_loss(
            labels,
            ops.cast(y_pred["ctc_logits"], "float32"),
            label_lengths,
            y_pred["ctc_lengths"],
            blank_id=BLANK_ID,
        )
        ctc = ops.sum(ctc) / ops.maximum(ops.cast(ops.sum(label_lengths), "float32"), 1.0)
        self.ce_tracker.update_state(ce)
        self.ctc_tracker.update_state(ctc)
        return (1.0 - weight) * ce + weight * ctc

    def decode_step(self, ids, decoder_state, memory, rows=None):
        """One search step, for `seq2seq.utils.decoding.decode` (see `Translator.decode_step`)."""
        embedded = ops.take(self.embedding.embeddings, ids, axis=0)
        hidden, decoder_state, attention = self.decoder.step(embedded, decoder_state, *memory, rows)
        log_probs = ops.log_softmax(self.output_projection(hidden), axis=-1)
        return log_probs, decoder_state, attention

    def search(
        self,
        audio,
        audio_length,
        beam_size: decoding.BeamSize = 1,
        length_penalty: float = 0.6,
        max_length_ratio: float = 1.0,
        max_length_offset: int = 10,
        n_best: int = 1,
        ctc_weight: float = 0.0,
        lm: NgramScorer | None = None,
        lm_weight: float = 0.0,
    ) -> decoding.DecodingResult:
        """Transcribes a batch of audio: CTC greedy with `beam_size=0`, greedy with 1,
        else beam search, optionally jointly with the CTC head. Graph code (eager,
        `tf.function`, and in a SavedModel).

        Args:
            audio: float32 `[batch, samples]`, zero-padded.
            audio_length: int32 `[batch]` valid samples.
            beam_size: 1 for greedy search, 0 for CTC greedy search (the CTC head
                alone: no decoder, so the other arguments do not apply; a Python int),
                or a scalar int32 tensor of at least 1, so that one trace serves every
                beam size (see `seq2seq.utils.decoding`). Default: 1.
            length_penalty: GNMT length penalty alpha (beam only). Default: 0.6.
            max_length_ratio, max_length_offset: a transcript stops after `ratio *
                ctc_frames + offset` characters. Defaults: 1.0, 10. Empty audio
                gets an empty transcript.
            n_best: hypotheses returned per utterance (beam only). Default: 1.
            ctc_weight: when positive, joint decoding: the search scores each
                hypothesis by `(1 - w) * decoder log-prob + w * CTC prefix log-prob`
                (Watanabe et al., 2017), so that CTC keeps it aligned with the audio.
                With 1, the decoder is not run at all (CTC prefix beam search).
                Default: 0.
            lm: a character language model for shallow fusion: with a positive
                `lm_weight`, `lm_weight * log p_lm(next character)` is added to every
                extension's score but the empty transcript's (silence is for the
                acoustic scores to call). Default: None.
            lm_weight: the language model's weight. Default: 0.

        Returns:
            A `DecodingResult` (ids are character ids; EOS excluded).
        """
        memory, keys, memory_mask, state, ctc_logits, lengths = self.encode(audio, audio_length)
        if isinstance(beam_size, int) and beam_size == 0:
            return ctc_greedy_search(ctc_logits, lengths, blank_id=BLANK_ID)
        max_length = ops.cast(max_length_ratio * ops.cast(lengths, "float32"), "int32")
        max_length = ops.where(lengths > 0, max_length + max_length_offset, 0)
        memory = (memory, keys, memory_mask)
        lm = lm if lm_weight > 0.0 else None
        if ctc_weight > 0.0 or lm is not None:
            step, state = self._fused_decoding(
                memory, state, ctc_weight, ctc_logits, lengths, lm, lm_weight
            )
        else:

            def step(ids, state, rows):
                return self.decode_step(ids, state, memory, rows)

        return decoding.decode(
            step,
            state,
            ops.shape(audio)[0],
            BOS_ID,
            EOS_ID,
            max_length,
            beam_size=beam_size,
            length_penalty=length_penalty,
            n_best=n_best,
        )

    def _fused_decoding(self, memory, state, ctc_weight, ctc_logits, lengths, lm, lm_weight):
        """The step function and initial state of a search that scores each token by
        `(1 - ctc_weight) * decoder + ctc_weight * CTC prefix + lm_weight * LM` (a scorer
        left out has an empty state)."""
        ctc = CTCPrefixScorer(blank_id=BLANK_ID, bos_id=BOS_ID, eos_id=EOS_ID)
        emissions = ctc.emissions(ctc_logits, lengths) if ctc_weight > 0.0 else ()
        ctc_state = ctc.initial_state(emissions) if ctc_weight > 0.0 else ()
        lm_state = lm.initial_state(ops.shape(lengths)[0]) if lm is not None else ()
        uses_decoder = ctc_weight < 1.0  # CTC alone is much faster without it
        if not uses_decoder:
            state = ()
        eos = ops.equal(ops.arange(VOCAB_SIZE), EOS_ID)[None, :]

        def fused_step(ids, fused_state, rows):
            decoder_state, ctc_state, lm_state = fused_state
            scores, attention = 0.0, None
            if uses_decoder:
                log_probs, decoder_state, attention = self.decode_step(
                    ids, decoder_state, memory, rows
                )
                scores = (1.0 - ctc_weight) * log_probs
            if ctc_weight > 0.0:
                ctc_scores, ctc_state = ctc.step(ids, ctc_state, emissions, rows)
                scores += ctc_weight * ctc_scores
            if lm is not None:
                lm_scores, lm_state = lm.step(ids, lm_state)
                # Not for EOS right after BOS. The language model scores what was said,
                # not whether anything was: its text has no empty sentences, so it would
                # rule the empty transcript out and make the search write something
                # ("heh") for silence, where the acoustic scores say blank.
                empty = ops.logical_and(ops.equal(ids, BOS_ID)[:, None], eos)
                scores += lm_weight * ops.where(empty, 0.0, lm_scores)
            return scores, (decoder_state, ctc_state, lm_state), attention

        return fused_step, (state, ctc_state, lm_state)

    def get_config(self):
        return {
            **super().get_config(),
            "config": _as_dict(self.model_config),
            "label_smoothing": self.label_smoothing,
        }


def _as_dict(config: SpeechModelConfig) -> dict:
    import dataclasses

    return dataclasses.asdict(config)
