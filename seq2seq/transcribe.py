"""`seq2seq transcribe`: transcribe audio files with a SavedModel or a TF Serving endpoint.

Each FILE (wav, flac, ogg, mp3, ... at any sample rate and channel count) is loaded as
16 kHz mono (`audio.io.load_audio`), cut at silences when longer than the model's piece
length, and transcribed; files are read and transcribed in blocks, so that pieces of
several files share model calls. A file longer than `BLOCK_SECONDS` is decoded,
resampled, cut and transcribed as it is read (`audio.io.stream_audio`), so that
recordings of hours take the memory of minutes. Output: one line per FILE, in order (`--json`: one
JSON object per FILE with `file`, `text`, `score`, `seconds` and `rtf`, the wall time
of transcription over the audio's duration, model loading excluded). A FILE that cannot
be read or decoded gets a one-line error on stderr naming it, an empty line (`--json`:
an object with `file` and `error`), and exit status 1; the other files are still
transcribed. The work is in `seq2seq.transcription`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seq2seq.client import ServingClientError
from seq2seq.export import add_model_arguments, resolve_model_dir

PROG = "seq2seq transcribe"
BLOCK_FILES = 32
"""Files read, transcribed and printed at a time."""
BLOCK_SECONDS = 300.0
"""Audio seconds read, transcribed and printed at a time. A longer file is read and
transcribed in blocks (`audio.io.stream_audio`), so that memory does not grow with it."""


def add_transcribe_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `transcribe` to the `seq2seq` command's subparsers.

    Args:
        subparsers: what `ArgumentParser.add_subparsers` returned.
    """
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files with a SavedModel or a TF Serving endpoint",
        description=(
            "Transcribe each FILE (wav, flac, ogg, mp3, ...; any sample rate) and print "
            "one line per FILE in order. Long audio is split at silences and the pieces' "
            "transcripts joined; a FILE over 5 minutes is read and transcribed block by "
            "block, in bounded memory. A bad FILE gets an error on stderr and an empty line; "
            "the others are still transcribed (exit status 1)."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per FILE: file, text, score, seconds, rtf",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="with one FILE: also draw its spectrogram with the transcript",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio file to transcribe")
    parser.set_defaults(handler=run_transcribe)


def run_transcribe(args: argparse.Namespace) -> int:
    """The `transcribe` handler.

    Args:
        args: the parsed `transcribe` arguments.

    Returns:
        0; 1 when a file was bad or could not be transcribed; 2 when nothing could be
        transcribed (bad model path or options).
    """
    if args.plot and len(args.files) != 1:
        print(f"{PROG}: --plot needs exactly one FILE", file=sys.stderr)
        return 2
    try:
        if args.server:
            from seq2seq.transcription import ServerTranscriber

            transcriber = ServerTranscriber.connect(args.server)
        else:
            model_dir = resolve_model_dir(args.model)  # before the seconds TensorFlow takes
            from seq2seq.transcription import SavedModelTranscriber

            transcriber = SavedModelTranscriber.load(model_dir)
            # Part of loading: `rtf` then measures transcription alone.
            transcriber.warm_up(args.beam_size)
        transcriber.signature_name(args.beam_size)  # fail before reading any input
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    status = 0
    last: tuple[str, Any, str] | None = None  # (file, audio, text) for --plot
    for block in read_blocks(args.files, transcriber.sample_rate, stream=args.plot is None):
        for entry in _transcribe_block(transcriber, block, args.beam_size):
            if entry.error is not None:
                error = entry.error
                message = error if error.startswith(entry.name) else f"{entry.name}: {error}"
                print(f"{PROG}: {message}", file=sys.stderr)
                status = 1
                print(json.dumps({"file": entry.name, "error": error}) if args.json else "")
                continue
            last = (entry.name, entry.audio, entry.transcript.text)
            if args.json:
                record = {
                    "file": entry.name,
                    "text": entry.transcript.text,
                    "score": round(entry.transcript.score, 4),
                    "seconds": round(entry.seconds, 3),
                    "rtf": round(entry.rtf, 4),
                }
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(" ".join(entry.transcript.text.splitlines()))
        sys.stdout.flush()
    if args.plot and last is not None:
        try:
            from audio.plot import plot_spectrogram

            plot_spectrogram(last[1], args.plot, title=last[2] or "(no speech)")
        except OSError as error:
            print(f"{PROG}: {args.plot}: cannot write ({error})", file=sys.stderr)
            status = 1
    return status


@dataclasses.dataclass
class Entry:
    """One FILE on its way through `seq2seq transcribe`.

    Attributes:
        name: the FILE as given.
        audio: its samples when loaded whole; None when streamed or unreadable.
        streamed: whether it is long enough to be read and transcribed block by block.
        error: why it could not be read or transcribed, or None.
        transcript: what it says, once transcribed.
        seconds: its duration, once read.
        rtf: the wall time of its block's transcription (decoding excluded) over the
            block's audio duration.
    """

    name: str
    audio: Any = None
    streamed: bool = False
    error: str | None = None
    transcript: Any = None
    seconds: float = 0.0
    rtf: float = 0.0


def read_blocks(files: list[str], sample_rate: int, stream: bool = True) -> Iterator[list[Entry]]:
    """Loads files as mono audio at `sample_rate`, in blocks of at most `BLOCK_FILES`
    files and about `BLOCK_SECONDS` of audio. With `stream`, a file whose header says it
    is longer than `BLOCK_SECONDS` is not loaded but is a block of its own, `streamed`.

    Yields:
        Lists of `Entry`, in the order of `files`.
    """
    from audio.io import AudioError, audio_duration, load_audio

    block: list[Entry] = []
    seconds = 0.0
    for name in files:
        if stream and (audio_duration(name) or 0.0) > BLOCK_SECONDS:
            if block:
                yield block
                block, seconds = [], 0.0
            yield [Entry(name, streamed=True)]
            continue
        with _audio_warnings_printed():
            try:
                audio = load_audio(name, sample_rate)
                block.append(Entry(name, audio, seconds=len(audio) / sample_rate))
                seconds += len(audio) / sample_rate
            except AudioError as error:
                block.append(Entry(name, error=str(error)))
        if len(block) >= BLOCK_FILES or seconds >= BLOCK_SECONDS:
            yield block
            block, seconds = [], 0.0
    if block:
        yield block


@contextlib.contextmanager
def _audio_warnings_printed() -> Iterator[None]:
    """Prints each `AudioWarning` (repaired audio) raised meanwhile as one line on stderr,
    not as a Python warning."""
    from audio.io import AudioWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioWarning)
        yield
    for warning in caught:
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr)


def _transcribe_block(transcriber: Any, block: list[Entry], beam_size: int | None) -> list[Entry]:
    """Transcribes a block of `read_blocks` (the files loaded whole in shared model calls,
    a streamed one as it is read), filling in each entry's transcript or error."""
    if len(block) == 1 and block[0].streamed:
        _transcribe_streamed(transcriber, block[0], beam_size)
        return block
    good = [entry for entry in block if entry.error is None]
    start = time.perf_counter()
    try:
        transcripts = transcriber.transcribe([entry.audio for entry in good], beam_size)
    except ServingClientError as error:  # the server failed this block: report, go on
        for entry in good:
            entry.error = str(error)
        return block
    elapsed = time.perf_counter() - start
    seconds = sum(entry.seconds for entry in good)
    for entry, transcript in zip(good, transcripts, strict=True):
        entry.transcript = transcript
        entry.rtf = elapsed / seconds if seconds else 0.0
    return block


def _transcribe_streamed(transcriber: Any, entry: Entry, beam_size: int | None) -> None:
    """Transcribes a long file block by block (`audio.io.stream_audio`)."""
    from audio.io import AudioError, stream_audio

    decoding = 0.0  # seconds spent reading and decoding, left out of the RTF

    def blocks() -> Iterator[Any]:
        nonlocal decoding
        stream = stream_audio(entry.name, transcriber.sample_rate)
        while True:
            start = time.perf_counter()
            block = next(stream, None)
            decoding += time.perf_counter() - start
            if block is None:
                return
            entry.seconds += len(block) / transcriber.sample_rate
            yield block

    start = time.perf_counter()
    with _audio_warnings_printed():
        try:
            entry.transcript = transcriber.transcribe_stream(blocks(), beam_size)
        except (AudioError, ServingClientError) as error:
            entry.error = str(error)
            return
    elapsed = time.perf_counter() - start - decoding
    entry.rtf = elapsed / entry.seconds if entry.seconds else 0.0
