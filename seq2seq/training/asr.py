"""`seq2seq train CONFIG` for `task: asr`: the speech recognizer with `model.fit`.

The run directory is laid out as the translator's (see `seq2seq.training.trainer`):
`config.yaml`, `best.weights.h5` (lowest dev WER, greedy), `backup/` (resumable),
`history.csv` (loss, ce_loss, ctc_loss, dev_wer, dev_cer), `training_curves.png` and
TensorBoard `logs/`. Before the first epoch of a fresh run, the feature normalization's
global statistics are fitted on training utterances (through the model's own in-graph
front-end, so no librosa start-up). Under `TF_CONFIG`, as the translator (see
`seq2seq.training.distributed`): each worker trains on its own share of the
utterances, the same number of steps per epoch on every worker.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from pathlib import Path

import keras
import numpy as np
import yaml

from seq2seq.config import Config, SpeechDataConfig
from seq2seq.data.speech_pipeline import (
    Utterance,
    bucket_batch_sizes,
    encode_utterances,
    length_batches,
    load_utterances,
    pad_audio,
    read_speech_tsv,
    training_batches,
)
from seq2seq.models.transcriber import Transcriber
from seq2seq.training import distributed
from seq2seq.training.callbacks import (
    DevWer,
    TrainingCurves,
    has_backup,
    warm_start,
)
from seq2seq.training.trainer import fit_run, optimizer
from seq2seq.utils.precision import dtype_policy


def build_asr_model(config: Config) -> Transcriber:
    """The `Transcriber` of a config, built and compiled with the translator's optimizer
    (Adam, warm-up then cosine decay, global norm clipping), under
    `training.dtype_policy`."""
    with dtype_policy(config.training.dtype_policy):
        model = Transcriber(config.model, label_smoothing=config.training.label_smoothing)
        model.build()
    # The loss is the model's own (`Transcriber.compute_loss`); no XLA: shapes vary.
    model.compile(optimizer=optimizer(config.training), jit_compile=False)
    return model


def fit_normalization(model: Transcriber, signals: list[np.ndarray], seconds: float = 60.0):
    """Fits `model.normalization`'s global statistics on the features of `signals`
    (computed by the model's `LogMel`, in batches of about `seconds` of audio)."""
    if model.normalization.mode == "utterance" or not signals:
        return
    rate = model.front_end.sample_rate
    batches = []
    for rows in length_batches([len(s) for s in signals], int(seconds * rate)):
        audio, lengths = pad_audio([signals[row] for row in rows])
        features, frame_lengths = model.log_mel(audio, lengths)
        batches.append((np.asarray(features), np.asarray(frame_lengths)))
    model.normalization.adapt(batches)


def batch_count(utterances: list[Utterance], data: SpeechDataConfig) -> int:
    """About how many batches one pass of `training_batches` over `utterances` yields,
    from their durations in the TSV (speed perturbation moves a few to another bucket;
    utterances of unknown duration count as short)."""
    augment = data.augment
    slowest = min(augment.speeds) if augment is not None and augment.enabled else 1.0
    sizes = bucket_batch_sizes(data.bucket_seconds, data.batch_seconds, data.max_seconds / slowest)
    counts = [0] * len(sizes)
    for utterance in utterances:
        counts[bisect.bisect_left(data.bucket_seconds, utterance.seconds)] += 1
    return sum(math.ceil(count / size) for count, size in zip(counts, sizes, strict=True))


def training_utterances(data: SpeechDataConfig, seed: int) -> list[Utterance]:
    """The utterances of `data.train` (one TSV or a list, relative to `data.dir`).

    Several files are mixed in a seeded shuffle, so that the shuffle buffer of
    `training_batches` draws from all of them from the first step on.

    Raises:
        ValueError: naming a file that is missing (with how to prepare one).
    """
    names = data.train_files
    utterances = []
    for name in names:
        path = Path(data.dir) / name
        if not path.exists():
            raise ValueError(f"{path}: no prepared speech corpus; run `seq2seq prepare asr` first")
        utterances += read_speech_tsv(path)
    if len(names) > 1:
        random.Random(seed).shuffle(utterances)
    return utterances


def train_asr(config: Config, epochs: int | None = None) -> Path:
    """Trains (or resumes training) the speech model of `config`; returns its output dir."""
    data = config.data
    data_dir = Path(data.dir)
    train_files = ", ".join(data.train_files)
    train_utterances = training_utterances(data, config.training.seed)
    strategy = distributed.distribution_strategy()  # first: no TensorFlow op may run before it
    worker = distributed.this_worker(strategy)
    output_dir = Path(config.training.output_dir)
    run_dir = worker.run_dir(output_dir)  # the chief's: output_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if worker.is_chief:
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    keras.utils.set_random_seed(config.training.seed)

    with strategy.scope():
        model = build_asr_model(config)
    rate = model.front_end.sample_rate
    utterances, ids = encode_utterances(
        train_utterances, data.max_seconds, max_chars_per_second=model.ctc_frame_rate
    )
    if not utterances:
        raise ValueError(f"{data_dir}: no usable training utterances in {train_files}")
    hours = sum(u.seconds for u in utterances) / 3600
    voices = len({u.voice.split("@")[0] for u in utterances})  # "@" starts the speed/pitch
    print(f"train: {len(utterances)} utterances, {hours:.2f} h, {voices} voice(s)", flush=True)
    normalization_sample = utterances
    if distributed.is_distributed(strategy):  # each worker loads only its own share
        steps = batch_count(utterances, data) // worker.count
        if steps < 1 or len(utterances) < worker.count:
            raise ValueError(f"{data_dir}: too few utterances for {worker.count} workers")
        utterances, ids = (
            utterances[worker.index :: worker.count],
            ids[worker.index :: worker.count],
        )
        print(
            f"worker {worker.index} of {worker.count}: {len(utterances)} utterances,"
            f" {steps} batches per epoch",
            flush=True,
        )
    batches = training_batches(
        utterances,
        ids,
        data.batch_seconds,
        data.bucket_seconds,
        data.max_seconds,
        sample_rate=rate,
        augment=data.augment,
        shuffle_buffer=data.shuffle_buffer,
        seed=config.training.seed,
    )
    if distributed.is_distributed(strategy):
        batches = distributed.fixed_steps(batches, steps)

    dev_signals, dev_references = load_utterances(
        read_speech_tsv(data_dir / data.dev)[: data.dev_utterances], rate
    )
    if not dev_signals:
        raise ValueError(f"{data_dir / data.dev}: no usable dev utterances")
    print(f"dev: {len(dev_signals)} utterances for WER", flush=True)

    # A resumed or warm-started run gets its statistics back with its weights.
    if not has_backup(run_dir) and not warm_start(model, config.training.init_from, run_dir):
        start = time.perf_counter()
        rng = np.random.default_rng(config.training.seed)
        count = min(data.normalization_utterances, len(normalization_sample))
        chosen = [
            normalization_sample[i]
            for i in rng.choice(len(normalization_sample), count, replace=False)
        ]
        signals, _ = load_utterances(chosen, rate)
        fit_normalization(model, signals)
        print(
            f"feature normalization fitted on {len(signals)} utterances "
            f"in {time.perf_counter() - start:.0f}s",
            flush=True,
        )

    # Dev WER with the greedy form of the search an export will default to: CTC greedy,
    # or greedy search joint with CTC at the export's weight.
    search = 0 if config.decoding.beam_size == 0 else 1
    ctc_weight = config.decoding.ctc_weight if search else 0.0
    dev_wer = DevWer(
        dev_signals, dev_references, output_dir / "best.weights.h5", rate, search, ctc_weight
    )
    curves = TrainingCurves(
        output_dir / "history.csv",
        output_dir / "training_curves.png",
        metric="dev_wer",
        title=f"dev WER % ({'CTC greedy' if search == 0 else 'greedy'}"
        f"{f', joint with CTC at {ctc_weight:g}' if ctc_weight else ''})",
        loss_label=f"{config.model.ctc_weight} CTC + {1 - config.model.ctc_weight:g} CE",
    )
    fit_run(
        model,
        strategy,
        batches,
        run_dir,
        dev_wer,
        curves,
        ["dev_wer", "dev_cer"],
        "min",
        config,
        epochs,
    )
    return output_dir
