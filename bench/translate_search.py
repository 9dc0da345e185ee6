"""Benchmark: decoding speed of a translator SavedModel against a peer SavedModel (an
earlier version or another export of the same weights), in one process.

Both translate the same Bible test sentences through `SavedModelTranslator` (the path
of `seq2seq translate` and `seq2seq evaluate`: batches of 64 sorted by length), after
one untimed pass each, then `--rounds` timed passes interleaved (model, peer, model,
...); each figure is the median. Prints JSON with sentences per second of both, the
ratio, and whether the translations are identical (they are when both hold the same
weights: the search's shortcuts do not change its output).

    git worktree add /tmp/v1 596fab3   # version 1, exported before the faster search
    .venv/bin/python bench/translate_search.py \
        --peer /tmp/v1/saved_models/translate-en-fr/1 --sentences 256
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seq2seq.data.pipeline import read_tsv  # noqa: E402
from seq2seq.inference import BATCH_SIZE, SavedModelTranslator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/translate-en-fr")
    parser.add_argument("--peer", required=True, help="the SavedModel to compare with")
    parser.add_argument("--data", default="data/translate-en-fr/test-bible.tsv")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per model")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="sentences per call")
    parser.add_argument(
        "--peer-batch-size", type=int, help="the peer's sentences per call (default: --batch-size)"
    )
    args = parser.parse_args()

    sources = [pair[0] for pair in read_tsv(args.data)[: args.sentences]]
    models = {"model": args.model, "peer": args.peer}
    batch_sizes = {"model": args.batch_size, "peer": args.peer_batch_size or args.batch_size}
    translators = {
        name: SavedModelTranslator.load(path, batch_sizes[name]) for name, path in models.items()
    }
    outputs = {
        name: translator.translate(sources, beam_size=args.beam_size)
        for name, translator in translators.items()
    }
    times = {name: [] for name in translators}
    for _ in range(args.rounds):
        for name, translator in translators.items():
            start = time.perf_counter()
            translator.translate(sources, beam_size=args.beam_size)
            times[name].append(time.perf_counter() - start)
    speed = {name: len(sources) / float(np.median(values)) for name, values in times.items()}
    print(
        json.dumps(
            {
                "sentences": len(sources),
                "beam_size": args.beam_size,
                "paths": models,
                "batch_sizes": batch_sizes,
                "sentences_per_second": {name: round(value, 2) for name, value in speed.items()},
                "ratio": round(speed["model"] / speed["peer"], 3),
                "identical_translations": outputs["model"] == outputs["peer"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
