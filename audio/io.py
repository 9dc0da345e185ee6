"""Audio loading: any common file to float32 mono at one sample rate.

`load_audio` decodes with soundfile (libsndfile: WAV, FLAC, OGG Vorbis/Opus,
MP3 with libsndfile >= 1.1, AIFF, ...) and, for anything else, falls back to
audioread, which needs a system decoder such as ffmpeg (G.722, AAC, ...).
Channels are averaged, the sample rate converted with soxr's high-quality
resampler (`librosa.resample(res_type="soxr_hq")`), non-finite samples replaced
by 0 (with an `AudioWarning`) and the result clipped to [-1, 1]. Every failure
is an `AudioError` whose message starts with the file's name.

`split_at_silences` cuts long audio into pieces of bounded length at its
quietest points, for transcribing long recordings piece by piece. For recordings of
hours, `stream_audio` decodes and resamples a file block by block and `split_stream`
cuts the blocks into the same pieces, so that memory follows a block, not the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

__all__ = [
    "AudioError",
    "AudioWarning",
    "load_audio",
    "read_wav_bytes",
    "audio_duration",
    "silence_spans",
    "split_at_silences",
    "split_stream",
    "stream_audio",
    "to_wav_bytes",
]

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

_READ_BLOCK = 1 << 20
"""Samples (frames x channels) that libsndfile decodes at a time."""

_DECODE_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError)
"""What libsndfile (through soundfile) raises on a file it cannot decode."""

_END_BYTES = 1 << 17
"""Bytes of a streamed file's start and end read for its truncation checks (more than
an Ogg page, at most 65,307 bytes, and than the chunks before a WAV's data)."""


class AudioError(ValueError):
    """An input that cannot be turned into audio; the message names it."""


class AudioWarning(UserWarning):
    """Audio was loaded but repaired (non-finite samples, truncation)."""


def load_audio(
    source: Source,
    sample_rate: int = 16000,
    *,
    name: str | None = None,
    strict: bool = True,
) -> np.ndarray:
    """Loads an audio file as float32 mono samples in [-1, 1] at `sample_rate`.

    Args:
        source: A path, the file's bytes, or a binary file object.
        sample_rate: Output sample rate in Hz. Default: 16000.
        name: Name of the input in messages. Default: the path, or `"<bytes>"`.
        strict: Whether a truncated file (fewer samples than its header
            declares) is an error; otherwise its samples are returned with an
            `AudioWarning`. Default: `True`.

    Returns:
        float32 `[samples]`.

    Raises:
        AudioError: Missing, empty, truncated or undecodable input.

    Example:

    >>> stereo = np.stack([np.full(800, 0.5), np.full(800, -0.25)], axis=1)
    >>> audio = load_audio(to_wav_bytes(stereo, 8000), sample_rate=16000)
    >>> audio.dtype, audio.shape, round(float(audio[800]), 2)
    (dtype('float32'), (1600,), 0.12)
    """
    data, name, path = _read_source(source, name)
    samples, rate = _decode(data, name, path, strict)
    return _finish(samples, rate, sample_rate, name)


def read_wav_bytes(data: bytes, sample_rate: int = 16000, *, name: str = "<wav bytes>"):
    """Decodes 16-bit PCM WAV bytes as the `transcribe_wav` signature does.

    Samples are scaled by 1/32768 like `tf.audio.decode_wav` (and
    `audio.features.decode_wav_batch`) and channels averaged; other sample
    rates are resampled to `sample_rate` (the graph rejects them instead).

    Args:
        data: A complete WAV file.
        sample_rate: Output sample rate in Hz. Default: 16000.
        name: Name of the input in messages.

    Returns:
        float32 `[samples]` in [-1, 1).

    Raises:
        AudioError: Not a WAV file, or not 16-bit PCM, or truncated.

    Example:

    >>> read_wav_bytes(to_wav_bytes(np.array([0.5, -1.0]))).tolist()
    [0.5, -1.0]
    """
    data = bytes(data)
    try:
        info = soundfile.info(_Buffer(data))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{name}: not a WAV file ({_reason(error)})") from None
    if info.format not in ("WAV", "WAVEX") or info.subtype != "PCM_16":
        raise AudioError(f"{name}: expected 16-bit PCM WAV, got {info.format} {info.subtype}")
    samples, rate = _decode(data, name, None, strict=True)
    return _finish(samples, rate, sample_rate, name)


def to_wav_bytes(audio: np.ndarray, sample_rate: int = 16000) -> bytes:
    """Encodes samples in [-1, 1] (`[samples]` or `[samples, channels]`) as
    16-bit PCM WAV bytes, the input of the `transcribe_wav` signature.

    Example:

    >>> to_wav_bytes(np.zeros(10))[:4], len(to_wav_bytes(np.zeros(10)))
    (b'RIFF', 64)
    """
    buffer = io.BytesIO()
    audio = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class _Buffer(io.BytesIO):
    """A file's bytes for libsndfile, where a seek to before the start fails as `lseek`
    does (position kept, -1 reported) instead of raising `ValueError`, which soundfile's
    C callback cannot pass on and prints to stderr as a traceback (broken AIFF headers)."""

    _failed = False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:  # a negative position
            self._failed = True
            return -1

    def tell(self) -> int:  # soundfile's seek callback returns `tell()` after `seek`
        if self._failed:
            self._failed = False
            return -1
        return super().tell()


def _read_source(source: Source, name: str | None) -> tuple[bytes, str, Path | None]:
    """The input's bytes, its name for messages, and its path if it has one."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>", None
    if hasattr(source, "read"):
        name = name or str(getattr(source, "name", "<file object>"))
        try:
            return bytes(source.read()), name, None
        except OSError as error:
            raise AudioError(f"{name}: cannot read ({error})") from None
    path = Path(source)
    name = name or str(source)
    with _reading(name):
        return path.read_bytes(), name, path


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Turns the `OSError` of reading a file into an `AudioError` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{name}: is a directory, not an audio file") from None
    except OSError as error:
        raise AudioError(f"{name}: cannot read ({error.strerror or error})") from None


def _reason(error: Exception) -> str:
    """libsndfile's reason without soundfile's 'Error opening <object>: '."""
    text = str(error)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def _decode(data: bytes, name: str, path: Path | None, strict: bool):
    """`(samples [n, channels] float32, sample_rate)`, or an `AudioError`."""
    if not data:
        raise AudioError(f"{name}: empty file")
    # Only MPEG audio: capturing file descriptor 2 is process-wide, so it must not sit
    # on the path of every training file that tf.data loads in parallel.
    capture = _c_stderr() if _looks_like_mpeg(data) else contextlib.nullcontext([])
    with capture as notes:
        try:
            file = soundfile.SoundFile(_Buffer(data))
        except _DECODE_ERRORS as error:  # a format libsndfile lacks: another decoder may have it
            file, reason = None, _reason(error)
        else:
            # libsndfile knows the format: a failure now is a broken file, which another
            # decoder would only half read.
            with file:
                declared, rate = file.frames, file.samplerate
                try:
                    samples = _read_blocks(file)
                except _DECODE_ERRORS as error:
                    raise AudioError(f"{name}: cannot decode audio ({_reason(error)})") from None
    if file is None:
        samples, rate = _decode_audioread(data, name, path, reason)
        declared = len(samples)
    truncation = _wav_truncation(data, len(data)) or _ogg_truncation(data)
    _check_decoded(name, notes, truncation, len(samples), declared, strict)
    if samples.shape[1] == 0:
        raise AudioError(f"{name}: contains no audio samples")
    return samples, int(rate)


def _check_decoded(
    name: str, notes: list[str], truncation: str | None, decoded: int, declared: int, strict: bool
) -> None:
    """What `load_audio` and `stream_audio` say once a file is decoded: one warning for
    libmpg123's notes on damaged frames (which it skips), and an error (`strict`) or a
    warning when the file was cut (`truncation`, or fewer frames than `declared`); an
    error when no frame decoded."""
    if notes:
        message = f"{name}: the decoder reported damage ({notes[0]})"
        warnings.warn(message, AudioWarning, stacklevel=4)
    if truncation is None and decoded < 0.99 * declared:
        truncation = f"header declares {declared} samples, only {decoded} decode"
    if truncation is not None:
        if strict:
            raise AudioError(f"{name}: truncated file ({truncation})")
        warnings.warn(f"{name}: truncated file ({truncation})", AudioWarning, stacklevel=4)
    if decoded == 0:
        raise AudioError(f"{name}: contains no audio samples")


_STDERR_LOCK = threading.Lock()


def _looks_like_mpeg(data: bytes) -> bool:
    """An ID3 tag or an MPEG audio frame sync at the start: what libmpg123 decodes."""
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


@contextlib.contextmanager
def _c_stderr() -> Iterator[list[str]]:
    """Captures what C libraries write to file descriptor 2 meanwhile (libmpg123 prints
    notes on damaged MP3 frames there, which would break the CLI's one line per
    problem); yields a list that holds the captured lines once the block ends. One
    capture at a time: two threads swapping descriptor 2 would restore each other's."""
    lines: list[str] = []
    sys.stderr.flush()
    with _STDERR_LOCK, tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _decode_audioread(data: bytes, name: str, path: Path | None, reason: str):
    """Decodes what libsndfile cannot with audioread (ffmpeg, GStreamer, ...)."""
    try:
        import audioread
    except ImportError:
        raise AudioError(f"{name}: cannot decode audio ({reason})") from None
    temporary = None
    try:
        if path is None:
            temporary = tempfile.NamedTemporaryFile(suffix=".audio", delete=False)
            temporary.write(data)
            temporary.close()
        target = str(path) if path is not None else temporary.name
        with audioread.audio_open(target) as file:
            rate, channels = file.samplerate, file.channels
            raw = b"".join(file)
    except audioread.NoBackendError:  # every decoder refused it, or there is none but Python's
        others = [b for b in audioread.available_backends() if b.__name__ != "RawAudioFile"]
        hint = "" if others else "; no other decoder: install ffmpeg for formats libsndfile lacks"
        raise AudioError(f"{name}: cannot decode audio ({reason}{hint})") from None
    except Exception as error:  # on broken input the decoders raise anything (Python's
        # wave/aifc/sunau readers: RuntimeError, OverflowError, MemoryError, ...)
        detail = str(error) or type(error).__name__
        raise AudioError(f"{name}: cannot decode audio ({reason}; {detail})") from None
    finally:
        if temporary is not None:
            os.unlink(temporary.name)
    if channels < 1 or rate < 1:
        raise AudioError(f"{name}: cannot decode audio ({reason}; no audio stream)")
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    return samples[: len(samples) // channels * channels].reshape(-1, channels), rate


def _read_blocks(file: soundfile.SoundFile) -> np.ndarray:
    """All frames of an open file as float32 `[frames, channels]`, read in blocks of at
    most `_READ_BLOCK` samples: memory follows the audio there is, not the frame count
    the header claims (which a broken file can set to billions)."""
    frames = max(1, _READ_BLOCK // max(1, file.channels))
    blocks = []
    while True:
        block = _read_frames(file, frames)
        if len(block):
            blocks.append(block)
        if len(block) < frames:
            break
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros((0, file.channels), np.float32)


def _read_frames(file: soundfile.SoundFile, frames: int) -> np.ndarray:
    """The next (up to) `frames` frames of an open file as float32 `[frames, channels]`.

    Calls libsndfile's `sf_readf_float` through soundfile's own binding rather than
    `SoundFile.read`, which seeks to where it thinks each read ended: for MP3, a seek
    restarts libmpg123 without its bit reservoir, so the frame after every block
    decodes wrongly (measured: samples up to 0.17 off at block boundaries, with
    "part2_3_length too large" on stderr; python-soundfile issue #402).
    """
    out = np.empty((frames, file.channels), np.float32)
    pointer = soundfile._ffi.cast("float *", out.ctypes.data)
    count = soundfile._snd.sf_readf_float(file._file, pointer, frames)
    error = soundfile._snd.sf_error(file._file)
    if error:
        raise soundfile.LibsndfileError(error)
    return out if count == frames else out[:count].copy()  # not a view of a big block


def _wav_truncation(head: bytes, file_size: int) -> str | None:
    """Why a RIFF WAV's data chunk is shorter than its header says, or None.

    libsndfile silently shortens such files; a download cut short should not
    be transcribed as if it were complete.

    Args:
        head: the file's first bytes (at least up to its data chunk's header).
        file_size: the file's size in bytes.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk = head[offset : offset + 4]
        (size,) = struct.unpack("<I", head[offset + 4 : offset + 8])
        if chunk == b"data":
            available = file_size - offset - 8
            if size in (0, 0xFFFFFFFF) or available >= size - 1:  # unknown size, pad byte
                return None
            return f"data chunk declares {size} bytes, only {available} present"
        offset += 8 + size + (size & 1)
    return None


def _ogg_truncation(data: bytes) -> str | None:
    """Why an Ogg file (Vorbis, Opus, FLAC) was cut short, or None.

    libsndfile takes an Ogg file's length from its last complete page, so a
    file cut at any point looks complete; a complete one ends with a whole page
    that carries the end-of-stream flag. `data` is the file, or its last
    `_END_BYTES` (more than a page).
    """
    if data[:4] != b"OggS":
        return None
    last = data.rfind(b"OggS")
    header = data[last : last + 27]
    if len(header) < 27:
        return "the last Ogg page is cut"
    segments = data[last + 27 : last + 27 + header[26]]
    if len(segments) < header[26] or last + 27 + header[26] + sum(segments) > len(data):
        return "the last Ogg page is cut"
    if not header[5] & 0x04:
        return "no end-of-stream page"
    return None


def _finish(samples: np.ndarray, rate: int, sample_rate: int, name: str) -> np.ndarray:
    """Mono, finite, resampled and clipped float32 samples."""
    mono, non_finite = _mono_finite(samples)
    if non_finite:
        _warn_non_finite(name, non_finite)
    if rate != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
        np.clip(mono, -1.0, 1.0, out=mono)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _mono_finite(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """`[frames, channels]` samples as a new mono array clipped to [-1, 1], with 0 for
    each non-finite sample, and the count of those."""
    mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.copy()
    finite = np.isfinite(mono)
    count = int(mono.size - np.count_nonzero(finite))
    if count:
        mono[~finite] = 0.0
    np.clip(mono, -1.0, 1.0, out=mono)
    return mono, count


def _warn_non_finite(name: str, count: int) -> None:
    message = f"{name}: replaced {count} non-finite samples (NaN/Inf) by 0"
    warnings.warn(message, AudioWarning, stacklevel=4)


def audio_duration(path: str | os.PathLike) -> float | None:
    """A file's duration in seconds from its header, or None when libsndfile cannot read
    the header (another decoder might still read the file: `load_audio` says)."""
    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return None


def stream_audio(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    *,
    block_seconds: float = 60.0,
    name: str | None = None,
    strict: bool = True,
) -> Iterator[np.ndarray]:
    """Yields a file's audio as `load_audio` returns it (float32 mono in [-1, 1] at
    `sample_rate`), in consecutive blocks of about `block_seconds`, decoding and
    resampling as it goes (soxr's streaming form of the same resampler): memory follows
    a block, not the recording. The blocks joined are `load_audio`'s samples.

    Args:
        path: An audio file that libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF, ...;
            `audio_duration` is not None for it).
        sample_rate: Output sample rate in Hz. Default: 16000.
        block_seconds: Seconds of input decoded at a time. Default: 60.
        name: Name of the input in messages. Default: the path.
        strict: Whether a truncated file is an error (see `load_audio`). Default: `True`.

    Yields:
        float32 `[samples]` blocks; `AudioWarning`s (non-finite samples, decoder
        notes) come once, after the last.

    Raises:
        AudioError: Missing, empty or undecodable input, or a header that says the file
            was cut (before the first block); fewer samples than the header declares, or
            none (after the last).

    Example:

    >>> with tempfile.NamedTemporaryFile(suffix=".wav") as file:
    ...     _ = file.write(to_wav_bytes(np.zeros(16000)))
    ...     file.flush()
    ...     [len(block) for block in stream_audio(file.name, block_seconds=0.4)]
    [6400, 6400, 3200]
    """
    if block_seconds <= 0:
        raise ValueError(f"`block_seconds` must be positive, got {block_seconds!r}.")
    name = name or str(path)
    with _reading(name), open(path, "rb") as raw:
        head = raw.read(_END_BYTES)
        size = raw.seek(0, os.SEEK_END)
        raw.seek(max(0, size - _END_BYTES))
        tail = raw.read()
    if not head:
        raise AudioError(f"{name}: empty file")
    truncation = _wav_truncation(head, size) or _ogg_truncation(tail)
    if truncation is not None and strict:
        raise AudioError(f"{name}: truncated file ({truncation})")
    try:
        file = soundfile.SoundFile(str(path))
    except _DECODE_ERRORS as error:
        raise AudioError(f"{name}: cannot decode audio ({_reason(error)})") from None
    mpeg = _looks_like_mpeg(head)
    notes: list[str] = []
    decoded = resampled = non_finite = 0
    with file:
        frames = max(1, int(block_seconds * file.samplerate))
        resampler = None
        if file.samplerate != sample_rate:
            import soxr  # librosa's "soxr_hq", block by block

            resampler = soxr.ResampleStream(file.samplerate, sample_rate, 1, "float32", "HQ")
        while True:
            with _c_stderr() if mpeg else contextlib.nullcontext([]) as captured:
                try:
                    block = _read_frames(file, frames)
                except _DECODE_ERRORS as error:
                    raise AudioError(f"{name}: cannot decode audio ({_reason(error)})") from None
            notes += captured
            last = len(block) < frames
            decoded += len(block)
            mono, count = _mono_finite(block)
            non_finite += count
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
                np.clip(mono, -1.0, 1.0, out=mono)
                if last:  # the length librosa.resample gives (`fix=True`)
                    length = int(np.ceil(decoded * float(sample_rate) / file.samplerate))
                    mono = np.pad(mono, (0, max(0, length - resampled - len(mono))))
                    mono = mono[: max(0, length - resampled)]
                resampled += len(mono)
            if len(mono):
                yield mono
            if last:
                break
        declared = file.frames
    if non_finite:
        _warn_non_finite(name, non_finite)
    _check_decoded(name, notes, truncation, decoded, declared, strict)


def _frame_energy_db(audio: np.ndarray, frame: int, chunk: int = 4096) -> np.ndarray:
    """Mean power in dB of consecutive frames of `frame` samples, computed `chunk` frames
    at a time: float64 copies of all of long audio would take 4 times its memory."""
    count = len(audio) // frame
    power = np.empty(count)
    for first in range(0, count, chunk):
        last = min(count, first + chunk)
        samples = audio[first * frame : last * frame].astype(np.float64)
        power[first:last] = np.square(samples).reshape(last - first, frame).mean(1)
    return 10.0 * np.log10(power + 1e-10)


def _quietest_frame(energy: np.ndarray, tolerance_db: float) -> int:
    """Index of the middle of the last run of frames within `tolerance_db` of
    the minimum of `energy`."""
    quiet = energy <= energy.min() + tolerance_db
    end = len(quiet) - int(np.argmax(quiet[::-1]))  # one past the last quiet frame
    before = np.flatnonzero(~quiet[:end])
    begin = int(before[-1]) + 1 if len(before) else 0
    return (begin + end - 1) // 2


def silence_spans(
    audio: np.ndarray,
    max_seconds: float = 20.0,
    sample_rate: int = 16000,
    *,
    min_fraction: float = 0.5,
    smooth_seconds: float = 0.2,
    tolerance_db: float = 1.0,
) -> list[tuple[int, int]]:
    """Where to cut long audio: contiguous `(start, end)` sample spans covering
    it, each at most `max_seconds` long, cut at the quietest points.

    Frame energies (10 ms) are smoothed over `smooth_seconds`. Between
    `min_fraction` and 1 times `max_seconds` after the previous cut, the frames
    within `tolerance_db` of the quietest form runs (pauses); the cut goes to
    the middle of the last run. Pieces are thus neither tiny nor longer than
    allowed, and cuts fall in the middle of pauses whenever there are any.

    Args:
        audio: Mono samples `[samples]`.
        max_seconds: Longest piece in seconds. Default: 20.
        sample_rate: Sample rate of `audio`. Default: 16000.
        min_fraction: Shortest piece before the last, as a fraction of
            `max_seconds`. Default: 0.5.
        smooth_seconds: Length of the stretch whose energy is compared.
            Default: 0.2.
        tolerance_db: How much louder than the quietest stretch a stretch may
            be and still count as equally quiet. Default: 1.

    Returns:
        `[(start, end), ...]` with `start` of each the `end` of the previous,
        from 0 to `len(audio)`; one span if the audio is short enough.

    Example:

    >>> tone = np.sin(np.arange(16000 * 5) / 3.0)
    >>> tone[16000 * 3 : 16000 * 3 + 1600] = 0.0  # a pause at 3.0-3.1 s
    >>> silence_spans(tone, max_seconds=4.0)
    [(0, 48800), (48800, 80000)]
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"`audio` must be 1-D (mono samples), got shape {audio.shape}.")
    frame = max(1, sample_rate // 100)
    longest = int(max_seconds * sample_rate) // frame * frame
    if longest < frame:
        raise ValueError(f"`max_seconds` is shorter than 10 ms: {max_seconds!r}.")
    if len(audio) <= longest:
        return [(0, len(audio))]
    energy = _frame_energy_db(audio, frame)
    width = max(1, int(round(smooth_seconds * sample_rate / frame)))
    smoothed = np.convolve(energy, np.ones(width) / width, mode="same")
    spans, start = [], 0
    while len(audio) - start > longest:
        first = (start + int(min_fraction * longest)) // frame + 1
        last = (start + longest) // frame  # cut at a frame boundary <= start + longest
        cut = _quietest_frame(smoothed[first : last + 1], tolerance_db) * frame + first * frame
        spans.append((start, cut))
        start = cut
    spans.append((start, len(audio)))
    return spans


def split_at_silences(
    audio: np.ndarray, max_seconds: float = 20.0, sample_rate: int = 16000, **kwargs
) -> list[np.ndarray]:
    """Splits long audio at its quietest points into pieces of at most
    `max_seconds`; their concatenation is `audio`. Keyword arguments are those
    of `silence_spans`.

    Example:

    Without any pause, cuts fall in the middle of the allowed window:

    >>> pieces = split_at_silences(np.ones(16000 * 50, "float32"), max_seconds=20)
    >>> [len(piece) / 16000 for piece in pieces]
    [15.0, 15.0, 20.0]
    """
    spans = silence_spans(audio, max_seconds, sample_rate, **kwargs)
    return [audio[start:end] for start, end in spans]


def split_stream(
    blocks: Iterable[np.ndarray], max_seconds: float = 20.0, sample_rate: int = 16000, **kwargs
) -> Iterator[np.ndarray]:
    """`split_at_silences` of consecutive blocks of audio (`stream_audio`'s), without
    joining them: yields exactly the pieces `split_at_silences` makes of the blocks
    joined, each as soon as the audio that decides its end has arrived, and holds only
    the audio not yet cut (less than a block plus `max_seconds`). Keyword arguments
    are those of `silence_spans`.

    Example:

    >>> blocks = [np.ones(16000 * 7, "float32")] * 7 + [np.ones(16000, "float32")]
    >>> [len(piece) / 16000 for piece in split_stream(blocks, max_seconds=20)]
    [15.0, 15.0, 20.0]
    """
    frame = max(1, sample_rate // 100)
    longest = int(max_seconds * sample_rate) // frame * frame
    smooth = int(round(kwargs.get("smooth_seconds", 0.2) * sample_rate / frame))
    # A cut is decided by the energies up to `longest` after the piece's start, each of
    # them smoothed with neighbours up to half the window later.
    horizon = longest + (smooth + 2) * frame
    pending: list[np.ndarray] = []
    buffer = np.zeros(0, np.float32)
    held = 0  # samples in buffer and pending
    for block in blocks:
        pending.append(np.asarray(block))
        held += len(pending[-1])
        if held < longest + horizon:
            continue
        buffer = np.concatenate([buffer, *pending])
        pending = []
        final = 0
        for start, end in silence_spans(buffer, max_seconds, sample_rate, **kwargs):
            if start + horizon > len(buffer):
                break
            yield buffer[start:end]
            final = end
        buffer = buffer[final:].copy()  # not a view that keeps the whole buffer
        held = len(buffer)
    buffer = np.concatenate([buffer, *pending])
    if len(buffer):
        yield from split_at_silences(buffer, max_seconds, sample_rate, **kwargs)
