"""Benchmark: transcription speed of a speech SavedModel against a peer SavedModel (an
earlier version or another export of the same weights), in one process.

Both transcribe the same utterances of a prepared test split through
`SavedModelTranscriber` (the path of `seq2seq transcribe` and `seq2seq evaluate`:
model calls of up to 32 pieces of similar length), after one untimed pass each, then
`--rounds` timed passes interleaved (model, peer, model, ...); each figure is the
median. Prints JSON with the real-time factor (seconds of compute per second of audio,
model loading excluded) of both at each beam size, the ratio, and whether the
transcripts are identical (they are when both hold the same weights and search: a
faster scorer must not change the search's output).

    git worktree add /tmp/v5 3344c75   # version 5, exported before the faster CTC scorer
    seq2seq export --run /tmp/v5/saved_models/asr-en --model-base-path /tmp/v5now/asr-en
    .venv/bin/python bench/asr_search.py --model /tmp/v5now/asr-en \
        --peer /tmp/v5/saved_models/asr-en/5 --beam-sizes 4 8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seq2seq.speech_evaluation import load_split  # noqa: E402
from seq2seq.transcription import SavedModelTranscriber  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/asr-en")
    parser.add_argument("--peer", required=True, help="the SavedModel to compare with")
    parser.add_argument("--data", default="data/asr-en/test-synthetic.tsv")
    parser.add_argument("--utterances", type=int, default=128)
    parser.add_argument("--beam-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per model")
    args = parser.parse_args()

    models = {"model": args.model, "peer": args.peer}
    transcribers = {name: SavedModelTranscriber.load(path) for name, path in models.items()}
    sample_rate = transcribers["model"].sample_rate
    signals = load_split(Path(args.data), sample_rate, args.utterances).signals
    audio_seconds = sum(len(signal) for signal in signals) / sample_rate

    def transcripts(name: str, beam_size: int) -> list[str]:
        return [t.text for t in transcribers[name].transcribe(signals, beam_size)]

    results = []
    for beam_size in args.beam_sizes:
        outputs = {name: transcripts(name, beam_size) for name in transcribers}
        times: dict[str, list[float]] = {name: [] for name in transcribers}
        for _ in range(args.rounds):
            for name in transcribers:
                start = time.perf_counter()
                transcripts(name, beam_size)
                times[name].append(time.perf_counter() - start)
        rtf = {name: float(np.median(values)) / audio_seconds for name, values in times.items()}
        results.append(
            {
                "beam_size": beam_size,
                "rtf": {name: round(value, 4) for name, value in rtf.items()},
                "speedup": round(rtf["peer"] / rtf["model"], 3),
                "identical_transcripts": outputs["model"] == outputs["peer"],
            }
        )
    report = {
        "utterances": len(signals),
        "audio_seconds": round(audio_seconds, 1),
        "paths": models,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
