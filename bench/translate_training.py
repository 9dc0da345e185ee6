"""Benchmark: training throughput of the translator with our GRU against the
identical model built with the stock `keras.layers.GRU`, in one process.

Both models are built from the same config (only `model.gru` differs), get
the same initial weights and the same real batches from the prepared corpus,
and train interleaved (ours, stock, ours, ...); each time is the median of
`--steps` timed `train_on_batch` calls after warm-up. Prints JSON with target
tokens per second for both and the ratio.

    .venv/bin/python bench/translate_training.py [--config configs/translate-en-fr.yaml]
    .venv/bin/python bench/translate_training.py --dtype-policy mixed_bfloat16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seq2seq.config import DTYPE_POLICIES, load_config  # noqa: E402
from seq2seq.data.pipeline import (  # noqa: E402
    SubwordTokenizer,
    corpus_pair,
    encode_pairs,
    read_tsv,
    training_batches,
)
from seq2seq.training.trainer import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/translate-en-fr.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        help="Keras dtype policy of both models (default: the config's training.dtype_policy)",
    )
    args = parser.parse_args()

    config = load_config(args.config)
    if args.dtype_policy:
        config.training.dtype_policy = args.dtype_policy
    data_dir = config.data.dir
    tokenizer = SubwordTokenizer(f"{data_dir}/spm.model")
    sources, targets = encode_pairs(
        read_tsv(f"{data_dir}/train.tsv"),
        config.data.directions,
        corpus_pair(data_dir),
        tokenizer,
        config.data.max_length,
    )
    batches = list(
        training_batches(sources, targets, config.data.batch_tokens, 20000, seed=0).take(
            args.warmup + args.steps
        )
    )
    models = {}
    for gru in ("ours", "stock"):
        variant = copy.deepcopy(config)
        variant.model.gru = gru
        models[gru] = build_model(variant, tokenizer.vocab_size)
    models["stock"].set_weights(models["ours"].get_weights())

    seconds = {name: [] for name in models}
    tokens = []
    for index, (inputs, labels) in enumerate(batches):
        timed = index >= args.warmup
        if timed:
            tokens.append(int(np.count_nonzero(labels.numpy())))
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(inputs, labels)
            if timed:
                seconds[name].append(time.perf_counter() - start)

    mean_tokens = float(np.mean(tokens))
    result = {name: mean_tokens / float(np.median(times)) for name, times in seconds.items()}
    print(
        json.dumps(
            {
                "benchmark": "translate_training",
                "config": args.config,
                "dtype_policy": config.training.dtype_policy,
                "batch_tokens": config.data.batch_tokens,
                "steps": args.steps,
                "mean_target_tokens_per_batch": round(mean_tokens),
                "ours_target_tokens_per_second": round(result["ours"]),
                "stock_target_tokens_per_second": round(result["stock"]),
                "speedup": round(result["ours"] / result["stock"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
