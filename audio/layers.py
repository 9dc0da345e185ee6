"""Keras layers and TensorFlow graph functions of the speech front-end.

Everything here goes into models and SavedModels: `LogMel` (the in-graph twin
of `audio.features.log_mel_librosa`), `FeatureNormalization`, `SpecAugment`
and `spec_augment` (training-time masking), `VTLP` and `warp_frequencies`
(training-time vocal tract length perturbation), and `decode_wav_batch` (WAV bytes
to padded audio in the graph). The layers are written with `keras.ops`; a
TensorFlow SavedModel of them holds only core ops (gather, RFFT, matmul, ...).

`audio.features` and `audio.augment` re-export these names lazily, so that
data preparation, which needs only librosa and NumPy, does not import
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np
from keras import ops

from audio.features import FrontEndConfig, _as_config

__all__ = [
    "FeatureNormalization",
    "Float32Layer",
    "LogMel",
    "SpecAugment",
    "VTLP",
    "decode_wav_batch",
    "spec_augment",
    "warp_frequencies",
]


class Float32Layer(keras.layers.Layer):
    """A layer that computes in float32 unless given another `dtype`, under any global
    dtype policy: a log of power spectra, its normalization and masks on it need more
    than bfloat16's 8 bits of mantissa, so a model built under `mixed_bfloat16` keeps
    its front-end in float32 without having to say so."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


def _frame_mask(frame_lengths, num_frames):
    """`[batch, frames]` booleans, true for frames before each length."""
    return ops.arange(num_frames, dtype="int32")[None, :] < frame_lengths[:, None]


@keras.saving.register_keras_serializable(package="audio")
class LogMel(Float32Layer):
    """In-graph log-mel front-end that matches `log_mel_librosa`.

    Written with `keras.ops` (gather, real FFT, matmul, log), so that a
    TensorFlow SavedModel holds only core ops. The mel matrix is librosa's,
    kept as the non-trainable weight `mel_matrix`; computation is float32
    except the window and FFT, which run in float64 as in librosa.

    Args:
        config: A `FrontEndConfig` or its `get_config()` dict.
            Default: `FrontEndConfig()`.

    Call arguments:
        audio: float32 `[batch, samples]`, mono at `config.sample_rate`,
            zero-padded on the right.
        lengths: int `[batch]`, valid samples of each row; `None` means all.
            Samples past a length are ignored (treated as zeros).

    Returns:
        `(features, frame_lengths)`: float32 `[batch, 1 + samples // hop, n_mels]`
        with the frames past each frame length set to 0, and int32 `[batch]`
        frame lengths `1 + length // hop` (0 for empty rows).

    Example:

    >>> layer = LogMel()
    >>> features, frame_lengths = layer(np.zeros((2, 1600), "float32"),
    ...                                 np.array([1600, 320], "int32"))
    >>> tuple(features.shape), np.asarray(frame_lengths).tolist()
    ((2, 11, 80), [11, 3])
    """

    def __init__(self, config: FrontEndConfig | dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = _as_config(config)
        self._window = self.config.window()

    def build(self, input_shape=None):
        n_freq = self.config.n_fft // 2 + 1
        self.mel_matrix = self.add_weight(
            shape=(n_freq, self.config.n_mels),
            name="mel_matrix",
            initializer="zeros",
            trainable=False,
            dtype="float32",
        )
        self.mel_matrix.assign(self.config.mel_matrix())
        self.built = True

    def call(self, audio, lengths=None):
        config = self.config
        audio = ops.cast(audio, "float32")
        batch, samples = ops.shape(audio)[0], ops.shape(audio)[1]
        if lengths is None:
            lengths = ops.full((batch,), samples, dtype="int32")
        lengths = ops.clip(ops.cast(lengths, "int32"), 0, samples)
        positions = ops.arange(samples, dtype="int32")
        audio = ops.where(positions[None, :] < lengths[:, None], audio, 0.0)

        half = config.n_fft // 2
        padded = ops.pad(audio, [[0, 0], [half, half]])
        num_frames = 1 + samples // config.hop_length
        starts = ops.arange(num_frames, dtype="int32") * config.hop_length
        indices = starts[:, None] + ops.arange(config.n_fft, dtype="int32")[None, :]
        frames = ops.take(padded, indices, axis=1)  # [batch, frames, n_fft]

        windowed = ops.cast(frames, "float64") * ops.convert_to_tensor(self._window, "float64")
        real, imag = ops.rfft(windowed, fft_length=config.n_fft)
        real, imag = ops.cast(real, "float32"), ops.cast(imag, "float32")
        power = real * real + imag * imag
        mel = ops.matmul(power, self.mel_matrix)
        features = ops.log(mel + config.log_offset)

        frame_lengths = ops.where(lengths > 0, 1 + lengths // config.hop_length, 0)
        frame_lengths = ops.cast(frame_lengths, "int32")
        valid = _frame_mask(frame_lengths, num_frames)
        features = ops.where(valid[:, :, None], features, 0.0)
        return features, frame_lengths

    def compute_output_spec(self, audio, lengths=None):
        batch, samples = audio.shape[0], audio.shape[1]
        frames = None if samples is None else 1 + samples // self.config.hop_length
        return (
            keras.KerasTensor((batch, frames, self.config.n_mels), dtype="float32"),
            keras.KerasTensor((batch,), dtype="int32"),
        )

    def get_config(self):
        return {**super().get_config(), "config": self.config.get_config()}


NORMALIZATION_MODES = ("global", "utterance", "utterance_mean")


@keras.saving.register_keras_serializable(package="audio")
class FeatureNormalization(Float32Layer):
    """Mean and variance normalization of log-mel features over valid frames.

    Modes (per mel band):

    - `"utterance_mean"` (default): subtract the utterance's mean and divide by
      a global standard deviation fitted with `adapt` on mean-subtracted
      training features. The per-utterance mean removes a recording's gain and
      stationary channel colouring exactly (both are constants added to every
      frame of a log-mel band), which matters when training on synthetic voices
      and testing on real telephone prompts; the global scale keeps the relative
      level of bands and does not blow quiet, noise-only bands up to unit
      variance the way per-utterance variance normalization does.
    - `"utterance"`: per-utterance mean and variance (Kaldi-style CMVN).
    - `"global"`: mean and variance fitted with `adapt` on training features.

    Fitted statistics are the non-trainable weights `mean` and `variance`
    (0 and 1 until `adapt` or `set_statistics`), so they are saved with the
    model and exported in its SavedModel.

    Args:
        n_mels: Number of feature bands. Default: 80.
        mode: One of `"utterance_mean"`, `"utterance"`, `"global"`.
        epsilon: Added to variances before the square root. Default: 1e-3.

    Call arguments:
        features: float `[batch, frames, n_mels]`.
        lengths: int `[batch]` valid frames; `None` means all.

    Returns:
        float32 `[batch, frames, n_mels]`, 0 on frames past each length.

    Example:

    >>> norm = FeatureNormalization(2, mode="utterance")
    >>> x = np.array([[[1.0, 5.0], [3.0, 5.0], [9.0, 9.0]]], "float32")
    >>> np.round(np.asarray(norm(x, np.array([2]))), 2).tolist()
    [[[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    """

    def __init__(
        self,
        n_mels: int = 80,
        mode: str = "utterance_mean",
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"`mode` must be one of {NORMALIZATION_MODES}, got {mode!r}.")
        self.n_mels = int(n_mels)
        self.mode = mode
        self.epsilon = float(epsilon)

    def build(self, input_shape=None):
        self.mean = self.add_weight(
            shape=(self.n_mels,), name="mean", initializer="zeros", trainable=False
        )
        self.variance = self.add_weight(
            shape=(self.n_mels,), name="variance", initializer="ones", trainable=False
        )
        self.built = True

    def set_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        """Sets the global statistics (`[n_mels]` each)."""
        if not self.built:
            self.build()
        self.mean.assign(np.asarray(mean, np.float32).reshape(self.n_mels))
        self.variance.assign(np.asarray(variance, np.float32).reshape(self.n_mels))

    def adapt(self, data: Iterable | np.ndarray, lengths: np.ndarray | None = None) -> None:
        """Fits the global statistics that this mode uses on training features.

        Args:
            data: `[batch, frames, n_mels]` with `lengths`, or an iterable of
                utterances `[frames, n_mels]`, or of `(features, lengths)`
                batches. Accumulated in float64, one utterance at a time.
            lengths: Valid frames per row when `data` is one padded array.
        """
        count, total, squares = 0, np.zeros(self.n_mels), np.zeros(self.n_mels)
        for utterance in _utterances(data, lengths):
            utterance = np.asarray(utterance, np.float64)
            if len(utterance) == 0:
                continue
            if self.mode == "utterance_mean":
                utterance = utterance - utterance.mean(axis=0)
            count += len(utterance)
            total += utterance.sum(axis=0)
            squares += np.square(utterance).sum(axis=0)
        if count == 0:
            raise ValueError("`adapt` got no feature frames.")
        mean = total / count
        variance = np.maximum(squares / count - np.square(mean), 0.0)
        if self.mode == "utterance_mean":
            mean = np.zeros_like(mean)  # unused: each utterance brings its own
        self.set_statistics(mean, variance)

    def call(self, features, lengths=None):
        features = ops.cast(features, "float32")
        num_frames = ops.shape(features)[1]
        if lengths is None:
            lengths = ops.full((ops.shape(features)[0],), num_frames, dtype="int32")
        valid = ops.cast(_frame_mask(ops.cast(lengths, "int32"), num_frames), "float32")
        valid = valid[:, :, None]
        if self.mode == "global":
            mean, variance = self.mean, self.variance
        else:
            count = ops.maximum(ops.sum(valid, axis=1, keepdims=True), 1.0)
            mean = ops.sum(features * valid, axis=1, keepdims=True) / count
            if self.mode == "utterance":
                variance = ops.sum(ops.square(features - mean) * valid, axis=1, keepdims=True)
                variance = variance / count
            else:
                variance = self.variance
        normalized = (features - mean) * ops.rsqrt(variance + self.epsilon)
        return normalized * valid

    def compute_output_spec(self, features, lengths=None):
        return keras.KerasTensor(features.shape, dtype="float32")

    def get_config(self):
        config = {"n_mels": self.n_mels, "mode": self.mode, "epsilon": self.epsilon}
        return {**super().get_config(), **config}


def _utterances(data, lengths):
    """Yields `[frames, n_mels]` arrays from the inputs `adapt` accepts."""
    if isinstance(data, np.ndarray) and data.ndim == 3:
        lengths = [len(row) for row in data] if lengths is None else lengths
        for row, length in zip(data, np.asarray(lengths).tolist(), strict=True):
            yield row[:length]
        return
    if lengths is not None:
        raise ValueError("`lengths` goes with one padded `[batch, frames, n_mels]` array.")
    for item in data:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            yield from _utterances(np.asarray(item[0]), np.asarray(item[1]))
        else:
            yield np.asarray(item)


def decode_wav_batch(wav_bytes, sample_rate: int = 16000):
    """Decodes a batch of 16-bit PCM WAV strings in the graph (TensorFlow ops).

    The graph half of `audio.io.read_wav_bytes`: samples are scaled by 1/32768,
    channels averaged, and rows zero-padded to the longest. A file at another
    sample rate fails an assertion (there is no resampler among TF Serving's
    ops); resample it on the client. Bytes without a RIFF/WAVE header fail one too,
    before `tf.audio.decode_wav` could quote them in its message.

    Args:
        wav_bytes: tf.string `[batch]`, each a complete WAV file.
        sample_rate: The only accepted sample rate. Default: 16000.

    Returns:
        `(audio, lengths)`: float32 `[batch, max_samples]` and int32 `[batch]`,
        the inputs of `LogMel`.
    """
    import tensorflow as tf

    def decode_one(data):
        head = tf.strings.join([data, "\0" * 12])  # substr fails past the end of a string
        header = tf.debugging.Assert(
            (tf.strings.substr(head, 0, 4) == "RIFF") & (tf.strings.substr(head, 8, 4) == "WAVE"),
            ["not a WAV file (no RIFF/WAVE header)"],
        )
        with tf.control_dependencies([header]):
            audio, rate = tf.audio.decode_wav(data)
        check = tf.debugging.assert_equal(
            rate,
            tf.constant(sample_rate, tf.int32),
            message=f"WAV sample rate must be {sample_rate} Hz",
        )
        with tf.control_dependencies([check]):
            return tf.reduce_mean(audio, axis=1)

    wav_bytes = tf.convert_to_tensor(wav_bytes, tf.string)
    ragged = tf.map_fn(
        decode_one,
        wav_bytes,
        fn_output_signature=tf.RaggedTensorSpec(shape=[None], dtype=tf.float32),
    )
    return ragged.to_tensor(), tf.cast(ragged.row_lengths(), tf.int32)


def _masks(shape, lengths, uniform, params):
    """`[batch, frames, n_mels]` booleans: true where SpecAugment masks.

    `uniform` is `[batch, 2 * (freq_masks + time_masks)]` in [0, 1).
    """
    batch, frames, bands = shape
    freq_masks, freq_width, time_masks, time_width, time_ratio = params
    lengths = ops.cast(lengths, "float32")[:, None]
    parts = ops.split(uniform, [freq_masks, 2 * freq_masks, 2 * freq_masks + time_masks], axis=1)
    width_u, start_u, time_width_u, time_start_u = parts

    widths = ops.floor(width_u * (freq_width + 1))
    starts = ops.floor(start_u * (float(bands) - widths + 1.0))
    band = ops.cast(ops.arange(bands), "float32")[None, None, :]
    in_band = (band >= starts[:, :, None]) & (band < (starts + widths)[:, :, None])
    freq = ops.any(in_band, axis=1)[:, None, :]  # [batch, 1, bands]

    longest = ops.minimum(float(time_width), ops.floor(time_ratio * lengths))
    widths = ops.floor(time_width_u * (longest + 1.0))
    starts = ops.floor(time_start_u * ops.maximum(lengths - widths + 1.0, 1.0))
    frame = ops.cast(ops.arange(frames), "float32")[None, None, :]
    in_time = (frame >= starts[:, :, None]) & (frame < (starts + widths)[:, :, None])
    time = ops.any(in_time, axis=1)[:, :, None]  # [batch, frames, 1]
    return freq | time


def _apply_masks(features, lengths, uniform_fn: Callable, params):
    features = ops.convert_to_tensor(features)
    unbatched = len(features.shape) == 2
    if unbatched:
        features = features[None]
    shape = ops.shape(features)
    if lengths is None:
        lengths = ops.full((shape[0],), shape[1], dtype="int32")
    elif unbatched:
        lengths = ops.reshape(lengths, (1,))
    count = 2 * (params[0] + params[2])
    uniform = uniform_fn((shape[0], count))
    masked = ops.where(_masks(shape, lengths, uniform, params), 0.0, features)
    masked = ops.cast(masked, features.dtype)
    return masked[0] if unbatched else masked


def spec_augment(
    features,
    lengths=None,
    seed=(0, 0),
    *,
    freq_masks: int = 2,
    freq_width: int = 27,
    time_masks: int = 2,
    time_width: int = 40,
    time_ratio: float = 0.2,
):
    """SpecAugment masking (Park et al., 2019) as a stateless function of `seed`.

    Masked values are set to 0, the mean of normalized features. Time masks stay
    inside each utterance's valid frames. Time warping is not done. Uses
    `tf.random.stateless_uniform`, so it is deterministic given `seed` and fits
    `tf.data`, e.g. `dataset.enumerate().map(lambda i, x: ... spec_augment(
    x, seed=(run_seed, i)))`.

    Args:
        features: `[frames, n_mels]` or `[batch, frames, n_mels]` (TensorFlow
            backend tensors or arrays).
        lengths: Valid frames (scalar or `[batch]`); `None` means all.
        seed: Shape `[2]` integer seed.
        freq_masks: Number of frequency masks. Default: 2.
        freq_width: Widest frequency mask in bands (width uniform in
            `[0, freq_width]`). Default: 27.
        time_masks: Number of time masks. Default: 2.
        time_width: Widest time mask in frames. Default: 40.
        time_ratio: Widest time mask as a fraction of the length. Default: 0.2.

    Returns:
        Features of the same shape and dtype.

    Example:

    >>> x = np.ones((50, 8), "float32")
    >>> a = spec_augment(x, seed=(1, 2), freq_width=3, time_width=5)
    >>> b = spec_augment(x, seed=(1, 2), freq_width=3, time_width=5)
    >>> bool(np.array_equal(a, b)), 0 < float(np.mean(np.asarray(a))) < 1
    (True, True)
    """
    import tensorflow as tf

    params = (freq_masks, freq_width, time_masks, time_width, time_ratio)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)

    def uniform(shape):
        return tf.random.stateless_uniform(tf.stack(shape), seed=seed, dtype=tf.float32)

    return _apply_masks(features, lengths, uniform, params)


@keras.saving.register_keras_serializable(package="audio")
class SpecAugment(Float32Layer):
    """SpecAugment masking in a model, active only when `training=True`.

    Same masking as `spec_augment`, with random numbers from a seeded
    `keras.random.SeedGenerator` (written with `keras.ops`).

    Args:
        freq_masks: Number of frequency masks. Default: 2.
        freq_width: Widest frequency mask in bands. Default: 27.
        time_masks: Number of time masks. Default: 2.
        time_width: Widest time mask in frames. Default: 40.
        time_ratio: Widest time mask as a fraction of the length. Default: 0.2.
        seed: Seed of the masks. Default: `None`.

    Call arguments:
        features: `[batch, frames, n_mels]`.
        lengths: int `[batch]` valid frames; `None` means all.
        training: Masks only when true.

    Example:

    >>> layer = SpecAugment(freq_width=4, time_width=5, seed=0)
    >>> x = np.ones((2, 30, 10), "float32")
    >>> bool(np.array_equal(layer(x), x)), bool(np.array_equal(layer(x, training=True), x))
    (True, False)
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 27,
        time_masks: int = 2,
        time_width: int = 40,
        time_ratio: float = 0.2,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.freq_masks = int(freq_masks)
        self.freq_width = int(freq_width)
        self.time_masks = int(time_masks)
        self.time_width = int(time_width)
        self.time_ratio = float(time_ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    def call(self, features, lengths=None, training=None):
        if not training:
            return features
        params = (
            self.freq_masks,
            self.freq_width,
            self.time_masks,
            self.time_width,
            self.time_ratio,
        )

        def uniform(shape):
            return keras.random.uniform(shape, seed=self.seed_generator)

        return _apply_masks(features, lengths, uniform, params)

    def compute_output_spec(self, features, lengths=None, training=None):
        return keras.KerasTensor(features.shape, dtype=features.dtype)

    def get_config(self):
        config = {
            "freq_masks": self.freq_masks,
            "freq_width": self.freq_width,
            "time_masks": self.time_masks,
            "time_width": self.time_width,
            "time_ratio": self.time_ratio,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def warp_frequencies(features, factors, band_hz, fmax: float, boundary: float = 0.8):
    """Log-mel features as a vocal tract `factors` times shorter would have made them:
    each band takes the value at the frequency that the warp moves onto its centre
    (linear interpolation between bands), as in VTLP (Jaitly and Hinton, 2013).

    The warp scales frequencies by the factor up to `boundary * fmax * min(factor, 1)`
    and maps the rest linearly onto the remaining range, so `fmax` stays where it is
    and no band reads past the top.

    Args:
        features: `[batch, frames, n_mels]`.
        factors: `[batch]`: above 1 moves the spectrum up (formants of a shorter vocal
            tract), 1 leaves it unchanged.
        band_hz: the bands' centre frequencies in Hz, increasing, `[n_mels]`.
        fmax: the highest frequency of the mel filters, in Hz.
        boundary: where the linear scaling ends, as a fraction of `fmax`. Default: 0.8.

    Returns:
        Features of the same shape and dtype.

    Example:

    >>> features = np.arange(5, dtype="float32").reshape(1, 1, 5)
    >>> hz = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
    >>> np.asarray(warp_frequencies(features, np.array([2.0]), hz, fmax=1000.0))
    array([[[0. , 0. , 0.5, 1. , 1.5]]], dtype=float32)
    """
    features = ops.convert_to_tensor(features)
    band_hz = ops.cast(ops.convert_to_tensor(band_hz), "float32")
    factors = ops.cast(ops.convert_to_tensor(factors), "float32")[:, None]  # [batch, 1]
    target = band_hz[None, :]
    knee = boundary * fmax * ops.minimum(factors, 1.0)  # where the scaling ends
    upper = fmax - (fmax - knee / factors) * (fmax - target) / (fmax - knee)
    source = ops.where(target <= knee, target / factors, upper)  # [batch, n_mels]
    # Fractional band index of each source frequency (clamped to the outer bands).
    bands = ops.shape(band_hz)[0]
    above = ops.sum(ops.cast(source[:, :, None] > band_hz[None, None, :], "int32"), axis=2)
    low = ops.clip(above - 1, 0, bands - 2)
    low_hz, high_hz = ops.take(band_hz, low), ops.take(band_hz, low + 1)
    weight = ops.clip((source - low_hz) / (high_hz - low_hz), 0.0, 1.0)
    low_values = ops.take_along_axis(
        features, ops.broadcast_to(low[:, None, :], ops.shape(features)), axis=2
    )
    high_values = ops.take_along_axis(
        features, ops.broadcast_to(low[:, None, :] + 1, ops.shape(features)), axis=2
    )
    weight = ops.cast(weight[:, None, :], features.dtype)
    return low_values + weight * (high_values - low_values)


@keras.saving.register_keras_serializable(package="audio")
class VTLP(Float32Layer):
    """Vocal tract length perturbation of log-mel features, active only when
    `training=True`: every utterance's frequencies are warped by a factor uniform in
    `[1 - max_warp, 1 + max_warp]` (`warp_frequencies`), so that a few training voices
    stand for many vocal tract lengths.

    Args:
        config: the front-end whose log-mel bands come in (`FrontEndConfig`, its
            dict, or `None` for the defaults).
        max_warp: the largest relative change of a frequency. Default: 0.1.
        boundary: where the linear scaling ends, as a fraction of `fmax`. Default: 0.8.
        seed: Seed of the factors. Default: `None`.

    Call arguments:
        features: `[batch, frames, n_mels]` of that front-end.
        training: Warps only when true.

    Example:

    >>> layer = VTLP(FrontEndConfig(n_mels=10), seed=0)
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 10)).astype("float32")
    >>> bool(np.array_equal(layer(x), x)), bool(np.array_equal(layer(x, training=True), x))
    (True, False)
    """

    def __init__(
        self,
        config: FrontEndConfig | dict | None = None,
        max_warp: float = 0.1,
        boundary: float = 0.8,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config = _as_config(config)
        if not 0.0 <= max_warp < 1.0:
            raise ValueError(f"`max_warp` must be in [0, 1), got {max_warp!r}.")
        if not 0.0 < boundary < 1.0:
            raise ValueError(f"`boundary` must be in (0, 1), got {boundary!r}.")
        self.max_warp = float(max_warp)
        self.boundary = float(boundary)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.fmax = float(self.config.fmax or self.config.sample_rate / 2)
        self.band_hz = self.config.band_frequencies()

    def call(self, features, training=None):
        if not training or self.max_warp == 0.0:
            return features
        batch = ops.shape(features)[0]
        factors = keras.random.uniform(
            (batch,), 1.0 - self.max_warp, 1.0 + self.max_warp, seed=self.seed_generator
        )
        return warp_frequencies(features, factors, self.band_hz, self.fmax, self.boundary)

    def compute_output_spec(self, features, training=None):
        return keras.KerasTensor(features.shape, dtype=features.dtype)

    def get_config(self):
        config = {
            "config": self.config.get_config(),
            "max_warp": self.max_warp,
            "boundary": self.boundary,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
