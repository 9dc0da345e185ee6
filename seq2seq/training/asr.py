"""`seq2seq train CONFIG` for `task: asr`: the speech recognizer with `model.fit`.

The run directory is laid out as the translator's (see `seq2seq.training.trainer`):
`config.yaml`, `best.weights.h5` (lowest dev WER, greedy), `backup/` (resumable),
`history.csv` (loss, ce_loss, ctc_loss, dev_wer, dev_cer), `training_curves.png` and
TensorBoard `logs/`. Before the first epoch of a fresh run, the feature normalization's
global statistics are fitted on training utterances (through the model's own in-graph
front-end, so no librosa start-up).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import yaml

from seq2seq.config import Config
from seq2seq.data.speech_pipeline import (
    encode_utterances,
    length_batches,
    load_utterances,
    pad_audio,
    read_speech_tsv,
    training_batches,
)
from seq2seq.models.transcriber import Transcriber
from seq2seq.training.callbacks import DevWer, TrainingCurves, run_callbacks


def build_asr_model(config: Config) -> Transcriber:
    """The `Transcriber` of a config, built and compiled with the translator's optimizer
    (Adam, warm-up then cosine decay, global norm clipping)."""
    training = config.training
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=training.learning_rate,
        warmup_steps=training.warmup_steps,
        decay_steps=training.decay_steps,
        alpha=0.05,
    )
    model = Transcriber(config.model, label_smoothing=training.label_smoothing)
    model.build()
    # The loss is the model's own (`Transcriber.compute_loss`); no XLA: shapes vary.
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=training.clipnorm),
        jit_compile=False,
    )
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


def train_asr(config: Config, epochs: int | None = None) -> Path:
    """Trains (or resumes training) the speech model of `config`; returns its output dir."""
    from seq2seq.training.trainer import distribution_strategy

    data = config.data
    data_dir = Path(data.dir)
    train_tsv = data_dir / data.train
    if not train_tsv.exists():
        raise ValueError(f"{train_tsv}: no prepared speech corpus; run `seq2seq prepare asr` first")
    output_dir = Path(config.training.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    keras.utils.set_random_seed(config.training.seed)

    with distribution_strategy().scope():
        model = build_asr_model(config)
    rate = model.front_end.sample_rate
    frames_per_second = rate / model.front_end.hop_length / model.subsampling_factor
    utterances, ids = encode_utterances(
        read_speech_tsv(train_tsv), data.max_seconds, max_chars_per_second=frames_per_second
    )
    if not utterances:
        raise ValueError(f"{train_tsv}: no usable training utterances")
    hours = sum(u.seconds for u in utterances) / 3600
    voices = len({u.voice for u in utterances})
    print(f"train: {len(utterances)} utterances, {hours:.2f} h, {voices} voice(s)", flush=True)
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

    dev_signals, dev_references = load_utterances(
        read_speech_tsv(data_dir / data.dev)[: data.dev_utterances], rate
    )
    if not dev_signals:
        raise ValueError(f"{data_dir / data.dev}: no usable dev utterances")
    print(f"dev: {len(dev_signals)} utterances for WER", flush=True)

    resuming = any((output_dir / "backup").glob("**/*"))
    if not resuming:  # a resumed run gets its statistics back with its weights
        start = time.perf_counter()
        rng = np.random.default_rng(config.training.seed)
        count = min(data.normalization_utterances, len(utterances))
        chosen = [utterances[i] for i in rng.choice(len(utterances), count, replace=False)]
        signals, _ = load_utterances(chosen, rate)
        fit_normalization(model, signals)
        print(
            f"feature normalization fitted on {len(signals)} utterances "
            f"in {time.perf_counter() - start:.0f}s",
            flush=True,
        )

    callbacks = run_callbacks(
        output_dir,
        DevWer(dev_signals, dev_references, output_dir / "best.weights.h5", rate),
        TrainingCurves(
            output_dir / "history.csv",
            output_dir / "training_curves.png",
            metric="dev_wer",
            title="dev WER % (greedy)",
            loss_label=f"{config.model.ctc_weight} CTC + {1 - config.model.ctc_weight:g} CE",
        ),
        monitor="dev_wer",
        mode="min",
        patience=config.training.early_stopping_patience,
        backup_every_steps=config.training.backup_every_steps,
    )
    model.fit(batches, epochs=epochs or config.training.epochs, callbacks=callbacks, verbose=1)
    return output_dir
