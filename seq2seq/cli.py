"""The `seq2seq` command: one subcommand per stage of a model's life cycle."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

# Subcommands whose implementation has not landed yet, with the issue that
# tracks each. They parse no arguments and exit with status 2.
NOT_BUILT = {
    "translate": ("translate text with a SavedModel or a TF Serving endpoint", 3),
    "transcribe": ("transcribe audio files with a SavedModel or a TF Serving endpoint", 5),
    "prepare": ("build a training corpus (translate, asr) from installed packages", 3),
    "train": ("train a model from a YAML config with model.fit", 3),
    "evaluate": ("score a model: BLEU/chrF for translation, WER/CER for speech", 3),
    "export": ("export a checkpoint as the next SavedModel version for TF Serving", 4),
    "serve": ("serve SavedModels over TF Serving's REST and gRPC interfaces", 4),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="GRU encoder-decoders for translation and speech recognition.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, issue) in NOT_BUILT.items():
        sub = subparsers.add_parser(
            name,
            help=f"{summary} (not built yet)",
            description=f"{summary}. Not built yet: tracked in issue #{issue}.",
        )
        sub.set_defaults(handler=functools.partial(_not_built, name, issue))
    return parser


def _not_built(command: str, issue: int, _args: argparse.Namespace) -> int:
    print(f"seq2seq {command}: not built yet (issue #{issue}).", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Unknown arguments are left for the not-yet-built commands to refuse.
    args, _ = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
