"""SavedModels for TensorFlow Serving: `seq2seq export`.

The work is in `seq2seq.export.saved_model`. This module holds what needs no TensorFlow,
so that `seq2seq --help` and path errors do not wait for it: the command's parser and
the TF Serving model layout, `BASE/<numeric version>/` (`next_version`,
`resolve_model_dir`), and an export's `export_info`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from seq2seq.config import EXPORT_DTYPE_POLICIES

EXPORT_INFO = "export.json"
"""The asset that tells clients (`seq2seq translate`) about an export: its direction,
source token limit and beam sizes."""


def export_info(model_dir: str | Path) -> dict[str, Any]:
    """The `EXPORT_INFO` of a SavedModel directory, or `{}` for a SavedModel without one
    (not written by `seq2seq export`)."""
    path = Path(model_dir) / "assets" / EXPORT_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def next_version(base_path: str | Path) -> int:
    """One more than the highest numeric version directory in `base_path` (1 if none).

    Args:
        base_path: an existing TF Serving model base directory.
    """
    base_path = Path(base_path)
    versions = [int(p.name) for p in base_path.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def resolve_model_dir(path: str | Path) -> Path:
    """The SavedModel directory that `path` names.

    Args:
        path: a SavedModel directory, or a model base directory whose numeric
            subdirectories are versions (the highest one with a SavedModel wins).

    Raises:
        ValueError: naming `path` when it is neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such model directory")
    if (path / "saved_model.pb").is_file():
        return path
    versions = [
        child
        for child in path.iterdir()
        if child.name.isdigit() and (child / "saved_model.pb").is_file()
    ]
    if not versions:
        raise ValueError(f"{path}: neither a SavedModel nor a model base directory with versions")
    return max(versions, key=lambda child: int(child.name))


_SEARCHES = {0: "ctc_greedy", 1: "greedy"}
"""Signature names of the searches that are not `beam_N`, by beam size."""


class SearchSignatures:
    """The search signatures of an export, by beam size: `serving_default` (the export's
    default search), `greedy` (beam 1), `beam_N` and, for speech, `ctc_greedy` (0). The
    base of the translator and transcriber front ends, local or behind a server.

    Args:
        source: what the model is, for messages (a directory or a URL).
        signature_names: the model's signatures.

    Raises:
        ValueError: naming `source` when there is no `serving_default` signature.

    >>> SearchSignatures("m", ["serving_default", "greedy", "beam_4", "ctc_greedy"]).beam_sizes
    [0, 1, 4]
    """

    def __init__(self, source: str | Path, signature_names: list[str]):
        self.source = source
        self.signature_names = list(signature_names)
        if "serving_default" not in self.signature_names:
            raise ValueError(f"{source}: the model has no serving_default signature")

    @property
    def beam_sizes(self) -> list[int]:
        """The beam sizes that have a signature (`ctc_greedy` is 0, `greedy` 1, `beam_N` N)."""
        sizes = [size for size, name in _SEARCHES.items() if name in self.signature_names]
        sizes += [
            int(name.removeprefix("beam_"))
            for name in self.signature_names
            if re.fullmatch(r"beam_\d+", name)
        ]
        return sorted(sizes)

    def signature_name(self, beam_size: int | None) -> str:
        """The signature that searches with `beam_size`.

        Args:
            beam_size: 1 for greedy search, N for beam search, 0 for CTC greedy search
                (speech), None for the export's default (`serving_default`).

        Raises:
            ValueError: listing the available beam sizes when none has `beam_size`.
        """
        if beam_size is None:
            return "serving_default"
        name = _SEARCHES.get(beam_size, f"beam_{beam_size}")
        if name not in self.signature_names:
            available = ", ".join(map(str, self.beam_sizes)) or "none"
            raise ValueError(
                f"{self.source}: no signature for beam size {beam_size} (available: {available})"
            )
        return name


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds what `translate` and `transcribe` share: `--model PATH` or `--server URL`
    (one of them, required), and `--beam-size N`.

    Args:
        parser: the subcommand's parser.
    """
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="SavedModel directory, or model base directory (highest version wins)",
    )
    where.add_argument(
        "--server",
        metavar="URL",
        help="TF Serving endpoint: http://HOST:8501/v1/models/NAME or grpc://HOST:8500/NAME",
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        metavar="N",
        help=(
            "1 for greedy search, N for beam search, 0 for CTC greedy search (speech "
            "models: the CTC head alone, fastest) (default: the model's)"
        ),
    )


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds `export` to the `seq2seq` command's subparsers.

    Args:
        subparsers: what `ArgumentParser.add_subparsers` returned.
    """
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint as the next SavedModel version for TF Serving",
        description=(
            "Export a trained model as BASE/<next version>/, a SavedModel that stock "
            "TensorFlow Serving runs. A translator (task translate): text in, text out, "
            "tokenization and search in the graph; signatures serving_default (beam "
            "search), greedy, beam_2, beam_3, beam_4, beam_5, beam_8, n_best (every "
            "hypothesis of serving_default's beam) and align (attention). "
            "A speech recognizer (task asr): 16 kHz audio and lengths in, text out, log-mel "
            "front-end and search in the graph; signatures serving_default (audio, "
            "audio_length), transcribe_wav (wav_bytes), ctc_greedy, greedy, beam_4, beam_8, "
            "beam_16 and beam_32 (and beam_N for a default beam size N); beam search is "
            "joint with the CTC head (--ctc-weight) and a character n-gram language model "
            "of the corpus' lm.txt (--lm-weight). The version appears only once it is "
            "complete and checked."
        ),
    )
    parser.add_argument(
        "--run",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help=(
            "training run directory, or an exported model (version or base directory) "
            "to export again with this version's code and the settings given here"
        ),
    )
    parser.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        metavar="FILE",
        help=(
            "weights (default: RUN_DIR/best.weights.h5, or the export RUN_DIR is); "
            "several files are averaged, e.g. RUN_DIR/checkpoints/epoch-*.weights.h5 "
            "(checkpoint averaging; a run keeps its last epochs there with "
            "training.keep_checkpoints)"
        ),
    )
    parser.add_argument(
        "--model-base-path",
        type=Path,
        required=True,
        metavar="BASE",
        help="TF Serving model base directory; its name is the model name",
    )
    parser.add_argument(
        "--direction",
        metavar="SRC-TGT",
        help="translation direction to serve (default: that of the export RUN_DIR is, "
        "else the run's first direction; translators only)",
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        metavar="N",
        help=(
            "beam size of serving_default; 0: CTC greedy (speech) (default: the run's "
            "decoding.beam_size)"
        ),
    )
    parser.add_argument(
        "--ctc-weight",
        type=float,
        metavar="W",
        help=(
            "speech: weight in [0, 1] of the CTC prefix score in greedy and beam "
            "search, against 1 - W for the decoder's (default: the run's "
            "decoding.ctc_weight)"
        ),
    )
    parser.add_argument(
        "--lm-weight",
        type=float,
        metavar="W",
        help=(
            "speech: weight of the character language model's log-prob in greedy and "
            "beam search; 0: none (default: the run's decoding.lm_weight)"
        ),
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        metavar="ALPHA",
        help=(
            "the GNMT length penalty of beam search's ranking, 0 or more "
            "(default: the run's decoding.length_penalty)"
        ),
    )
    parser.add_argument(
        "--no-repeat-ngram",
        type=int,
        metavar="N",
        help=(
            "translators: no output holds an n-gram of N subwords twice, which stops "
            "repetition loops; 0: off (default: the run's decoding.no_repeat_ngram_size)"
        ),
    )
    parser.add_argument(
        "--dtype-policy",
        choices=EXPORT_DTYPE_POLICIES,
        help=(
            "what the export stores and computes in: bfloat16 halves the variables and "
            "speeds up batched search on CPUs with AMX, but is emulated (slower) on CPUs "
            "without bfloat16 units; the speech front-end and search scores stay float32 "
            "(default: the run's decoding.dtype_policy, float32 unless set)"
        ),
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """The `export` handler: 0 on success, 2 with a one-line error otherwise.

    Args:
        args: the parsed `export` arguments.
    """
    from seq2seq.export.saved_model import export_run  # TensorFlow only when exporting

    try:
        version = export_run(
            args.run,
            args.model_base_path,
            weights=args.weights,
            direction=args.direction,
            beam_size=args.beam_size,
            ctc_weight=args.ctc_weight,
            lm_weight=args.lm_weight,
            length_penalty=args.length_penalty,
            no_repeat_ngram_size=args.no_repeat_ngram,
            dtype_policy=args.dtype_policy,
        )
    except (ValueError, OSError) as error:
        print(f"seq2seq export: error: {error}", file=sys.stderr)
        return 2
    print(f"seq2seq export: wrote {version}")
    return 0
