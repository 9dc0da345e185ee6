"""`seq2seq train CONFIG`: `model.fit` on the prepared corpus, resumable.

This module trains translators; a config with `task: asr` goes to
`seq2seq.training.asr` (same layout of the run directory, dev WER for dev BLEU).

The output directory holds everything needed to export or resume: a copy of
the config and of the SentencePiece model, `best.weights.h5` (best dev BLEU),
`backup/` (BackupAndRestore: kill the run and start the same command again to
resume), `history.csv`, `training_curves.png` and TensorBoard `logs/`.
Under `TF_CONFIG` the same command trains with MultiWorkerMirroredStrategy, one
process per worker (`seq2seq.training.distributed`): the chief writes the run
directory, worker N only `workers/worker-N/` in it.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from seq2seq.config import Config, TrainingConfig
from seq2seq.data.pipeline import (
    Direction,
    SubwordTokenizer,
    batch_count,
    corpus_pair,
    encode_pairs,
    read_tsv,
    training_batches,
)
from seq2seq.models import Translator
from seq2seq.training import distributed
from seq2seq.training.callbacks import (
    DevBleu,
    TrainingCurves,
    fit_resuming,
    run_callbacks,
    unknown_epoch_length_expected,
    warm_start,
)
from seq2seq.training.distributed import distribution_strategy
from seq2seq.training.losses import SmoothedCrossEntropy
from seq2seq.utils.precision import dtype_policy


def optimizer(training: TrainingConfig) -> keras.optimizers.Optimizer:
    """Adam with a linear warm-up to `training.learning_rate`, then cosine decay over
    `training.decay_steps` to 5% of it, and global norm clipping: both tasks' optimizer."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        warmup_target=training.learning_rate,
        warmup_steps=training.warmup_steps,
        decay_steps=training.decay_steps,
        alpha=0.05,
    )
    return keras.optimizers.Adam(schedule, global_clipnorm=training.clipnorm)


def has_bfloat16_units() -> bool:
    """Whether this machine computes bfloat16 natively: a GPU, or a CPU with AMX or
    AVX512-BF16. Where this cannot be read (no `/proc/cpuinfo`), assumed so."""
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return True
    return "amx_bf16" in flags or "avx512_bf16" in flags


def emulated_precision_warning(policy: str) -> str | None:
    """What to tell a user whose `training.dtype_policy` this machine would emulate."""
    if policy == "float32" or has_bfloat16_units():
        return None
    return (
        f"training.dtype_policy {policy} on a CPU without AMX or AVX512-BF16 is emulated"
        " and slower than float32"
    )


def build_model(config: Config, vocab_size: int) -> Translator:
    """The `Translator` of a config, built under `training.dtype_policy` and compiled."""
    with dtype_policy(config.training.dtype_policy):
        model = Translator(vocab_size, config.model)
        model.build()
    model.compile(
        optimizer=optimizer(config.training),
        loss=SmoothedCrossEntropy(config.training.label_smoothing),
    )
    return model


def fit_run(
    model: keras.Model,
    strategy,
    batches,
    run_dir: Path,
    dev_metric: keras.callbacks.Callback,
    curves: TrainingCurves,
    dev_keys: list[str],
    mode: str,
    config: Config,
    epochs: int | None,
) -> None:
    """`model.fit` of a `seq2seq train` run, translator or speech, with `run_callbacks`;
    under several workers the chief scores the dev set (`dev_keys`, the first one
    monitored, improving in `mode`) and plots for all."""
    warning = emulated_precision_warning(config.training.dtype_policy)
    if warning:
        print(f"seq2seq train: warning: {warning}", file=sys.stderr, flush=True)
    if distributed.is_distributed(strategy):
        if config.training.max_minutes > 0:  # each worker's clock would stop it elsewhere
            raise ValueError("training.max_minutes cannot be used with several workers")
        dev_metric = distributed.OnChief(dev_metric, strategy, keys=dev_keys)
        curves = distributed.OnChief(curves, strategy)
    callbacks = run_callbacks(
        run_dir,
        dev_metric,
        curves,
        monitor=dev_keys[0],
        mode=mode,
        patience=config.training.early_stopping_patience,
        backup_every_steps=config.training.backup_every_steps,
        max_minutes=config.training.max_minutes,
        keep_checkpoints=config.training.keep_checkpoints,
    )
    if not model.optimizer.built:
        # Built now rather than inside the first training step, whose trace would then
        # create variables, which makes tf.function trace the whole step twice (the
        # first step of a tiny model took 31 s instead of 15). After a warm start, so
        # that its optimizer state is fresh; a backup's is restored into it.
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    epochs = epochs or config.training.epochs
    # shuffle=False: the batches come shuffled (and bucketed) from tf.data; Keras warns
    # that it cannot shuffle a dataset otherwise.
    with unknown_epoch_length_expected():
        if distributed.is_distributed(strategy):
            # Each worker resumes from its own backup; they must take the same steps, so
            # an interrupted epoch is trained again whole, as Keras does.
            distributed.fit(
                model,
                strategy,
                batches,
                epochs=epochs,
                callbacks=callbacks,
                verbose=1,
                shuffle=False,
            )
            return
        fit = functools.partial(model.fit, verbose=1, shuffle=False)
        fit_resuming(fit, batches, callbacks, epochs)


def train(config: Config, epochs: int | None = None) -> Path:
    """Trains (or resumes training) the model of `config`; returns its output dir."""
    if config.task == "asr":  # the speech recognizer: seq2seq.training.asr
        from seq2seq.training.asr import train_asr

        return train_asr(config, epochs)
    data_dir = Path(config.data.dir)
    if not (data_dir / "train.tsv").exists():
        raise ValueError(f"{data_dir}: no prepared corpus; run `seq2seq prepare translate` first")
    strategy = distribution_strategy()  # first: no TensorFlow op may run before it
    worker = distributed.this_worker(strategy)
    output_dir = Path(config.training.output_dir)
    run_dir = worker.run_dir(output_dir)  # the chief's: output_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if worker.is_chief:
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        shutil.copyfile(data_dir / "spm.model", output_dir / "spm.model")
    keras.utils.set_random_seed(config.training.seed)  # the same batches on every worker

    tokenizer = SubwordTokenizer(data_dir / "spm.model")
    pair = corpus_pair(data_dir)
    sources, targets = encode_pairs(
        read_tsv(data_dir / "train.tsv"),
        config.data.directions,
        pair,
        tokenizer,
        config.data.max_length,
    )
    print(f"train: {len(sources)} examples in {', '.join(config.data.directions)}", flush=True)
    batches = training_batches(
        sources,
        targets,
        config.data.batch_tokens,
        shuffle_buffer=config.data.shuffle_buffer,
        seed=config.training.seed,
    )
    if distributed.is_distributed(strategy):
        count = batch_count(sources, targets, config.data.batch_tokens)
        batches = distributed.shard_batches(batches, count, worker)
        print(
            f"worker {worker.index} of {worker.count}: {count // worker.count} of {count}"
            " batches per epoch",
            flush=True,
        )

    # Dev BLEU in the first direction decides the best checkpoint.
    direction = Direction.parse(config.data.directions[0], pair)
    dev = read_tsv(data_dir / "dev.tsv")[: config.data.dev_sentences]
    dev_bleu = DevBleu(
        tokenizer,
        [p[direction.source_column] for p in dev],
        [p[direction.target_column] for p in dev],
        direction.target_language,
        output_dir / "best.weights.h5",
    )
    curves = TrainingCurves(output_dir / "history.csv", output_dir / "training_curves.png")

    with strategy.scope():
        model = build_model(config, tokenizer.vocab_size)
    warm_start(model, config.training.init_from, run_dir)
    fit_run(
        model, strategy, batches, run_dir, dev_bleu, curves, ["dev_bleu"], "max", config, epochs
    )
    return output_dir
