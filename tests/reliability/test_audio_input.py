"""Audio input: what `seq2seq transcribe --model` does with bad, odd and long files.

- One call over good files, odd but readable ones (NaN/Inf samples, full-scale clipping,
  8 kHz stereo 24-bit, FLAC, MP3 and Ogg, an MP3 named .wav) and bad ones (random
  bytes, a truncated WAV, garbled and impossible headers, an empty file, a WAV without
  samples, a missing path). `seq2seq transcribe` documents what happens: one stdout line
  per FILE in order, an empty one for a bad FILE; one stderr line per bad FILE naming
  it; exit status 1. Repaired audio gets a `warning:` line. No traceback, and the good
  files are transcribed exactly as in a call on them alone.
- Broken headers of every format that libsndfile or audioread's readers parse: each is
  an `AudioError` naming the file, never another exception, nothing printed.
- A 10-minute recording (tone "speech" of the tiny model's corpus, with pauses) after
  the good files, with `--json`: transcribed whole (streamed: it is longer than
  `BLOCK_SECONDS`), in pieces no longer than the model's `max_piece_seconds`, and the
  peak RSS of the process no more than `LONG_RSS_MARGIN_MB`
  above that of the call on the good files alone (about 25 s of audio).

Three `seq2seq transcribe` processes in all, about 20 s each on two busy cores (most of
it importing TensorFlow); the 10 minutes of audio add about 5 s.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
from asr_corpus import sentences, synthesize

from audio.io import AudioError, load_audio, silence_spans, to_wav_bytes
from conftest import run_seq2seq

PROG = "seq2seq transcribe"
RATE = 16000
LONG_RSS_MARGIN_MB = 300
"""Peak RSS the 10-minute recording may add to a call. Longer than
`seq2seq.transcribe.BLOCK_SECONDS`, it is read, resampled, cut and transcribed block by
block (`audio.io.stream_audio`), so its samples never sit in memory whole. Measured with
the tiny test model (Keras 3.15, TensorFlow 2.21, two busy cores): +110 MB over the good
files alone, most of it TensorFlow's working memory for full batches
(`MAX_BATCH_SECONDS` = 160 s of padded audio, which short calls never fill); loaded
whole it was +130 to +215 MB, growing by 7 MB per minute of audio (30 minutes: +364 MB).
Transcribing all pieces in one batch, or keeping every batch's tensors, would go far
over."""


def speech_like(seconds: float, seed: int) -> tuple[np.ndarray, str]:
    """`seconds` of 16 kHz "speech" the tiny model knows: sentences of tests/asr_corpus.py
    separated by 0.3-1 s pauses of faint noise. Returns the audio and its transcript."""
    rng = np.random.default_rng(seed)
    parts, texts, total = [], [], 0
    for index, text in enumerate(sentences(100_000, seed)):
        if total >= seconds * RATE:
            break
        pause = rng.normal(0.0, 0.003, int(rng.uniform(0.3, 1.0) * RATE)).astype(np.float32)
        parts += [synthesize(text, seed * 100_003 + index), pause]
        texts.append(text)
        total += len(parts[-2]) + len(pause)
    return np.concatenate(parts)[: int(seconds * RATE)], " ".join(texts)


def encoded(audio: np.ndarray, rate: int, **kwargs) -> bytes:
    """`audio` as a file `soundfile.write` makes (`format=`, `subtype=`)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, **kwargs)
    return buffer.getvalue()


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def run_measured(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """Runs `python -m seq2seq ARGS...` as `conftest.run_seq2seq` does, and also returns
    the peak RSS of that process in MB (from `wait4`: this child alone, not the others
    that pytest ran)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-m", "seq2seq", *args], stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                process.returncode = -9
                pytest.fail(f"seq2seq {' '.join(args)} ran over {timeout} s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(
            process.args, process.returncode, out.read().decode(), err.read().decode()
        )
    return result, usage.ru_maxrss / 1024  # Linux: kB


def messages(stderr: str) -> list[str]:
    """The program's own stderr lines (TensorFlow's start-up lines come between them);
    asserts that there is no traceback, printed exception or audio warning left as a
    Python warning."""
    for needle in ("Traceback", "Exception ignored", "AudioWarning"):
        assert needle not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith(f"{PROG}: ")]


# --- files ---------------------------------------------------------------------------------

# name -> the start of its error message after "NAME: ", or None for a good file. In the
# order of the call, bad ones between good ones.
FILES = {
    "speech.wav": None,
    "random.wav": "cannot decode audio",
    "nan-inf.wav": None,
    "truncated.wav": "truncated file",
    "clipped.wav": None,
    "garbled-header.wav": "cannot decode audio",
    "stereo-8k-24bit.wav": None,
    "zero-channels.wav": "cannot decode audio",
    "empty.wav": "empty file",
    "speech.flac": None,
    "no-samples.wav": "contains no audio samples",
    "speech.mp3": None,
    "missing.wav": "no such file",
    "speech.ogg": None,
    "mp3-named.wav": None,
    "ten-seconds.wav": None,
}


def write_files(directory: Path) -> dict[str, Path]:
    """Writes `FILES` (all but the missing one) into `directory`."""
    one, two, three = (synthesize(text, 40 + i) for i, text in enumerate(sentences(3, 40)))
    good = to_wav_bytes(two)
    with_bad_values = three.copy()
    with_bad_values[[100, 2000, 2001]] = [np.nan, np.inf, -np.inf]
    square = np.sign(np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE))  # +-1: full scale
    stereo = np.stack([one, 0.5 * one], axis=1)[::2]  # 8 kHz
    contents = {
        "speech.wav": to_wav_bytes(one),
        "random.wav": np.random.default_rng(0).bytes(30_000),
        "nan-inf.wav": encoded(with_bad_values, RATE, format="WAV", subtype="FLOAT"),
        "truncated.wav": good[: len(good) // 2],
        "clipped.wav": to_wav_bytes(square),
        # The fmt chunk overwritten: libsndfile refuses it, and so does Python's wave
        # module, with a bare RuntimeError.
        "garbled-header.wav": patched(good, 12, b"\xff" * 24),
        "stereo-8k-24bit.wav": encoded(stereo, 8000, format="WAV", subtype="PCM_24"),
        "zero-channels.wav": patched(good, 22, struct.pack("<H", 0)),
        "empty.wav": b"",
        "speech.flac": encoded(two, RATE, format="FLAC"),
        "no-samples.wav": to_wav_bytes(np.zeros(0)),
        "speech.mp3": encoded(three, RATE, format="MP3"),
        "speech.ogg": encoded(one, RATE, format="OGG", subtype="VORBIS"),
        "mp3-named.wav": encoded(two, RATE, format="MP3"),
        "ten-seconds.wav": to_wav_bytes(speech_like(10, seed=5)[0]),
    }
    paths = {name: directory / name for name in FILES}
    for name, content in contents.items():
        paths[name].write_bytes(content)
    return paths


# --- one call, good and bad files ------------------------------------------------------------


def good_names(paths: dict[str, Path]) -> list[str]:
    return [str(paths[name]) for name, error in FILES.items() if error is None]


def transcribe_good_files(model: Path, paths: dict[str, Path]) -> tuple[list[str], float]:
    """Transcribes the good files alone: their lines and the peak RSS of the process."""
    result, peak = run_measured("transcribe", "--model", str(model), *good_names(paths))
    assert result.returncode == 0, result.stderr[-3000:]
    texts = result.stdout.splitlines()
    assert len(texts) == len(good_names(paths))
    assert texts[0] and texts[-1]  # real "speech" (speech.wav, ten-seconds.wav) is heard
    warning = f"{PROG}: warning: {paths['nan-inf.wav']}: replaced 3 non-finite samples"
    assert [line[: len(warning)] for line in messages(result.stderr)] == [warning]
    print(f"\ngood files alone: peak RSS {peak:.0f} MB")
    return texts, peak


@pytest.fixture(scope="module")
def good_files(tiny_asr_export, tmp_path_factory) -> tuple[dict[str, Path], list[str], float]:
    """The files, and what a call on the good ones alone prints and takes (peak RSS, MB)."""
    paths = write_files(tmp_path_factory.mktemp("audio-input"))
    return (paths, *transcribe_good_files(tiny_asr_export, paths))


def check_good_and_bad_files(model: Path, paths: dict[str, Path], texts: list[str]) -> None:
    result = run_seq2seq("transcribe", "--model", str(model), *map(str, paths.values()))
    assert result.returncode == 1, result.stderr[-3000:]
    transcripts = iter(texts)
    expected = [next(transcripts) if error is None else "" for error in FILES.values()]
    assert result.stdout.splitlines() == expected  # one line per FILE, empty when bad

    lines = messages(result.stderr)
    warnings = [line for line in lines if line.startswith(f"{PROG}: warning: ")]
    assert len(warnings) == 1 and f" {paths['nan-inf.wav']}: " in warnings[0], warnings
    errors = [line for line in lines if line not in warnings]
    bad = [(paths[name], error) for name, error in FILES.items() if error is not None]
    assert len(errors) == len(bad), errors
    for line, (path, error) in zip(errors, bad, strict=True):
        assert line.startswith(f"{PROG}: {path}: {error}"), line


def test_good_files_survive_bad_ones_in_one_call(tiny_asr_export, good_files):
    paths, texts, _ = good_files
    check_good_and_bad_files(tiny_asr_export, paths, texts)


# --- broken headers, in this process -------------------------------------------------------


def broken_headers() -> dict[str, bytes]:
    """Files whose headers made `load_audio` raise something else than `AudioError`, or
    made soundfile print an exception, before these were fixed."""
    signal = np.sin(np.arange(4000) / 5.0).astype(np.float32) * 0.3
    wav, aiff = to_wav_bytes(signal), encoded(signal, RATE, format="AIFF", subtype="PCM_16")
    flac, au = encoded(signal, RATE, format="FLAC"), encoded(signal, RATE, format="AU")
    ogg = encoded(signal, RATE, format="OGG", subtype="VORBIS")
    return {
        # Python's wave module: RuntimeError; ZeroDivisionError on 0 channels.
        "fmt-chunk-size.wav": patched(wav, 16, b"\xff"),
        "zero-channels.wav": patched(wav, 22, b"\x00\x00"),
        # STREAMINFO claiming 64 billion samples: MemoryError reading them at once.
        "huge-length.flac": patched(flac, 21, b"\xff"),
        # sunau: MemoryError on 4 billion channels; aifc: OverflowError on the rate.
        "huge-channels.au": patched(au, 20, b"\xff"),
        "huge-rate.aiff": patched(aiff, 28, b"\xff"),
        # The chunk after COMM garbled: libsndfile seeks before the start of the bytes,
        # and soundfile printed the ValueError of its callback.
        "bad-chunk.aiff": patched(aiff, 38, b"\x00"),
        # 8 bytes of Ogg, from bytes: ffmpeg finds no audio stream (0 channels:
        # ZeroDivisionError).
        "cut.ogg": ogg[:8],
    }


@pytest.mark.parametrize("name", list(broken_headers()))
def test_broken_headers_are_audio_errors(name, tmp_path, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    path = tmp_path / name
    path.write_bytes(broken_headers()[name])
    # From a path (what `seq2seq transcribe` does) and from bytes (then audioread's
    # decoders read a temporary file without the name's extension, and fail otherwise).
    for source, label in ((path, str(path)), (path.read_bytes(), name)):
        with pytest.raises(AudioError) as error:
            load_audio(source, name=label)
        assert str(error.value).startswith(f"{label}: ") and "\n" not in str(error.value)
    assert not unraisable, [str(u.exc_value) for u in unraisable]


# --- a 10-minute recording -------------------------------------------------------------------


def check_ten_minutes(
    model: Path, paths: dict[str, Path], texts: list[str], baseline: float
) -> tuple[float, float]:
    """Returns the peak RSS of the call with the recording and its growth over `baseline`."""
    model_dir = max((p for p in model.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    export = json.loads((model_dir / "assets" / "export.json").read_text(encoding="utf-8"))
    audio, reference = speech_like(600, seed=6)
    long = paths["speech.wav"].parent / "ten-minutes.wav"
    long.write_bytes(to_wav_bytes(audio))
    del audio

    start = time.monotonic()
    names = [*good_names(paths), str(long)]
    result, peak = run_measured("transcribe", "--model", str(model), "--json", *names)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(messages(result.stderr)) == 1  # the NaN/Inf warning
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["file"] for record in records] == names
    assert [record["text"] for record in records[:-1]] == texts  # as in the call without it
    record = records[-1]
    assert record["seconds"] == 600.0

    # The pieces `seq2seq transcribe` cuts it into (`Transcriber.pieces`: silence_spans).
    spans = silence_spans(load_audio(long), export["max_piece_seconds"], RATE)
    lengths = [(end - begin) / RATE for begin, end in spans]
    assert max(lengths) <= export["max_piece_seconds"] and len(spans) >= 600 / max(lengths)
    # Transcribed whole, about as well as the tiny model does short audio: no piece lost.
    assert len(record["text"]) > 0.5 * len(reference), (len(record["text"]), len(reference))
    assert jiwer.cer(reference, record["text"]) < 0.6

    growth = peak - baseline
    print(
        f"\ngood files + 10 minutes: peak RSS {peak:.0f} MB ({growth:+.0f} MB), "
        f"{len(spans)} pieces, {time.monotonic() - start:.1f} s wall, rtf {record['rtf']}"
    )
    assert growth < LONG_RSS_MARGIN_MB, (baseline, peak)
    return peak, growth


def test_ten_minute_recording_in_bounded_memory(tiny_asr_export, good_files):
    paths, texts, baseline = good_files
    check_ten_minutes(tiny_asr_export, paths, texts, baseline)
