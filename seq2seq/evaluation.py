"""`seq2seq evaluate`: scores of an exported model on the test splits of a prepared
corpus, greedy and beam, with decoding speed. The model's kind is read from its
`serving_default` signature:

- a translator (`text` in): sacrebleu BLEU and chrF on detokenized text against one
  reference, and sentences per second of `SavedModelTranslator.translate`
  (tokenization, search and detokenization in the graph);
- a speech recognizer (`audio`, `audio_length` in): jiwer WER and CER in percent on
  normalized transcripts (`seq2seq.data.characters.error_rates`, as dev WER in
  training), the split's audio seconds, and the real-time factor: seconds of
  `SavedModelTranscriber.transcribe` over seconds of audio.

Model loading (with one warm-up call per search) is excluded from the
speed and reported separately. Both kinds print the same kind of table and write the
same kind of JSON report (`print_table`, `write_report`), and with `--outputs DIR` what
the model wrote for every sentence or utterance, one TSV per split and search
(`write_outputs`), for a look at the errors.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from seq2seq.export import export_info, resolve_model_dir

PROG = "seq2seq evaluate"
TEST_SPLITS = ("test-bible.tsv", "test-wesnoth.tsv", "test.tsv")
DEFAULT_DATA = {"translator": "data/translate-en-fr", "speech": "data/asr-en"}
PROGRESS_AFTER_SECONDS = 2.0
"""Decoding that takes longer than this shows a progress bar on stderr."""

Column = tuple[str, str, str]
"""A table column: header, result key, format spec (alignment and width first)."""
Table = tuple[str, Sequence[Column]]
"""A table of the printed report: the report's key of its rows, and its columns."""
TRANSLATION_COLUMNS: tuple[Column, ...] = (
    ("split", "split", "<14"),
    ("search", "search", "<8"),
    ("n", "sentences", ">5"),
    ("BLEU", "bleu", ">6.2f"),
    ("chrF", "chrf", ">6.2f"),
    ("sent/s", "sentences_per_second", ">7.1f"),
)

T = TypeVar("T")
R = TypeVar("R")


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `evaluate` to the `seq2seq` command's subparsers.

    Args:
        subparsers: what `ArgumentParser.add_subparsers` returned.
    """
    sub = subparsers.add_parser(
        "evaluate",
        help="score a translator (BLEU/chrF) or a speech recognizer (WER/CER, RTF), "
        "greedy and beam",
        description=(
            "Decode the test splits of a prepared corpus with an exported model, greedy "
            "and beam, and print one row per split and search; the model's kind is read "
            "from its serving_default signature. A translator (text in): test-bible, "
            "test-wesnoth (or test) of a translation corpus, sacrebleu BLEU and chrF, and "
            "sentences per second. A speech recognizer (audio and audio_length in): "
            "test-synthetic (held-out voices) and test-real (Asterisk recordings) of a "
            "speech corpus, jiwer WER and CER in percent on normalized transcripts, the "
            "split's audio seconds, and the real-time factor RTF (decoding seconds over "
            "audio seconds). --splits scores other splits (dev). Model loading is timed "
            "apart from decoding. An audio file "
            "that cannot be read gets a warning naming it and is skipped; the rest is "
            "scored (exit status 1)."
        ),
    )
    sub.add_argument(
        "--model", required=True, metavar="PATH", help="SavedModel directory or model base dir"
    )
    sub.add_argument(
        "--data",
        metavar="DIR",
        help=f"prepared corpus (default: {DEFAULT_DATA['translator']} for a translator, "
        f"{DEFAULT_DATA['speech']} for a speech recognizer)",
    )
    sub.add_argument(
        "--direction",
        help="translators only: e.g. en-fr (default: the direction the model was exported for)",
    )
    sub.add_argument(
        "--beam-size",
        type=int,
        metavar="N",
        help="beam size of the beam rows (default: the model's serving_default search)",
    )
    sub.add_argument(
        "--limit", type=int, metavar="N", help="only the first N sentences/utterances of a split"
    )
    sub.add_argument(
        "--splits",
        type=lambda text: [name for name in text.split(",") if name],
        metavar="LIST",
        help="comma-separated splits of the corpus to score instead of its test splits, "
        "each a NAME.tsv there: e.g. dev",
    )
    sub.add_argument("--json", type=Path, help="also write the results to this JSON file")
    sub.add_argument(
        "--outputs",
        type=Path,
        metavar="DIR",
        help="also write each split's and search's outputs to DIR/SPLIT.SEARCH.tsv, a line "
        "per input in the split's order: source, reference, output (translators); audio "
        "file, WER %%, reference, output (speech)",
    )
    sub.set_defaults(handler=run_evaluate)


# -- what both kinds share ----------------------------------------------------------------


def searches(model_dir: Path, beam_size: int | None) -> list[tuple[str, int | None]]:
    """The searches to score, `(label, beam size)`: CTC greedy when the export has it
    (speech), greedy, then beam `beam_size`, or the export's `serving_default` (beam size
    None, labelled with the size its `export.json` gives) when `beam_size` is None. A
    beam of 1 is greedy and one of 0 CTC greedy, each scored once."""
    info = export_info(model_dir)
    rows: list[tuple[str, int | None]] = [("greedy", 1)]
    if 0 in info.get("beam_sizes", []):
        rows.insert(0, ("ctc greedy", 0))
    if beam_size is None:
        default = info.get("beam_size")
        if default not in (0, 1):
            rows.append((f"beam {default}" if default else "default", None))
    elif beam_size not in (0, 1):
        rows.append((f"beam {beam_size}", beam_size))
    return rows


def warm_up(model: Any, search_sizes: list[tuple[str, int | None]]) -> None:
    """Checks that `model` (a `Translator` or `Transcriber`) has every search's signature
    before any work, then runs each once: part of loading, since a signature's first call
    optimizes its graph."""
    for _, size in search_sizes:
        model.signature_name(size)
    for _, size in search_sizes:
        model.warm_up(size)


def decode_in_blocks(
    decode: Callable[[list[T]], list[R]],
    inputs: Sequence[T],
    sizes: Sequence[int],
    block: int,
    description: str,
    unit: str,
) -> list[R]:
    """`decode(inputs)` in blocks of `block` inputs of similar size (so that batching
    inside `decode` wastes as little as on the whole list), with a progress bar on stderr
    when it takes long.

    >>> decode_in_blocks(lambda xs: [x * 2 for x in xs], [3, 1, 2], [3, 1, 2], 2, "x", "n")
    [6, 2, 4]
    """
    from tqdm import tqdm

    order = sorted(range(len(inputs)), key=lambda index: sizes[index])
    outputs: list[Any] = [None] * len(inputs)
    progress = tqdm(
        total=len(inputs),
        desc=description,
        unit=unit,
        file=sys.stderr,
        delay=PROGRESS_AFTER_SECONDS,
        leave=False,
    )
    with progress:
        for start in range(0, len(order), block):
            rows = order[start : start + block]
            for row, output in zip(rows, decode([inputs[row] for row in rows]), strict=True):
                outputs[row] = output
            progress.update(len(rows))
    return outputs


def print_table(rows: list[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Prints a header line and one line per result row, columns separated by a space."""
    print(" ".join(f"{header:{spec.split('.')[0].rstrip('fd')}}" for header, _, spec in columns))
    for row in rows:
        print(" ".join(f"{row[key]:{spec}}" for _, key, spec in columns))


def split_files(data_dir: Path, names: Sequence[str] | None, tests: Sequence[str]) -> list[Path]:
    """The TSV files to score: `data_dir/NAME.tsv` for each of `names`, or the test
    splits `tests` (file names) that `data_dir` holds.

    Raises:
        ValueError: naming a split of `names` that `data_dir` lacks.
    """
    if not names:
        return [data_dir / name for name in tests if (data_dir / name).is_file()]
    files = [data_dir / f"{name.removesuffix('.tsv')}.tsv" for name in names]
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: no such split (--splits)")
    return files


def write_outputs(
    directory: Path, split: str, search: str, header: Sequence[str], rows: Sequence
) -> None:
    """Writes `directory/SPLIT.SEARCH.tsv` (`test-real.beam-32.tsv`): `header`, then a
    line per row, tabs and line breaks inside a field made spaces."""
    directory.mkdir(parents=True, exist_ok=True)
    blank = str.maketrans("\t\r\n", "   ")
    lines = ["\t".join(str(field).translate(blank) for field in row) for row in [header, *rows]]
    text = "".join(line + "\n" for line in lines)
    (directory / f"{split}.{search.replace(' ', '-')}.tsv").write_text(text, encoding="utf-8")


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Writes a JSON report (UTF-8, indented)."""
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


def run_evaluate(args: argparse.Namespace) -> int:
    """The `evaluate` handler: loads the model, scores it by its kind, prints the table.

    Returns:
        0; 1 when some audio file was skipped; 2 with a one-line error when nothing could
        be scored (bad model, corpus or options).
    """
    if args.data is not None and not Path(args.data).is_dir():
        print(f"{PROG}: {args.data}: no such corpus directory", file=sys.stderr)
        return 2
    try:
        model_dir = resolve_model_dir(args.model)
        from seq2seq.transcription import is_speech_model  # imports TensorFlow

        kind = "speech" if is_speech_model(model_dir) else "translator"
        data_dir = Path(args.data or DEFAULT_DATA[kind])
        if not data_dir.is_dir():
            raise ValueError(f"{data_dir}: no such corpus directory")
        if kind == "speech" and args.direction:
            raise ValueError(f"{model_dir}: --direction is for translators, not speech models")
        split_files(data_dir, args.splits, ())  # a missing one named before the model loads
        if kind == "speech":
            from seq2seq.speech_evaluation import evaluate_speech as evaluate
        else:
            evaluate = evaluate_translator
        name, report, tables, status = evaluate(model_dir, data_dir, args)
        if not report["results"]:
            raise ValueError(f"{data_dir}: nothing to score (no test split, or none readable)")
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # --outputs
        print(f"{PROG}: {error.filename}: cannot write ({error.strerror})", file=sys.stderr)
        return 2
    print(f"{model_dir} ({name}), loaded in {report['load_seconds']:.1f}s")
    shown = [(report[key], columns) for key, columns in tables if report.get(key)]
    for number, (rows, columns) in enumerate(shown):
        if number:
            print()  # a blank line between tables
        print_table(rows, columns)
    if args.json:
        try:
            write_report(args.json, {"model": str(model_dir), "kind": kind, **report})
        except OSError as error:
            print(f"{PROG}: {args.json}: cannot write ({error.strerror})", file=sys.stderr)
            return 2
    return status


# -- translators ---------------------------------------------------------------------------


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """sacrebleu's corpus BLEU and chrF, rounded to 2 decimals."""
    import sacrebleu

    return {
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
    }


def translation_results(
    translator: Any,
    data_dir: Path,
    direction: str,
    search_sizes: list[tuple[str, int | None]],
    limit: int | None,
    outputs: Path | None = None,
    splits: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Results per split (`splits`, by default the test splits) and search: scores,
    sentence count, speed; each search's translations written to `outputs`
    (`write_outputs`) when given."""
    from seq2seq.data.pipeline import Direction, corpus_pair, read_tsv

    parsed = Direction.parse(direction, corpus_pair(data_dir))
    results = []
    for path in split_files(data_dir, splits, TEST_SPLITS):
        split = path.name.removesuffix(".tsv")
        pairs = read_tsv(path)[:limit]
        sources = [p[parsed.source_column] for p in pairs]
        references = [p[parsed.target_column] for p in pairs]
        for search, size in search_sizes:
            start = time.perf_counter()
            hypotheses = decode_in_blocks(
                functools.partial(translator.translate, beam_size=size),
                sources,
                [len(source) for source in sources],
                8 * translator.batch_size,
                f"{split} {search}",
                " sent",
            )
            seconds = time.perf_counter() - start
            if outputs:
                rows = list(zip(sources, references, hypotheses, strict=True))
                header = ("source", "reference", "output")
                write_outputs(outputs, split, search, header, rows)
            results.append(
                {
                    "split": split,
                    "search": search,
                    "sentences": len(sources),
                    **score(hypotheses, references),
                    "seconds": round(seconds, 1),
                    "sentences_per_second": round(len(sources) / seconds, 1),
                    "example": {"source": sources[0], "output": hypotheses[0]},
                }
            )
    return results


def evaluate_translator(
    model_dir: Path, data_dir: Path, args: argparse.Namespace
) -> tuple[str, dict[str, Any], Sequence[Table], int]:
    """Loads and scores a translator: `(name for the title, report, tables, status)`."""
    from seq2seq.inference import SavedModelTranslator

    start = time.perf_counter()
    translator = SavedModelTranslator.load(model_dir)
    direction = args.direction or translator.direction
    if direction is None:
        raise ValueError(f"{model_dir}: unknown direction; pass --direction")
    search_sizes = searches(model_dir, args.beam_size)
    warm_up(translator, search_sizes)
    load_seconds = time.perf_counter() - start
    results = translation_results(
        translator, data_dir, direction, search_sizes, args.limit, args.outputs, args.splits
    )
    report = {"direction": direction, "load_seconds": round(load_seconds, 1), "results": results}
    return direction, report, [("results", TRANSLATION_COLUMNS)], 0
