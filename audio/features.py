"""Log-mel features: the librosa reference and its in-graph Keras twin.

`log_mel_librosa` is the reference front-end (data preparation, feature caches,
plots). `LogMel` computes the same features inside a Keras model, so that an
exported SavedModel takes raw 16 kHz audio and needs no Python at serving time.
Both are defined by one `FrontEndConfig`. `LogMel`, `FeatureNormalization` and
`decode_wav_batch` live in `audio.layers` and are re-exported here lazily: this
module itself imports no TensorFlow, so data-preparation workers stay light.

The twin matches librosa to about one float32 ulp of the log (max abs difference
~1e-6 on chirps, noise, clipped and silent audio) because it repeats librosa's
arithmetic step by step:

- framing: `center=True` with **zero** padding of `n_fft // 2` on both sides
  (librosa's default `pad_mode="constant"` since 0.10). Zero padding is also what
  makes a zero-padded batch exact: the padding of an utterance past its length is
  the same zeros that librosa appends, so no per-utterance reflection is needed.
  An utterance of `n` samples has `1 + n // hop_length` frames.
- window: librosa's periodic Hann (`get_window("hann", n_fft, fftbins=True)`),
  applied in float64 as librosa does (float32 frames times a float64 window).
- DFT: a float64 real FFT (librosa's numpy FFT runs in float64 and stores
  complex64), cast to float32, then the power `re**2 + im**2`.
- mel: librosa's own `librosa.filters.mel` matrix (Slaney scale and norm by
  default), held by the layer as a non-trainable weight.
- log: `log(mel + log_offset)`; additive rather than a `max` floor, so that the
  function is smooth and its gradient never dies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["FrontEndConfig", "log_mel_librosa"]  # + the lazy names of _LAYERS


@dataclasses.dataclass(frozen=True)
class FrontEndConfig:
    """Parameters of the log-mel front-end, shared by librosa and the twin.

    Args:
        sample_rate: Sample rate of the input audio in Hz. Default: 16000.
        n_fft: FFT size and window length in samples (400 = 25 ms at 16 kHz).
        hop_length: Frame shift in samples (160 = 10 ms at 16 kHz).
        n_mels: Number of mel bands. Default: 80.
        fmin: Lowest mel band edge in Hz. Default: 0.
        fmax: Highest mel band edge in Hz; `None` means `sample_rate / 2`.
            Default: 8000.
        htk: Mel scale of `librosa.filters.mel`: HTK (`True`) or Slaney
            (`False`, librosa's default).
        norm: Band normalization of `librosa.filters.mel` (`"slaney"`,
            librosa's default, or `None`).
        log_offset: Added to the mel power before the natural log; also the
            value of digital silence, `log(log_offset)`. Default: 1e-6.

    Example:

    >>> config = FrontEndConfig()
    >>> config.num_frames(16000), config.frame_seconds
    (101, 0.01)
    >>> FrontEndConfig.from_config(config.get_config()) == config
    True
    """

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    htk: bool = False
    norm: str | None = "slaney"
    log_offset: float = 1e-6

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.n_fft % 2:
            raise ValueError(f"`n_fft` must be even, got {self.n_fft}.")
        if self.log_offset <= 0:
            raise ValueError(f"`log_offset` must be positive, got {self.log_offset!r}.")

    @property
    def frame_seconds(self) -> float:
        """Seconds between two frames."""
        return self.hop_length / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames of an utterance of `num_samples` samples (0 for empty audio)."""
        return 1 + num_samples // self.hop_length if num_samples > 0 else 0

    def mel_matrix(self) -> np.ndarray:
        """librosa's mel filter bank, transposed: float32 `[n_fft // 2 + 1, n_mels]`."""
        import librosa

        matrix = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
            dtype=np.float32,
        )
        return np.ascontiguousarray(matrix.T)

    def band_frequencies(self) -> np.ndarray:
        """The mel bands' centre frequencies in Hz, float32 `[n_mels]` (librosa's
        `mel_frequencies`, on the same scale as `mel_matrix`)."""
        import librosa

        edges = librosa.mel_frequencies(
            self.n_mels + 2, fmin=self.fmin, fmax=self.fmax or self.sample_rate / 2, htk=self.htk
        )
        return edges[1:-1].astype(np.float32)

    def window(self) -> np.ndarray:
        """librosa's periodic Hann window, float64 `[n_fft]`."""
        import librosa

        return librosa.filters.get_window("hann", self.n_fft, fftbins=True).astype(np.float64)

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FrontEndConfig:
        return cls(**config)


def _as_config(config: FrontEndConfig | dict | None) -> FrontEndConfig:
    if config is None:
        return FrontEndConfig()
    if isinstance(config, dict):
        return FrontEndConfig.from_config(config)
    return config


def log_mel_librosa(audio: np.ndarray, config: FrontEndConfig | None = None) -> np.ndarray:
    """Log-mel features of one utterance with librosa: the reference front-end.

    Args:
        audio: Mono samples `[samples]` at `config.sample_rate`, in [-1, 1].
        config: Front-end parameters. Default: `FrontEndConfig()`.

    Returns:
        float32 `[frames, n_mels]`, `frames = 1 + samples // hop_length`
        (`[0, n_mels]` for empty audio).

    Example:

    >>> log_mel_librosa(np.zeros(16000, "float32")).shape
    (101, 80)
    """
    import librosa

    config = _as_config(config)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"`audio` must be 1-D (mono samples), got shape {audio.shape}.")
    if audio.size == 0:
        return np.zeros((0, config.n_mels), np.float32)
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.n_fft,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=config.htk,
        norm=config.norm,
    )
    return np.log(mel.T + np.float32(config.log_offset)).astype(np.float32)


_LAYERS = ("FeatureNormalization", "LogMel", "decode_wav_batch")


def __getattr__(name: str):
    # The Keras half lives in audio.layers; importing it loads TensorFlow.
    if name in _LAYERS:
        from audio import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
