"""`seq2seq evaluate`: BLEU and chrF of an exported translator on the test
splits, greedy and beam, with decoding speed.

Scores are sacrebleu's, on detokenized text against one reference. Speed is
sentences per second of `SavedModelTranslator.translate` over the whole split
(tokenization, search and detokenization in the graph; model loading
excluded, reported separately).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TEST_SPLITS = ("test-bible.tsv", "test-wesnoth.tsv", "test.tsv")


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    sub = subparsers.add_parser(
        "evaluate",
        help="score a translator: BLEU/chrF, greedy and beam, and decoding speed",
        description=(
            "Translate the test splits of a prepared corpus with an exported model and "
            "print sacrebleu BLEU and chrF, greedy and beam, and sentences per second."
        ),
    )
    sub.add_argument("--model", required=True, help="SavedModel directory or model base dir")
    sub.add_argument(
        "--data", default="data/translate-en-fr", help="prepared corpus (default: %(default)s)"
    )
    sub.add_argument(
        "--direction", help="e.g. en-fr (default: the direction the model was exported for)"
    )
    sub.add_argument("--beam-size", type=int, default=5, help="beam size (default: 5)")
    sub.add_argument("--limit", type=int, help="only the first N sentences of each split")
    sub.add_argument("--json", type=Path, help="also write the results to this JSON file")
    sub.set_defaults(handler=run_evaluate)


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    import sacrebleu

    return {
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
    }


def evaluate(translator, data_dir: Path, direction: str, beam_size: int, limit: int | None):
    """Results per test split and search: scores, sentence count, speed."""
    from seq2seq.data.pipeline import Direction, corpus_pair, read_tsv

    parsed = Direction.parse(direction, corpus_pair(data_dir))
    results = []
    for split in TEST_SPLITS:
        path = data_dir / split
        if not path.exists():
            continue
        pairs = read_tsv(path)[:limit]
        sources = [p[parsed.source_column] for p in pairs]
        references = [p[parsed.target_column] for p in pairs]
        for search, size in (("greedy", 1), (f"beam {beam_size}", beam_size)):
            start = time.perf_counter()
            hypotheses = translator.translate(sources, beam_size=size)
            seconds = time.perf_counter() - start
            results.append(
                {
                    "split": split.removesuffix(".tsv"),
                    "search": search,
                    "sentences": len(sources),
                    **score(hypotheses, references),
                    "seconds": round(seconds, 1),
                    "sentences_per_second": round(len(sources) / seconds, 1),
                    "example": {"source": sources[0], "output": hypotheses[0]},
                }
            )
    return results


def run_evaluate(args: argparse.Namespace) -> int:
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        print(f"seq2seq evaluate: {data_dir}: no such corpus directory", file=sys.stderr)
        return 2
    from seq2seq.inference import SavedModelTranslator

    try:
        start = time.perf_counter()
        translator = SavedModelTranslator.load(args.model)
        load_seconds = time.perf_counter() - start
        direction = args.direction or translator.direction
        if direction is None:
            raise ValueError(f"{translator.model_dir}: unknown direction; pass --direction")
        results = evaluate(translator, data_dir, direction, args.beam_size, args.limit)
    except ValueError as error:
        print(f"seq2seq evaluate: {error}", file=sys.stderr)
        return 2
    print(f"{translator.model_dir} ({direction}), loaded in {load_seconds:.1f}s")
    print(f"{'split':<14} {'search':<8} {'n':>5} {'BLEU':>6} {'chrF':>6} {'sent/s':>7}")
    for row in results:
        print(
            f"{row['split']:<14} {row['search']:<8} {row['sentences']:>5} {row['bleu']:>6.2f}"
            f" {row['chrf']:>6.2f} {row['sentences_per_second']:>7.1f}"
        )
    if args.json:
        report = {
            "model": str(translator.model_dir),
            "direction": direction,
            "load_seconds": round(load_seconds, 1),
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0
