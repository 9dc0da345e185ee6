"""`seq2seq translate`: translate text with a SavedModel, one output line per input line.

Inputs are the TEXT arguments, or else the lines of stdin. Stdin is read as bytes and
decoded as UTF-8 with undecodable bytes replaced, and translated block by block, so that
a long file streams. `--n-best N` prints, still one line per input, a JSON object with
the source and its N best translations and their scores. The work is in
`seq2seq.inference`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from seq2seq.client import ServingClientError
from seq2seq.export import add_model_arguments, resolve_model_dir

if TYPE_CHECKING:
    import numpy as np

PROG = "seq2seq translate"
BLOCK_LINES = 256
"""Stdin lines read, translated and printed at a time (sorted by length within a block)."""


def add_translate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `translate` to the `seq2seq` command's subparsers.

    Args:
        subparsers: what `ArgumentParser.add_subparsers` returned.
    """
    parser = subparsers.add_parser(
        "translate",
        help="translate text with a SavedModel or a TF Serving endpoint",
        description=(
            "Translate each TEXT, or else each line of stdin, and print one line per input "
            "in order (an empty line for a blank one). Long lines are split into sentences."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--plot-attention",
        type=Path,
        metavar="FILE.png",
        help="with one TEXT: also draw its attention (greedy search) as a heat map",
    )
    parser.add_argument(
        "--n-best",
        type=int,
        metavar="N",
        help="print each input's N best translations by the model's default beam search, "
        'as one JSON line: {"source": ..., "translations": [{"text": ..., "score": ...}, '
        "...]}, best first (at most the beam size)",
    )
    parser.add_argument("text", nargs="*", metavar="TEXT", help="text to translate")
    parser.set_defaults(handler=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    """The `translate` handler.

    Args:
        args: the parsed `translate` arguments.

    Returns:
        0; 1 when an input was bad (an empty TEXT); 2 when nothing could be translated
        (bad model path or options).
    """
    if args.plot_attention and args.server:
        print(f"{PROG}: --plot-attention needs --model (a local SavedModel)", file=sys.stderr)
        return 2
    if args.plot_attention and (len(args.text) != 1 or not args.text[0].strip()):
        print(f"{PROG}: --plot-attention needs exactly one non-empty TEXT", file=sys.stderr)
        return 2
    if args.n_best is not None and (args.n_best < 1 or args.beam_size is not None):
        print(
            f"{PROG}: --n-best needs N >= 1, and no --beam-size: it lists the hypotheses of "
            "the model's default beam search",
            file=sys.stderr,
        )
        return 2
    try:
        if args.server:
            from seq2seq.inference import ServerTranslator

            translator = ServerTranslator.connect(args.server)
        else:
            model_dir = resolve_model_dir(args.model)  # before the seconds TensorFlow takes
            from seq2seq.inference import SavedModelTranslator

            translator = SavedModelTranslator.load(model_dir)
        # Fail before reading any input.
        if args.n_best is not None:
            translator.n_best_signature_name()
        else:
            translator.signature_name(args.beam_size)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    status = 0
    if args.text:
        for number, text in enumerate(args.text, 1):
            if not text.strip():
                print(f"{PROG}: TEXT {number} is empty", file=sys.stderr)
                status = 1
        blocks: Iterable[list[str]] = [args.text]
    else:
        # One line at a time when a person types, so that each answer comes at once.
        blocks = read_blocks(sys.stdin.buffer, 1 if sys.stdin.isatty() else BLOCK_LINES)
    number, label = 0, "TEXT" if args.text else "line"
    for lines in blocks:
        for offset, line in enumerate(lines, number + 1):
            if translator.is_truncated(line):
                print(
                    f"{PROG}: {label} {offset}: a sentence is longer than the model's "
                    f"{translator.max_source_tokens} tokens; its end is not translated",
                    file=sys.stderr,
                )
        try:
            if args.n_best is not None:
                translations = [
                    n_best_line(line, hypotheses)
                    for line, hypotheses in zip(
                        lines, translator.n_best(lines, args.n_best), strict=True
                    )
                ]
            else:
                translations = translator.translate(lines, args.beam_size)
        except ServingClientError as error:
            # The server failed these lines; they get empty lines, and the next block
            # is tried, so the output stays one line per input.
            print(f"{PROG}: {label}s {number + 1}-{number + len(lines)}: {error}", file=sys.stderr)
            translations, status = [""] * len(lines), 1
        number += len(lines)
        for translation in translations:
            sys.stdout.write(translation + "\n")
        sys.stdout.flush()
    if args.plot_attention:
        try:
            plot_attention(*translator.align(args.text[0]), args.plot_attention)
        except OSError as error:
            print(f"{PROG}: {args.plot_attention}: cannot write ({error})", file=sys.stderr)
            status = 1
    return status


def n_best_line(source: str, hypotheses: list[tuple[str, float]]) -> str:
    """The `--n-best` output line of one input.

    >>> n_best_line("Hi.", [("Salut.", -0.5)])
    '{"source": "Hi.", "translations": [{"text": "Salut.", "score": -0.5}]}'
    """
    translations = [{"text": text, "score": round(score, 4)} for text, score in hypotheses]
    return json.dumps({"source": source, "translations": translations}, ensure_ascii=False)


def read_blocks(stream: BinaryIO, size: int) -> Iterator[list[str]]:
    """Lines of a byte stream, decoded as UTF-8 (bad bytes replaced), `size` at a time.

    Args:
        stream: the byte stream, e.g. `sys.stdin.buffer`.
        size: lines per block.

    Yields:
        Lists of at most `size` lines, without their line endings.
    """
    block = []
    for raw in stream:
        block.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def plot_attention(source: list[str], target: list[str], attention: np.ndarray, path: Path) -> None:
    """Draws attention weights as a heat map: source tokens across, target tokens down.

    Args:
        source: source subword pieces (columns).
        target: target subword pieces (rows).
        attention: `[len(target), len(source)]` weights.
        path: the PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        figsize=(max(4.0, 0.4 * len(source) + 2), max(3.0, 0.35 * len(target) + 1.5))
    )
    axes.imshow(attention, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(source)), source, rotation=90)
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
