"""Training augmentation: additive noise, speed perturbation, SpecAugment, VTLP.

Waveform augmentations (`add_noise`, `speed_perturb`, `augment_waveform`) are
NumPy functions for data preparation or a `tf.data` generator; randomness comes
from an explicit `np.random.Generator`, so a seed reproduces them exactly.
SpecAugment masks log-mel features: `SpecAugment` is a Keras layer active only
in training, and `spec_augment` is the same masking as a stateless function of
a seed, for `tf.data.Dataset.map`. `VTLP` warps their frequencies as another
vocal tract length would (`warp_frequencies` with given factors). All live in
`audio.layers` and are re-exported here lazily, so the waveform functions import no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "add_noise",
    "augment_waveform",
    "background_noise",
    "pink_noise",
    "signal_to_noise_db",
    "speed_perturb",
    "white_noise",
]  # + the lazy names of _LAYERS


def white_noise(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise of unit power, float32 `[num_samples]`."""
    return rng.standard_normal(num_samples).astype(np.float32)


def pink_noise(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of unit power, float32 `[num_samples]`.

    White noise shaped in the frequency domain by `1/sqrt(f)` (the DC bin is
    dropped).

    Example:

    >>> noise = pink_noise(16000, np.random.default_rng(0))
    >>> noise.shape, round(float(np.mean(noise**2)), 3)
    ((16000,), 1.0)
    """
    if num_samples <= 0:
        return np.zeros(0, np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(frequencies[1:])
    noise = np.fft.irfft(spectrum, n=num_samples)
    power = np.mean(noise**2)
    return (noise / np.sqrt(power) if power > 0 else noise).astype(np.float32)


NOISE_GENERATORS = {"white": white_noise, "pink": pink_noise}
"""The synthetic noises by name, each `generator(num_samples, rng)` of unit power."""


def signal_to_noise_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """`10 log10(mean(signal**2) / mean(noise**2))` in dB."""
    signal, noise = np.asarray(signal, np.float64), np.asarray(noise, np.float64)
    return float(10.0 * np.log10(np.mean(signal**2) / np.mean(noise**2)))


def _fit_length(noise: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """`noise` looped from a random offset to `num_samples` samples."""
    noise = np.asarray(noise, np.float32)
    if noise.ndim != 1 or noise.size == 0:
        raise ValueError(f"a noise clip must be 1-D and non-empty, got shape {noise.shape}.")
    offset = int(rng.integers(len(noise)))
    repeats = -(-(offset + num_samples) // len(noise))
    return np.tile(noise, repeats)[offset : offset + num_samples]


def add_noise(
    audio: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    noise: str | np.ndarray = "white",
) -> np.ndarray:
    """Adds noise scaled to exactly `snr_db` (mean power ratio over the clip).

    Args:
        audio: Mono samples `[samples]`.
        snr_db: Signal-to-noise ratio in dB.
        rng: Source of the noise and of a clip's offset.
        noise: `"white"`, `"pink"`, or a noise clip `[n]` (looped from a
            random offset when shorter than `audio`).

    Returns:
        float32 `[samples]`, not clipped (clipping would change the SNR).
        Silent audio is returned unchanged: it has no SNR.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> clean = np.sin(np.arange(8000) / 5.0).astype("float32")
    >>> noisy = add_noise(clean, 10.0, rng, "pink")
    >>> round(signal_to_noise_db(clean, noisy - clean), 3)
    10.0
    """
    audio = np.asarray(audio, np.float32)
    if isinstance(noise, str):
        if noise not in NOISE_GENERATORS:
            raise ValueError(f"`noise` must be 'white', 'pink' or an array, got {noise!r}.")
        clip = NOISE_GENERATORS[noise](len(audio), rng)
    else:
        clip = _fit_length(noise, len(audio), rng)
    signal_power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    noise_power = float(np.mean(np.square(clip, dtype=np.float64))) if clip.size else 0.0
    if signal_power == 0.0 or noise_power == 0.0:
        return audio.copy()
    scale = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (audio + scale * clip).astype(np.float32)


def background_noise(
    num_samples: int,
    rng: np.random.Generator,
    level_db: tuple[float, float] = (-75.0, -25.0),
) -> np.ndarray:
    """Noise alone, as a recording where nobody speaks: white or pink (equally likely)
    at an RMS level uniform in `level_db` dB below full scale.

    Example:

    >>> quiet = background_noise(16000, np.random.default_rng(0), level_db=(-40.0, -40.0))
    >>> round(float(10 * np.log10(np.mean(quiet.astype(np.float64) ** 2))), 3)
    -40.0
    """
    generator = list(NOISE_GENERATORS.values())[int(rng.integers(len(NOISE_GENERATORS)))]
    level = float(rng.uniform(*level_db))
    return (generator(num_samples, rng) * 10.0 ** (level / 20.0)).astype(np.float32)


def speed_perturb(audio: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Plays `audio` `factor` times faster (tempo and pitch, as in Kaldi's
    speed perturbation): resamples it from `factor * sample_rate` to
    `sample_rate` with soxr, so its length becomes `ceil(len(audio) / factor)`.

    Example:

    >>> len(speed_perturb(np.zeros(16000, "float32"), 1.1))
    14546
    """
    audio = np.asarray(audio, np.float32)
    if factor <= 0:
        raise ValueError(f"`factor` must be positive, got {factor!r}.")
    if factor == 1.0:
        return audio.copy()
    import librosa

    return librosa.resample(
        audio, orig_sr=factor * sample_rate, target_sr=sample_rate, res_type="soxr_hq"
    ).astype(np.float32)


def augment_waveform(
    audio: np.ndarray,
    rng: np.random.Generator,
    *,
    sample_rate: int = 16000,
    speeds: Sequence[float] = (0.9, 1.0, 1.1),
    noise_probability: float = 0.8,
    snr_db: tuple[float, float] = (5.0, 30.0),
    noise_clips: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """One random training version of `audio`: a speed from `speeds`, then,
    with probability `noise_probability`, noise at an SNR uniform in `snr_db`
    (white, pink, or one of `noise_clips`, equally likely).

    Example:

    >>> clean = np.sin(np.arange(16000) / 7.0).astype("float32")
    >>> a = augment_waveform(clean, np.random.default_rng(3))
    >>> b = augment_waveform(clean, np.random.default_rng(3))
    >>> bool(np.array_equal(a, b))
    True
    """
    factor = float(speeds[int(rng.integers(len(speeds)))]) if speeds else 1.0
    audio = speed_perturb(audio, factor, sample_rate)
    if rng.random() < noise_probability:
        kinds: list[str | np.ndarray] = ["white", "pink", *noise_clips]
        noise = kinds[int(rng.integers(len(kinds)))]
        audio = add_noise(audio, float(rng.uniform(*snr_db)), rng, noise)
    return audio


_LAYERS = ("SpecAugment", "VTLP", "spec_augment", "warp_frequencies")


def __getattr__(name: str):
    # The Keras half lives in audio.layers; importing it loads TensorFlow.
    if name in _LAYERS:
        from audio import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
