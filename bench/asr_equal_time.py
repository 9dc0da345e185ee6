"""Benchmark: the speech recognizer with our GRU against the identical model built with
the stock `keras.layers.GRU`, each trained from scratch for the same wall time, then
scored on the same utterances (issue #5: lower WER at equal training time).

For each GRU, `seq2seq train CONFIG --max-minutes M` runs in a fresh process with
`model.gru` set, many epochs (so that the time limit ends it) and its own
`training.output_dir` under `--work`; both runs use the same seed, data and schedule.
The best weights of each (by dev WER at the end of each epoch, the one the limit cuts
short included) are then scored by CTC greedy search (the CTC head's best path: no
decoder, no language model, so it measures what training taught the encoder) on the
first `--utterances` of `test-synthetic.tsv` and (when prepared) `test-real.tsv`.
Prints JSON: per GRU the steps taken, the training losses of its last epoch and the
WER/CER of each split; and the ratio of steps. The runs are sequential, so run this on
an otherwise idle machine: anything else running shifts the comparison.

    .venv/bin/python bench/asr_equal_time.py --minutes 40
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
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

from seq2seq.config import load_config  # noqa: E402
from seq2seq.data import characters  # noqa: E402
from seq2seq.data.speech_pipeline import load_utterances, read_speech_tsv  # noqa: E402

GRUS = ("ours", "stock")
SPLITS = ("test-synthetic.tsv", "test-real.tsv")


def train_for(config_path: str, gru: str, minutes: float, work: Path) -> dict:
    """Trains the config's model with `gru` from scratch for `minutes`; returns the run's
    directory, steps and last epoch's training losses."""
    values = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    run_dir = work / gru
    shutil.rmtree(run_dir, ignore_errors=True)  # from scratch, never resumed
    values["model"]["gru"] = gru
    values["training"].update(output_dir=str(run_dir), epochs=1000, init_from="")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        yaml.safe_dump(values, file)
    try:
        command = [sys.executable, "-m", "seq2seq", "train", file.name]
        result = subprocess.run(
            [*command, "--max-minutes", str(minutes)], capture_output=True, text=True
        )
    finally:
        os.unlink(file.name)
    if result.returncode != 0:
        raise SystemExit(f"training with {gru} failed:\n{result.stderr[-3000:]}")
    steps = re.search(r"time limit: stopping after .* \((\d+) steps\)", result.stdout)
    with open(run_dir / "history.csv", encoding="utf-8") as rows:
        last = list(csv.DictReader(rows))[-1]
    return {
        "run_dir": str(run_dir),
        "steps": int(steps.group(1)) if steps else None,
        "epochs": int(last["epoch"]) + 1,
        "last_epoch_ctc_loss": round(float(last["ctc_loss"]), 4),
        "last_epoch_ce_loss": round(float(last["ce_loss"]), 4),
        "dev_wer": round(float(last["dev_wer"]), 2),
    }


def score(config_path: str, gru: str, run_dir: Path, utterances: int) -> dict:
    """CTC greedy WER and CER of a run's best weights on the test splits."""
    from seq2seq.training.asr import build_asr_model
    from seq2seq.training.callbacks import transcribe_ids

    config = load_config(config_path)
    config.model.gru = gru
    model = build_asr_model(config)
    model.load_weights(str(run_dir / "best.weights.h5"))
    scores = {}
    for split in SPLITS:
        path = Path(config.data.dir) / split
        if not path.is_file():  # test-real.tsv is only there with the Asterisk prompts
            continue
        signals, references = load_utterances(read_speech_tsv(path)[:utterances])
        ids = transcribe_ids(model, signals, beam_size=0)
        wer, cer = characters.error_rates(references, [characters.decode(i) for i in ids])
        scores[split.removesuffix(".tsv")] = {"wer": round(wer, 2), "cer": round(cer, 2)}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/asr-en.yaml")
    parser.add_argument("--minutes", type=float, default=40.0, help="training time of each")
    parser.add_argument("--utterances", type=int, default=200, help="scored per test split")
    parser.add_argument("--work", type=Path, default=Path("runs/equal-time"))
    args = parser.parse_args()
    data_dir = Path(load_config(args.config).data.dir)
    if not (data_dir / SPLITS[0]).is_file():
        raise SystemExit(f"{data_dir}: no prepared corpus; run `seq2seq prepare asr` first")
    results = {}
    for gru in GRUS:
        results[gru] = train_for(args.config, gru, args.minutes, args.work)
    for gru in GRUS:
        results[gru]["ctc_greedy"] = score(
            args.config, gru, Path(results[gru]["run_dir"]), args.utterances
        )
    steps = [results[gru]["steps"] for gru in GRUS]
    report = {
        "config": args.config,
        "minutes_each": args.minutes,
        "utterances_per_split": args.utterances,
        **results,
        "steps_ratio": round(steps[0] / steps[1], 2) if all(steps) else None,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
