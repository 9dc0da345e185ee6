"""Benchmark: training throughput of the speech recognizer with our GRU against the
identical model built with the stock `keras.layers.GRU`, in one process.

Both models are built from the same config (only `model.gru` differs), get the same
initial weights and the same batches, and train interleaved (ours, stock, ours, ...);
each time is the median of `--steps` timed `train_on_batch` calls after warm-up.
Batches come from the prepared corpus (`data.dir`/`data.train`, with the config's
augmentation) when it exists, else are synthetic: speech-like noise of 2-8 s with
random transcripts of 14 characters per second, `data.batch_seconds` of padded audio
per batch. Prints JSON: steps per second and audio seconds per second of wall time
for both, and the ratio.

    .venv/bin/python bench/asr_training.py [--config configs/asr-en.yaml] [--synthetic]
        [--dtype-policy mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seq2seq.config import DTYPE_POLICIES, load_config  # noqa: E402
from seq2seq.data import characters  # noqa: E402
from seq2seq.data.speech_pipeline import (  # noqa: E402
    encode_utterances,
    pad_audio,
    read_speech_tsv,
    training_batches,
)
from seq2seq.training.asr import build_asr_model  # noqa: E402


def synthetic_batches(count: int, batch_seconds: float, seed: int = 0) -> list:
    """Batches of speech-like noise (two resonances, syllable-rate envelope) with random
    letter transcripts, each of about `batch_seconds` padded audio."""
    rng = np.random.default_rng(seed)
    rate = 16000
    batches = []
    for _ in range(count):
        longest = float(rng.choice([2.0, 3.0, 4.0, 6.0, 8.0]))
        rows = max(1, int(batch_seconds // longest))
        signals, texts = [], []
        for _ in range(rows):
            seconds = longest * rng.uniform(0.75, 1.0)
            n = int(seconds * rate)
            spectrum = np.fft.rfft(rng.standard_normal(n))
            frequencies = np.fft.rfftfreq(n, 1 / rate)
            formants = rng.uniform(300, 2500, 2)
            spectrum *= sum(1 / (1 + ((frequencies - f) / 150) ** 2) for f in formants)
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(n) / rate)
            audio = np.fft.irfft(spectrum, n) * envelope
            signals.append((0.3 * audio / np.abs(audio).max()).astype(np.float32))
            letters = rng.choice(list("abcdefghijklmnopqrstuvwxyz   "), int(14 * seconds))
            texts.append(characters.encode("".join(letters)) or [characters.FIRST_CHARACTER_ID])
        audio, lengths = pad_audio(signals)
        width = max(map(len, texts)) + 1
        target_in = np.zeros((rows, width), np.int32)
        target_out = np.zeros((rows, width), np.int32)
        for row, ids in enumerate(texts):
            target_in[row, : len(ids) + 1] = [characters.BOS_ID, *ids]
            target_out[row, : len(ids) + 1] = [*ids, characters.EOS_ID]
        inputs = {"audio": audio, "audio_length": lengths, "target_in": target_in}
        batches.append((inputs, target_out))
    return batches


def corpus_batches(config, count: int) -> list:
    data = config.data
    utterances, ids = encode_utterances(
        read_speech_tsv(Path(data.dir) / data.train), data.max_seconds, 25.0
    )
    dataset = training_batches(
        utterances,
        ids,
        data.batch_seconds,
        data.bucket_seconds,
        data.max_seconds,
        augment=data.augment,
        shuffle_buffer=data.shuffle_buffer,
        seed=0,
    )
    return [
        ({name: value.numpy() for name, value in inputs.items()}, target.numpy())
        for inputs, target in dataset.take(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/asr-en.yaml")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--synthetic", action="store_true", help="never read the corpus")
    parser.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        help="Keras dtype policy of both models (default: the config's training.dtype_policy)",
    )
    args = parser.parse_args()

    config = load_config(args.config)
    if args.dtype_policy:
        config.training.dtype_policy = args.dtype_policy
    count = args.warmup + args.steps
    real = not args.synthetic and (Path(config.data.dir) / config.data.train).is_file()
    batches = (
        corpus_batches(config, count)
        if real
        else synthetic_batches(count, config.data.batch_seconds)
    )
    models = {}
    for gru in ("ours", "stock"):
        variant = copy.deepcopy(config)
        variant.model.gru = gru
        models[gru] = build_asr_model(variant)
    models["stock"].set_weights(models["ours"].get_weights())

    times: dict[str, list[float]] = {name: [] for name in models}
    for index, (inputs, target) in enumerate(batches):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(inputs, target)
            if index >= args.warmup:
                times[name].append(time.perf_counter() - start)
    timed = batches[args.warmup :]
    audio_seconds = float(np.mean([inputs["audio_length"].sum() / 16000 for inputs, _ in timed]))
    padded_seconds = float(np.mean([inputs["audio"].size / 16000 for inputs, _ in timed]))
    results = {
        name: {
            "median_step_seconds": round(float(np.median(values)), 3),
            "steps_per_second": round(1.0 / float(np.median(values)), 4),
            "audio_seconds_per_second": round(audio_seconds / float(np.median(values)), 2),
        }
        for name, values in times.items()
    }
    print(
        json.dumps(
            {
                "config": args.config,
                "batches": "corpus" if real else "synthetic",
                "dtype_policy": config.training.dtype_policy,
                "parameters": int(sum(np.prod(w.shape) for w in models["ours"].trainable_weights)),
                "audio_seconds_per_batch": round(audio_seconds, 1),
                "padded_seconds_per_batch": round(padded_seconds, 1),
                "steps": args.steps,
                "ours": results["ours"],
                "stock": results["stock"],
                "speedup": round(
                    float(np.median(times["stock"])) / float(np.median(times["ours"])), 3
                ),
                "load_average": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
