"""Benchmark: a model with our GRU against the identical model built with the stock
`keras.layers.GRU`, each trained from scratch for the same wall time, then scored on the
same test sentences (issue #3: higher BLEU, issue #5: lower WER, at equal training time).

For each GRU, `seq2seq train CONFIG --max-minutes M` runs in a fresh process with
`model.gru` set, many epochs (so that the time limit ends it) and its own
`training.output_dir` under `--work`; both runs use the same seed, data and schedule.
The runs are sequential, each with every CPU, so run this on an otherwise idle
machine: anything else running shifts the comparison. (Side by side, each pinned to one
of the two cores, the translators took 26 and 25 steps in their first two minutes: our
GRU's gain on this CPU comes partly from running two lanes of the batch on two cores.)
The best weights of each (by the dev metric at the end of each epoch, the
one the limit cuts short included) are then scored on the first `--sentences` of each
test split:

- a translator (`task: translate`) by greedy search in its first direction: sacrebleu
  BLEU and chrF on the test splits of `seq2seq evaluate`;
- a speech recognizer (`task: asr`) by CTC greedy search (the CTC head's best path: no
  decoder, no language model, so it measures what training taught the encoder): WER and
  CER on `test-synthetic.tsv` and (when prepared) `test-real.tsv`.

Prints JSON: per GRU the steps taken, the last row of its `history.csv` and the scores;
and the ratio of steps.

    .venv/bin/python bench/equal_time.py --config configs/translate-en-fr.yaml --minutes 45
    .venv/bin/python bench/equal_time.py --config configs/asr-en.yaml --minutes 40
    .venv/bin/python bench/equal_time.py --config configs/translate-en-fr.yaml --minutes 20 \
        --dtype-policy mixed_bfloat16
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

from seq2seq.config import DTYPE_POLICIES, Config, load_config  # noqa: E402

GRUS = ("ours", "stock")
SPEECH_SPLITS = ("test-synthetic.tsv", "test-real.tsv")


def train_for(config_path: str, gru: str, minutes: float, work: Path, dtype_policy: str) -> dict:
    """Trains the config's model with `gru` from scratch for `minutes` under
    `dtype_policy`; returns the run's directory, steps and last epoch's `history.csv` row."""
    values = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    run_dir = work / gru
    shutil.rmtree(run_dir, ignore_errors=True)  # from scratch, never resumed
    run_dir.mkdir(parents=True)
    values["model"]["gru"] = gru
    values["training"].update(
        output_dir=str(run_dir), epochs=1000, init_from="", dtype_policy=dtype_policy
    )
    config_file = run_dir.with_name(f"{gru}.yaml")
    config_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    log = run_dir.with_name(f"{gru}.log")
    command = [sys.executable, "-m", "seq2seq", "train", str(config_file)]
    with open(log, "w", encoding="utf-8") as output:
        result = subprocess.run(
            [*command, "--max-minutes", str(minutes)], stdout=output, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise SystemExit(f"training with {gru} failed: see {log}")
    steps = re.search(r"time limit: stopping after .* \((\d+) steps\)", log.read_text("utf-8"))
    with open(run_dir / "history.csv", encoding="utf-8") as rows:
        last = list(csv.DictReader(rows))[-1]
    return {
        "run_dir": str(run_dir),
        "steps": int(steps.group(1)) if steps else None,
        "epochs": int(last.pop("epoch")) + 1,
        "last_epoch": {
            key: round(float(value), 4) for key, value in last.items() if value not in ("", "NA")
        },
    }


def score_translator(config: Config, run_dir: Path, sentences: int) -> dict:
    """Greedy BLEU and chrF of a run's best weights in the config's first direction."""
    from seq2seq.data.pipeline import Direction, SubwordTokenizer, corpus_pair, read_tsv
    from seq2seq.data.pipeline import source_ids as encode_sources
    from seq2seq.evaluation import TEST_SPLITS, score
    from seq2seq.training.callbacks import translate_ids
    from seq2seq.training.trainer import build_model

    data_dir = Path(config.data.dir)
    tokenizer = SubwordTokenizer(run_dir / "spm.model")
    model = build_model(config, tokenizer.vocab_size)
    model.load_weights(str(run_dir / "best.weights.h5"))
    direction = Direction.parse(config.data.directions[0], corpus_pair(data_dir))
    scores = {"direction": config.data.directions[0]}
    for split in TEST_SPLITS:
        if not (data_dir / split).is_file():
            continue
        pairs = read_tsv(data_dir / split)[:sentences]
        sources = [pair[direction.source_column] for pair in pairs]
        ids = translate_ids(
            model,
            encode_sources(tokenizer, sources, direction.target_language),
            beam_size=1,
            max_length_ratio=config.decoding.max_length_ratio,
            max_length_offset=config.decoding.max_length_offset,
            no_repeat_ngram_size=config.decoding.no_repeat_ngram_size,
        )
        references = [pair[direction.target_column] for pair in pairs]
        scores[split.removesuffix(".tsv")] = score(tokenizer.decode(ids), references)
    return {"greedy": scores}


def score_transcriber(config: Config, run_dir: Path, utterances: int) -> dict:
    """CTC greedy WER and CER of a run's best weights on the speech test splits."""
    from seq2seq.data import characters
    from seq2seq.data.speech_pipeline import load_utterances, read_speech_tsv
    from seq2seq.training.asr import build_asr_model
    from seq2seq.training.callbacks import transcribe_ids

    model = build_asr_model(config)
    model.load_weights(str(run_dir / "best.weights.h5"))
    scores = {}
    for split in SPEECH_SPLITS:
        path = Path(config.data.dir) / split
        if not path.is_file():  # test-real.tsv is only there with the Asterisk prompts
            continue
        signals, references = load_utterances(read_speech_tsv(path)[:utterances])
        ids = transcribe_ids(model, signals, beam_size=0)
        wer, cer = characters.error_rates(references, [characters.decode(i) for i in ids])
        scores[split.removesuffix(".tsv")] = {"wer": round(wer, 2), "cer": round(cer, 2)}
    return {"ctc_greedy": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--config", default="configs/asr-en.yaml", help="default: configs/asr-en.yaml"
    )
    parser.add_argument(
        "--minutes", type=float, default=40.0, help="training time of each (default: 40)"
    )
    parser.add_argument(
        "--sentences",
        type=int,
        default=1000,
        help="sentences or utterances scored per test split (default: 1000)",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/equal-time"))
    parser.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        help="Keras dtype policy of both trainings (default: the config's "
        "training.dtype_policy); the scoring runs in float32, as an export does",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    data_dir = Path(config.data.dir)
    if not (data_dir / getattr(config.data, "train", "train.tsv")).is_file():
        raise SystemExit(f"{data_dir}: no prepared corpus; run `seq2seq prepare` first")
    policy = args.dtype_policy or config.training.dtype_policy
    work = args.work / f"{config.name}-{policy}"
    results = {gru: train_for(args.config, gru, args.minutes, work, policy) for gru in GRUS}
    config.training.dtype_policy = "float32"  # both scored as their exports would run
    scorer = score_transcriber if config.task == "asr" else score_translator
    for gru in GRUS:
        config.model.gru = gru
        results[gru].update(scorer(config, Path(results[gru]["run_dir"]), args.sentences))
    steps = [results[gru]["steps"] for gru in GRUS]
    report = {
        "config": args.config,
        "dtype_policy": policy,
        "minutes_each": args.minutes,
        "cpus": os.cpu_count(),
        "sentences_per_split": args.sentences,
        **results,
        "steps_ratio": round(steps[0] / steps[1], 2) if all(steps) else None,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
