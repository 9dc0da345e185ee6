"""`seq2seq evaluate` for speech recognizers: jiwer WER and CER in percent on the test
splits of a prepared speech corpus (`test-synthetic`: held-out voices, `test-real`:
Asterisk recordings), greedy and beam, with the real-time factor, and per engine and
per voice where a split has several (the TSV's voice column, `engine:voice`, without its
`@speed x pitch` variant).

Transcripts are compared as training's dev WER compares them
(`seq2seq.data.characters.error_rates`: both sides normalized). The real-time factor is
the seconds `SavedModelTranscriber.transcribe` takes over the seconds of audio it
transcribes; loading the model and one warm-up call per search are excluded (reported as
loading). An audio file that cannot be read gets a one-line warning and is skipped. The
command, the table and the JSON report are `seq2seq.evaluation`'s.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from seq2seq.evaluation import (
    PROG,
    Column,
    Table,
    decode_in_blocks,
    searches,
    split_files,
    warm_up,
    write_outputs,
)

SPEECH_TEST_SPLITS = ("test-synthetic.tsv", "test-real.tsv")
SPEECH_COLUMNS: tuple[Column, ...] = (
    ("split", "split", "<14"),
    ("search", "search", "<8"),
    ("n", "utterances", ">5"),
    ("WER %", "wer", ">6.2f"),
    ("CER %", "cer", ">6.2f"),
    ("audio s", "audio_seconds", ">8.1f"),
    ("RTF", "rtf", ">6.3f"),
)
# The groups of utterances scored apart: each group's name from an utterance's voice
# (`engine:voice`), and the width of its column.
GROUPS: dict[str, tuple[Callable[[str], str], int]] = {
    "engine": (lambda voice: voice.partition(":")[0], 10),
    "voice": (lambda voice: voice, 28),
}
# Their tables, by report key: the grouping column, then n, WER and CER.
GROUP_COLUMNS: dict[str, tuple[Column, ...]] = {
    f"by_{group}": (*SPEECH_COLUMNS[:2], (group, group, f"<{width}"), *SPEECH_COLUMNS[2:5])
    for group, (_, width) in GROUPS.items()
}


class Split(NamedTuple):
    """The scorable utterances of a test split, in its order."""

    signals: list
    references: list[str]  # normalized
    files: list[str]  # the audio files, as the TSV names them
    voices: list[str]  # the voice of each (engine:voice), "" where the TSV does not say
    skipped: int  # unreadable files (not utterances whose transcript normalizes to nothing)


def load_split(path: Path, sample_rate: int, limit: int | None) -> Split:
    """The audio and normalized transcripts of a speech TSV's first `limit` utterances
    (`seq2seq.data.speech_pipeline.load_utterances`), with a one-line warning on stderr
    for each file that cannot be read (skipped) or was repaired."""
    import warnings

    from seq2seq.data.characters import normalize_transcript
    from seq2seq.data.speech_pipeline import load_utterances, read_speech_tsv

    utterances = read_speech_tsv(path)[:limit]
    signals, references, files, voices = [], [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        for utterance in utterances:  # one at a time, to know which were kept
            signal, reference = load_utterances([utterance], sample_rate)
            signals += signal
            references += reference
            files += [str(utterance.path)] * len(signal)
            voices += [utterance.voice.partition("@")[0]] * len(signal)
    for warning in caught:
        if issubclass(warning.category, UserWarning):  # ours: one line each
            print(f"{PROG}: warning: {path.name}: {warning.message}", file=sys.stderr)
        else:  # a library's: as Python shows it
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    scorable = sum(1 for utterance in utterances if normalize_transcript(utterance.transcript))
    return Split(signals, references, files, voices, scorable - len(signals))


def transcription_results(
    transcriber: Any,
    data_dir: Path,
    search_sizes: list[tuple[str, int | None]],
    limit: int | None,
    outputs: Path | None = None,
    splits: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], int]:
    """Results per split (`splits`, by default the test splits) and search, the same per
    group of `GROUPS` (engine, voice) of the splits with several (`group_results`, by
    the keys of `GROUP_COLUMNS`), and how many files were skipped; each search's
    transcripts written to `outputs` (`write_outputs`) when given."""
    from seq2seq.data.characters import error_rates
    from seq2seq.transcription import MAX_BATCH_ROWS

    results, skipped_files = [], 0
    by_group: dict[str, list[dict[str, Any]]] = {key: [] for key in GROUP_COLUMNS}
    for path in split_files(data_dir, splits, SPEECH_TEST_SPLITS):
        signals, references, files, voices, skipped = load_split(
            path, transcriber.sample_rate, limit
        )
        skipped_files += skipped
        name = path.name.removesuffix(".tsv")
        if not signals:
            print(f"{PROG}: warning: {path}: no utterance to score", file=sys.stderr)
            continue
        group_names = {group: list(map(name_of, voices)) for group, (name_of, _) in GROUPS.items()}
        audio_seconds = sum(len(signal) for signal in signals) / transcriber.sample_rate
        for search, size in search_sizes:
            start = time.perf_counter()
            hypotheses = decode_in_blocks(
                functools.partial(_transcribe_texts, transcriber, beam_size=size),
                signals,
                [len(signal) for signal in signals],
                4 * MAX_BATCH_ROWS,
                f"{name} {search}",
                " utt",
            )
            seconds = time.perf_counter() - start
            wer, cer = error_rates(references, hypotheses)
            if outputs:
                rows = [
                    (file, f"{error_rates([reference], [output])[0]:.1f}", reference, output)
                    for file, reference, output in zip(files, references, hypotheses, strict=True)
                ]
                header = ("audio", "wer", "reference", "output")
                write_outputs(outputs, name, search, header, rows)
            results.append(
                {
                    "split": name,
                    "search": search,
                    "utterances": len(signals),
                    "skipped": skipped,
                    "wer": round(wer, 2),
                    "cer": round(cer, 2),
                    "audio_seconds": round(audio_seconds, 1),
                    "seconds": round(seconds, 3),
                    "rtf": round(seconds / audio_seconds, 4),
                    "example": {"reference": references[0], "output": hypotheses[0]},
                }
            )
            labels = {"split": name, "search": search}
            for group, names in group_names.items():
                by_group[f"by_{group}"] += group_results(
                    group, names, references, hypotheses, labels
                )
    return results, by_group, skipped_files


def group_results(
    column: str,
    groups: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    labels: dict[str, Any],
) -> list[dict[str, Any]]:
    """WER and CER per group of utterances (rows of `labels`, `column`: the group's
    name, `utterances`, `wer`, `cer`, by name), or none when the utterances do not come
    from several named groups.

    >>> rows = group_results("voice", ["a", "b", "a"], ["x y", "z", "x"], ["x y", "w", "y"], {})
    >>> [(row["voice"], row["utterances"], row["wer"]) for row in rows]
    [('a', 2, 33.33), ('b', 1, 100.0)]
    """
    from seq2seq.data.characters import error_rates

    members: dict[str, list[int]] = {}
    for index, name in enumerate(groups):  # one pass: the utterances of each group
        members.setdefault(name, []).append(index)
    if len(members) < 2 or "" in members:
        return []
    rows = []
    for name, indices in sorted(members.items()):
        wer, cer = error_rates([references[i] for i in indices], [hypotheses[i] for i in indices])
        scores = {"utterances": len(indices), "wer": round(wer, 2), "cer": round(cer, 2)}
        rows.append({**labels, column: name, **scores})
    return rows


def _transcribe_texts(transcriber: Any, signals: list, beam_size: int | None) -> list[str]:
    return [transcript.text for transcript in transcriber.transcribe(signals, beam_size)]


def evaluate_speech(
    model_dir: Path, data_dir: Path, args: argparse.Namespace
) -> tuple[str, dict[str, Any], Sequence[Table], int]:
    """Loads and scores a speech recognizer: `(name for the title, report, tables,
    status)`."""
    from seq2seq.transcription import SavedModelTranscriber

    search_sizes = searches(model_dir, args.beam_size)
    start = time.perf_counter()
    transcriber = SavedModelTranscriber.load(model_dir)
    warm_up(transcriber, search_sizes)
    load_seconds = time.perf_counter() - start
    results, by_group, skipped = transcription_results(
        transcriber, data_dir, search_sizes, args.limit, args.outputs, args.splits
    )
    report = {
        "sample_rate": transcriber.sample_rate,
        "load_seconds": round(load_seconds, 1),
        "skipped_files": skipped,
        "results": results,
        **by_group,
    }
    tables = [("results", SPEECH_COLUMNS), *GROUP_COLUMNS.items()]
    return "speech", report, tables, 1 if skipped else 0
