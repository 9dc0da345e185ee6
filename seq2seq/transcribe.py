"""`seq2seq transcribe`: transcribe audio files with a SavedModel or a TF Serving endpoint.

Each FILE (wav, flac, ogg, mp3, ... at any sample rate and channel count) is loaded as
16 kHz mono (`audio.io.load_audio`), cut at silences when longer than the model's piece
length, and transcribed; files are read and transcribed in blocks, so that pieces of
several files share model calls. Output: one line per FILE, in order (`--json`: one
JSON object per FILE with `file`, `text`, `score`, `seconds` and `rtf`, the wall time
of transcription over the audio's duration, model loading excluded). A FILE that cannot
be read or decoded gets a one-line error on stderr naming it, an empty line (`--json`:
an object with `file` and `error`), and exit status 1; the other files are still
transcribed. The work is in `seq2seq.transcription`.
"""

from __future__ import annotations

import argparse
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
"""Audio seconds read, transcribed and printed at a time (a longer file is a block)."""


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
            "transcripts joined. A bad FILE gets an error on stderr and an empty line; "
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
    for block in read_blocks(args.files, transcriber.sample_rate):
        good = [(name, audio) for name, audio, error in block if error is None]
        start = time.perf_counter()
        try:
            transcripts = transcriber.transcribe([audio for _, audio in good], args.beam_size)
            failure = None
        except ServingClientError as error:  # the server failed this block: report, go on
            transcripts, failure = [], str(error)
        elapsed = time.perf_counter() - start
        seconds = sum(len(audio) for _, audio in good) / transcriber.sample_rate
        rtf = elapsed / seconds if seconds else 0.0
        results = iter(transcripts)
        for name, audio, error in block:
            error = error or failure
            if error is not None:
                message = error if error.startswith(name) else f"{name}: {error}"
                print(f"{PROG}: {message}", file=sys.stderr)
                status = 1
                print(json.dumps({"file": name, "error": error}) if args.json else "")
                continue
            transcript = next(results)
            last = (name, audio, transcript.text)
            if args.json:
                record = {
                    "file": name,
                    "text": transcript.text,
                    "score": round(transcript.score, 4),
                    "seconds": round(len(audio) / transcriber.sample_rate, 3),
                    "rtf": round(rtf, 4),
                }
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(" ".join(transcript.text.splitlines()))
        sys.stdout.flush()
    if args.plot and last is not None:
        try:
            from audio.plot import plot_spectrogram

            plot_spectrogram(last[1], args.plot, title=last[2] or "(no speech)")
        except OSError as error:
            print(f"{PROG}: {args.plot}: cannot write ({error})", file=sys.stderr)
            status = 1
    return status


def read_blocks(files: list[str], sample_rate: int) -> Iterator[list[tuple[str, Any, str | None]]]:
    """Loads files as mono audio at `sample_rate`, in blocks of at most `BLOCK_FILES`
    files and about `BLOCK_SECONDS` of audio.

    Yields:
        Lists of `(name, audio or None, error or None)`, in the order of `files`.
    """
    from audio.io import AudioError, AudioWarning, load_audio

    block: list[tuple[str, Any, str | None]] = []
    seconds = 0.0
    for name in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AudioWarning)
            try:
                audio = load_audio(name, sample_rate)
                block.append((name, audio, None))
                seconds += len(audio) / sample_rate
            except AudioError as error:
                block.append((name, None, str(error)))
        for warning in caught:  # repaired audio: one line each, not a Python warning
            print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
        if len(block) >= BLOCK_FILES or seconds >= BLOCK_SECONDS:
            yield block
            block, seconds = [], 0.0
    if block:
        yield block
