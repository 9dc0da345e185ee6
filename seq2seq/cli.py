"""The `seq2seq` command: one subcommand per stage of a model's life cycle."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from seq2seq.data.prepare import add_prepare_parser
from seq2seq.evaluation import add_evaluate_parser
from seq2seq.export import add_export_parser
from seq2seq.serving.server import add_serve_parser
from seq2seq.transcribe import add_transcribe_parser
from seq2seq.translate import add_translate_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="GRU encoder-decoders for translation and speech recognition.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_prepare_parser(subparsers)
    _add_train_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_export_parser(subparsers)
    add_translate_parser(subparsers)
    add_transcribe_parser(subparsers)
    add_serve_parser(subparsers)
    return parser


def _add_train_parser(subparsers) -> None:
    sub = subparsers.add_parser(
        "train",
        help="train a model from a YAML config with model.fit",
        description=(
            "Train the model a YAML config describes (see configs/). Progress, dev BLEU "
            "(translation) or dev WER (speech), "
            "the best checkpoint, a training-curve plot and TensorBoard logs go to the "
            "config's training.output_dir. Interrupted? Run the same command again: it "
            "resumes from the last backup."
        ),
    )
    sub.add_argument("config", help="YAML config, e.g. configs/translate-en-fr.yaml")
    sub.add_argument("--epochs", type=int, help="override training.epochs")
    sub.add_argument(
        "--init-from",
        metavar="WEIGHTS",
        help=(
            "start a fresh run from these weights instead of random ones: a run's "
            "best.weights.h5 or an exported SavedModel (e.g. saved_models/asr-en) of a "
            "model with the same model section; overrides training.init_from"
        ),
    )
    sub.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help=(
            "stop training after M minutes of wall time (the epoch under way ends there; "
            "run the command again to continue); overrides training.max_minutes"
        ),
    )
    sub.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from seq2seq.config import load_config, validate

    try:
        config = load_config(args.config)
        if args.init_from:
            config.training.init_from = args.init_from
        if args.max_minutes is not None:
            config.training.max_minutes = args.max_minutes
            validate(config, "--max-minutes")
        from seq2seq.training.trainer import train  # TensorFlow only once the config is good

        output_dir = train(config, epochs=args.epochs)
    except ValueError as error:
        print(f"seq2seq train: {error}", file=sys.stderr)
        return 2
    print(f"seq2seq train: done; best weights in {output_dir / 'best.weights.h5'}")
    return 0


# What TensorFlow 2.21 writes to stderr while it loads: absl log lines written before
# absl's logging is set up, which TF_CPP_MIN_LOG_LEVEL does not reach ("oneDNN custom
# operations are on", "Could not find cuda drivers", "failed call to cuInit"), and the
# notice oneDNN gives once per process, at the first transpose of booleans or int64
# ("oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back to ... Eigen").
TENSORFLOW_STARTUP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\)"
    r"|^[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ \w+\.cc:\d+\] "
    r"|^E\d{4} \d\d:\d\d:[\d.]+ +\d+ cuda_\w+\.cc:\d+\] "
    r"|^E\d{4} \d\d:\d\d:[\d.]+ +\d+ util\.cc:\d+\] oneDNN supports DT_\w+ only on "
)


def import_tensorflow_quietly(first_op: bool = True) -> None:
    """Imports TensorFlow and finds its devices (and with `first_op`, runs one transpose)
    with the process's stderr (file descriptor 2, where the C++ code writes) captured,
    then writes back every line that is not start-up noise (`TENSORFLOW_STARTUP_NOISE`).

    Args:
        first_op: run an op now, which starts TensorFlow's runtime: False for commands
            that configure it first (a distribution strategy's collective ops, threads).
    """
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            if first_op:
                # oneDNN's once-per-process notice, given here rather than at a model's
                # first call (after the capture, where every command printed it).
                tf.transpose(tf.zeros([2, 3], tf.bool))
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines()
            kept = [line for line in lines if not TENSORFLOW_STARTUP_NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter is not for command-line users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Commands that load TensorFlow; a client of a REST server (--server) need not.
    if args.command in ("train", "export", "serve") or getattr(args, "model", None):
        import_tensorflow_quietly(first_op=args.command not in ("train", "serve"))
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
