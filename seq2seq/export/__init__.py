"""SavedModels for TensorFlow Serving: `seq2seq export`.

The work is in `seq2seq.export.saved_model`. This module holds what needs no TensorFlow,
so that `seq2seq --help` and path errors do not wait for it: the command's parser and
the TF Serving model layout, `BASE/<numeric version>/` (`next_version`,
`resolve_model_dir`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXPORT_INFO = "export.json"
"""The asset that tells clients (`seq2seq translate`) about an export: its direction,
source token limit and beam sizes."""


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
            "search), greedy, beam_2, beam_3, beam_4, beam_5, beam_8 and align (attention). "
            "A speech recognizer (task asr): 16 kHz audio and lengths in, text out, log-mel "
            "front-end and search in the graph; signatures serving_default (audio, "
            "audio_length), transcribe_wav (wav_bytes), greedy, beam_4 and beam_8. The "
            "version appears only once it is complete and checked."
        ),
    )
    parser.add_argument(
        "--run", type=Path, required=True, metavar="RUN_DIR", help="training run directory"
    )
    parser.add_argument(
        "--weights", type=Path, metavar="FILE", help="weights (default: RUN_DIR/best.weights.h5)"
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
        help="translation direction to serve (default: the run's first direction; "
        "translators only)",
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        metavar="N",
        help="beam size of serving_default (default: the run's decoding.beam_size)",
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
        )
    except (ValueError, OSError) as error:
        print(f"seq2seq export: error: {error}", file=sys.stderr)
        return 2
    print(f"seq2seq export: wrote {version}")
    return 0
