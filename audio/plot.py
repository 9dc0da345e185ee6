"""Spectrogram pictures: what `seq2seq transcribe --plot FILE.png` writes.

Drawn with matplotlib's object API on an Agg canvas, so it needs no display
and does not change the global pyplot backend of the calling program.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np

from audio.features import FrontEndConfig, log_mel_librosa

__all__ = ["plot_spectrogram"]


def plot_spectrogram(
    features_or_audio: np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
    *,
    config: FrontEndConfig | None = None,
    dpi: int = 100,
) -> None:
    """Writes a PNG of a log-mel spectrogram, with the waveform above it when
    given audio, and a transcript as the title.

    Args:
        features_or_audio: Log-mel features `[frames, n_mels]`, or mono audio
            `[samples]` at `config.sample_rate` (its features are computed with
            `log_mel_librosa`).
        path: Where to write the PNG.
        title: Text above the plot, e.g. the transcript; wrapped when long.
        config: Front-end parameters (frame rate, sample rate).
            Default: `FrontEndConfig()`.
        dpi: Resolution. Default: 100.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "plot.png"
    >>> plot_spectrogram(np.zeros((120, 80)), path, title="hello world")
    >>> path.read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    config = config or FrontEndConfig()
    data = np.asarray(features_or_audio, np.float32)
    audio = None
    if data.ndim == 1:
        audio, data = data, log_mel_librosa(data, config)
    elif data.ndim != 2:
        raise ValueError(
            f"expected features [frames, n_mels] or audio [samples], got shape {data.shape}"
        )
    frames, bands = data.shape
    seconds = max(frames * config.frame_seconds, config.frame_seconds)

    width = float(np.clip(2.0 + seconds * 1.5, 6.0, 20.0))
    figure = Figure(figsize=(width, 5.0 if audio is not None else 3.8), dpi=dpi)
    FigureCanvasAgg(figure)
    if audio is not None:
        grid = figure.add_gridspec(2, 2, height_ratios=(1, 3), width_ratios=(40, 1))
        wave_axes = figure.add_subplot(grid[0, 0])
        axes = figure.add_subplot(grid[1, 0], sharex=wave_axes)
        colorbar_axes = figure.add_subplot(grid[1, 1])
        times = np.arange(len(audio)) / config.sample_rate
        wave_axes.plot(times, audio, linewidth=0.5, color="tab:blue")
        wave_axes.set_ylim(-1.0, 1.0)
        wave_axes.set_ylabel("amplitude")
        wave_axes.tick_params(labelbottom=False)
    else:
        grid = figure.add_gridspec(1, 2, width_ratios=(40, 1))
        axes = figure.add_subplot(grid[0, 0])
        colorbar_axes = figure.add_subplot(grid[0, 1])

    image = axes.imshow(
        data.T if frames else np.zeros((bands, 1)),
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        extent=(0.0, seconds, 0.0, float(bands)),
    )
    axes.set_xlim(0.0, seconds)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("mel band")
    figure.colorbar(image, cax=colorbar_axes, label="log mel power")
    if title:
        wrapped = "\n".join(textwrap.wrap(title, width=max(40, int(width * 12))))
        figure.suptitle(wrapped, fontsize=10)
    figure.savefig(os.fspath(path), format="png", dpi=dpi)
