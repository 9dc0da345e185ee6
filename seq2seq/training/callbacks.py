"""Callbacks of `seq2seq train`: dev BLEU (translation) or dev WER (speech) with
best-checkpoint keeping, the training-curve plot, the time limit, and backups that
resume an interrupted epoch where it stopped."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from seq2seq.data.pipeline import SubwordTokenizer, pad_batch, source_ids
from seq2seq.export.saved_model import assign_exported_variables


def translate_ids(
    model, sources: list[list[int]], batch_size: int = 64, **search
) -> list[list[int]]:
    """Best hypothesis ids of every source, decoded in length-sorted batches."""
    search_fn = tf.function(lambda source: model.search(source, **search).ids[:, 0])
    order = np.argsort([len(s) for s in sources])
    results: list[list[int]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = pad_batch([sources[index] for index in rows])
        for row, ids in zip(rows, search_fn(tf.constant(batch)).numpy(), strict=True):
            results[row] = [int(token) for token in ids if token > 0]
    return results


class DevBleu(keras.callbacks.Callback):
    """Greedy-decodes dev sentences after each epoch, logs `dev_bleu`, and
    keeps the weights of the best epoch in `best.weights.h5` (written to a
    temporary file first, so a crash never leaves a half-written best).

    Args:
        tokenizer: the corpus's `SubwordTokenizer`.
        sources: dev source texts.
        references: their reference translations.
        target_language: language tag to request.
        best_path: where the best weights go.
    """

    def __init__(
        self,
        tokenizer: SubwordTokenizer,
        sources: list[str],
        references: list[str],
        target_language: str,
        best_path: Path,
    ):
        super().__init__()
        self.tokenizer = tokenizer
        self.source_ids = source_ids(tokenizer, sources, target_language)
        self.references = references
        self.best_path = Path(best_path)
        self.best = -1.0

    def on_train_begin(self, logs=None):
        # A resumed run must not overwrite a better checkpoint from before.
        history = self.best_path.parent / "history.csv"
        if history.exists():
            with open(history, encoding="utf-8") as rows:
                scores = [float(r["dev_bleu"]) for r in csv.DictReader(rows) if r.get("dev_bleu")]
            self.best = max(scores, default=-1.0)

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        hypotheses = self.tokenizer.decode(translate_ids(self.model, self.source_ids))
        bleu = sacrebleu.corpus_bleu(hypotheses, [self.references]).score
        logs = logs if logs is not None else {}
        logs["dev_bleu"] = bleu
        improved = bleu > self.best
        if improved:
            self.best = bleu
            temporary = self.best_path.with_name(f".tmp-{self.best_path.name}")
            self.model.save_weights(temporary)
            os.replace(temporary, self.best_path)
        print(
            f"\nepoch {epoch + 1}: dev BLEU {bleu:.2f} (best {self.best:.2f}"
            f"{', saved' if improved else ''}) in {time.perf_counter() - start:.0f}s;"
            f" e.g. {hypotheses[0]!r}",
            flush=True,
        )


class TrainingCurves(keras.callbacks.Callback):
    """Redraws `training_curves.png` (loss and dev BLEU by epoch) from the
    CSV history after every epoch, so it covers resumed runs too.

    Args:
        history_csv: the `CSVLogger` file.
        image: the PNG to write.
        metric: the dev score's column. Default: `"dev_bleu"`.
        title: its plot's title. Default: `"dev BLEU (greedy)"`.
        loss_label: the loss's axis label. Default: `"label-smoothed CE"`.
    """

    def __init__(
        self,
        history_csv: Path,
        image: Path,
        metric: str = "dev_bleu",
        title: str = "dev BLEU (greedy)",
        loss_label: str = "label-smoothed CE",
    ):
        super().__init__()
        self.history_csv = Path(history_csv)
        self.image = Path(image)
        self.metric = metric
        self.title = title
        self.loss_label = loss_label

    def on_epoch_end(self, epoch, logs=None):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        if not self.history_csv.exists():
            return
        with open(self.history_csv, encoding="utf-8") as rows:
            history = list(csv.DictReader(rows))
        if not history:
            return
        epochs = [int(r["epoch"]) + 1 for r in history]
        figure, (loss_axis, bleu_axis) = plt.subplots(1, 2, figsize=(10, 4))
        loss_axis.plot(epochs, [float(r["loss"]) for r in history], marker="o")
        loss_axis.set(title="training loss", xlabel="epoch", ylabel=self.loss_label)
        bleu_axis.plot(epochs, [float(r.get(self.metric) or "nan") for r in history], marker="o")
        ylabel = "BLEU" if self.metric == "dev_bleu" else self.metric
        bleu_axis.set(title=self.title, xlabel="epoch", ylabel=ylabel)
        for axis in (loss_axis, bleu_axis):
            axis.grid(alpha=0.3)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.25
        figure.tight_layout()
        temporary = self.image.with_name(f".{self.image.stem}.tmp.png")
        figure.savefig(temporary, dpi=100)
        plt.close(figure)
        os.replace(temporary, self.image)


def speech_search_function(model, **search):
    """`model.search(audio, lengths, **search)`'s best ids as one `tf.function` for any
    batch shape (traced once)."""
    return tf.function(
        lambda audio, lengths: model.search(audio, lengths, **search).ids[:, 0],
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
    )


def transcribe_ids(
    model,
    signals: list[np.ndarray],
    max_seconds: float = 120.0,
    sample_rate: int = 16000,
    search_fn=None,
    **search,
) -> list[list[int]]:
    """Best hypothesis (character ids) of every signal, decoded in length-sorted batches
    of at most `max_seconds` padded audio, with `search_fn` (default:
    `speech_search_function(model, **search)`)."""
    from seq2seq.data.speech_pipeline import length_batches, pad_audio

    search_fn = search_fn or speech_search_function(model, **search)
    results: list[list[int]] = [[] for _ in signals]
    batches = length_batches([len(s) for s in signals], int(max_seconds * sample_rate))
    for rows in batches:
        audio, lengths = pad_audio([signals[row] for row in rows])
        for row, ids in zip(rows, search_fn(audio, lengths).numpy(), strict=True):
            results[row] = [int(token) for token in ids if token > 0]
    return results


class DevWer(keras.callbacks.Callback):
    """Transcribes dev utterances after each epoch, logs `dev_wer` and `dev_cer` (jiwer,
    in percent), and keeps the weights of the epoch with the lowest WER (then CER) in
    `best.weights.h5` (written to a temporary file first).

    Args:
        signals: dev audio, float32 mono at the model's sample rate.
        references: their normalized transcripts (non-empty).
        best_path: where the best weights go.
        sample_rate: of `signals`. Default: 16000.
        beam_size: the search: 1 greedy (attention decoder), 0 CTC greedy. Default: 1.
        ctc_weight: of greedy search: when positive, joint with the CTC head (see
            `Transcriber.search`). Default: 0.
    """

    def __init__(
        self,
        signals: list[np.ndarray],
        references: list[str],
        best_path: Path,
        sample_rate: int = 16000,
        beam_size: int = 1,
        ctc_weight: float = 0.0,
    ):
        super().__init__()
        if beam_size not in (0, 1):
            raise ValueError(f"`beam_size` must be 0 (CTC greedy) or 1 (greedy), got {beam_size}.")
        self.search = {"beam_size": beam_size, "ctc_weight": ctc_weight}
        self.signals = signals
        self.references = references
        self.best_path = Path(best_path)
        self.sample_rate = sample_rate
        self.best = (float("inf"), float("inf"))
        self.search_fn = None

    def on_train_begin(self, logs=None):
        # A resumed run must not overwrite a better checkpoint from before.
        history = self.best_path.parent / "history.csv"
        if history.exists():
            with open(history, encoding="utf-8") as rows:
                scores = [
                    (float(r["dev_wer"]), float(r.get("dev_cer") or "inf"))
                    for r in csv.DictReader(rows)
                    if r.get("dev_wer")
                ]
            self.best = min(scores, default=self.best)

    def on_epoch_end(self, epoch, logs=None):
        from seq2seq.data import characters

        start = time.perf_counter()
        if self.search_fn is None:  # traced once, in the first epoch
            self.search_fn = speech_search_function(self.model, **self.search)
        decoded = transcribe_ids(
            self.model, self.signals, sample_rate=self.sample_rate, search_fn=self.search_fn
        )
        hypotheses = [characters.decode(ids) for ids in decoded]
        wer, cer = characters.error_rates(self.references, hypotheses)
        logs = logs if logs is not None else {}
        logs["dev_wer"], logs["dev_cer"] = wer, cer
        improved = (wer, cer) < self.best
        if improved:
            self.best = (wer, cer)
            temporary = self.best_path.with_name(f".tmp-{self.best_path.name}")
            self.model.save_weights(temporary)
            os.replace(temporary, self.best_path)
        print(
            f"\nepoch {epoch + 1}: dev WER {wer:.2f} CER {cer:.2f} (best WER {self.best[0]:.2f}"
            f"{', saved' if improved else ''}) in {time.perf_counter() - start:.0f}s;"
            f" e.g. {hypotheses[0]!r} for {self.references[0]!r}",
            flush=True,
        )


class TimeLimit(keras.callbacks.Callback):
    """Stops training once `minutes` of wall time have passed since the run's first
    `fit` began (like fairseq's `--stop-time-hours`): the step that crosses the limit is
    the last, and its epoch ends there, with the dev metric, history row and backup of
    any epoch's end; a rerun of the command continues with the next epoch.

    Args:
        minutes: the limit; 0 or less for none.
        clock: seconds, monotonic. Default: `time.monotonic`.

    >>> limit = TimeLimit(0.5, clock=iter([0.0, 10.0, 31.0]).__next__)
    >>> model = keras.Sequential()
    >>> model.stop_training = False  # as `fit` sets it
    >>> limit.set_model(model)
    >>> limit.on_train_begin()
    >>> limit.on_train_batch_end(0); limit.model.stop_training
    False
    >>> limit.on_train_batch_end(1); limit.model.stop_training
    time limit: stopping after 0.5 minutes of training (2 steps)
    True
    """

    def __init__(self, minutes: float, clock=time.monotonic):
        super().__init__()
        self.minutes = float(minutes)
        self._clock = clock
        self._start: float | None = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        if self._start is None:  # the first `fit` of a run (see `fit_resuming`)
            self._start = self._clock()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.minutes <= 0 or self.model.stop_training:
            return
        if self._clock() - self._start >= 60.0 * self.minutes:
            print(
                f"time limit: stopping after {self.minutes:g} minutes of training "
                f"({self.steps} steps)",
                flush=True,
            )
            self.model.stop_training = True


class EpochCheckpoints(keras.callbacks.Callback):
    """Writes the weights at the end of every epoch to
    `directory/epoch-NNN.weights.h5` (NNN counting from 1, across resumed runs; each
    file written to a temporary name first) and deletes all but the last `keep`: the
    inputs of checkpoint averaging (`seq2seq export --weights FILE...`).

    Args:
        directory: where the files go; created when needed.
        keep: how many of the latest epochs to keep, at least 1.
    """

    def __init__(self, directory: Path, keep: int):
        super().__init__()
        if keep < 1:
            raise ValueError(f"`keep` must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"epoch-{epoch + 1:03d}.weights.h5"
        temporary = path.with_name(f".tmp-{path.name}")
        self.model.save_weights(temporary)
        os.replace(temporary, path)
        for stale in sorted(self.directory.glob("epoch-*.weights.h5"))[: -self.keep]:
            stale.unlink()


class BackupEveryStepsAndEpoch(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that backs up every `save_freq` steps *and* at the end of
    every epoch, so a finished epoch is never trained again after a restart (the stock
    callback does one or the other), and whose metadata also counts the batches of
    the current epoch already trained (`batches_done`), so that `fit_resuming` trains
    only the rest of an interrupted epoch (Keras trains it again from its first batch).
    Backups are written atomically: a kill during one leaves the one before whole.

    Args: those of `keras.callbacks.BackupAndRestore`.

    Attributes:
        batch_offset: batches of the current epoch trained before this `fit` began
            (the first `fit` of a resumed epoch, whose dataset skips them).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_offset = 0
        self._batches_done = 0

    def interrupted_epoch(self) -> tuple[int, int]:
        """`(epoch, batches)` of the backup: the epoch a resumed run starts with
        (0-based), and how many of its batches were trained already (0 after an
        epoch's end, without a backup, or for a backup older than this count)."""
        path = Path(self._training_metadata_path)
        if not path.is_file():
            return 0, 0
        metadata = json.loads(path.read_text(encoding="utf-8"))
        return int(metadata.get("epoch", 0)), int(metadata.get("batches_done", 0))

    def on_epoch_begin(self, epoch, logs=None):
        # The stock callback learns the epoch only at its own epoch ends, so a resumed
        # run's step backups would record epoch 0 until its first epoch had ended.
        self._current_epoch = epoch
        self._batches_done = self.batch_offset

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = self.batch_offset + batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._batches_done = 0
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()

    def _save_model(self):
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        weights.parent.mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint:
            for current, previous in (
                (weights, self._prev_weights_path),
                (metadata, self._prev_training_metadata_path),
            ):
                if current.exists():
                    shutil.copyfile(current, previous)
        temporary = weights.with_name(f".tmp-{weights.name}")
        self.model.save_weights(temporary)
        os.replace(temporary, weights)
        temporary = metadata.with_name(f".tmp-{metadata.name}")
        temporary.write_text(
            json.dumps(
                {
                    "epoch": self._current_epoch,
                    "batch": self._last_batch_seen,
                    "batches_done": self._batches_done,
                }
            ),
            encoding="utf-8",
        )
        os.replace(temporary, metadata)


class _EndAfterEpoch(keras.callbacks.Callback):
    """Stops `fit` after its first epoch; `stopped_early` tells whether another
    callback had stopped it already. Goes last in the list."""

    def __init__(self):
        super().__init__()
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        self.stopped_early = bool(self.model.stop_training)
        self.model.stop_training = True


def fit_resuming(
    fit, batches: tf.data.Dataset, callbacks: list[keras.callbacks.Callback], epochs: int
) -> None:
    """`fit(batches, epochs=epochs, callbacks=callbacks)` that trains only the rest of
    an epoch its backup had interrupted: first one epoch of `batches.skip(done)`, then
    the other epochs, unless a callback stopped training (time limit, early stopping,
    NaN). Two calls, because Keras takes the batch count of a dataset of unknown length
    from its first epoch for every later one. The skipped batches are the first of the
    dataset's first shuffle, the interrupted epoch's own when it was the run's first
    (the shuffle is seeded); later epochs continue with a random rest.

    Args:
        fit: `model.fit` or a wrapper of it.
        batches: the training batches of one epoch.
        callbacks: the run's callbacks, a `BackupEveryStepsAndEpoch` among them.
        epochs: the epoch to stop before, as `model.fit`'s.
    """
    backup = next(c for c in callbacks if isinstance(c, BackupEveryStepsAndEpoch))
    epoch, done = backup.interrupted_epoch()
    if done and epoch < epochs:
        print(f"resuming epoch {epoch + 1} after its first {done} batches", flush=True)
        backup.batch_offset = done
        end = _EndAfterEpoch()
        try:  # epochs as the run's, for the progress bar's "Epoch 3/4"
            fit(batches.skip(done), epochs=epochs, callbacks=[*callbacks, end])
        finally:
            backup.batch_offset = 0
        if end.stopped_early or epoch + 1 == epochs:
            return
    fit(batches, epochs=epochs, callbacks=callbacks)


@contextlib.contextmanager
def unknown_epoch_length_expected():
    """Silences Keras's "Your input ran out of data; interrupting training" for a
    dataset of unknown length (bucketed batches), which Keras 3.15 prints at the end
    of every run's first epoch: running out is how it learns the epoch's batch count,
    and nothing was interrupted (fixed upstream in keras-team/keras#23360)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
        yield


def has_backup(run_dir: Path) -> bool:
    """Whether `run_dir` holds a backup that `BackupEveryStepsAndEpoch` resumes from."""
    return any((Path(run_dir) / "backup").glob("**/*"))


def warm_start(model: keras.Model, init_from: str, run_dir: Path) -> bool:
    """Loads the weights `init_from` names into a fresh run's built `model`: a weights
    file (a run's `best.weights.h5`), or an exported SavedModel (a version directory or
    a model base directory, whose highest version is taken), so that a shipped model
    can be trained further where no checkpoint survives.

    A run with a backup is resuming: the backup restores its own weights, and
    `init_from` is ignored. Returns whether the weights were loaded.

    Raises:
        ValueError: naming `init_from` when it is missing or does not fit the model.
    """
    if not init_from or has_backup(run_dir):
        return False
    path = Path(init_from)
    if not path.exists():
        raise ValueError(f"{path}: no such weights file or SavedModel (training.init_from)")
    try:
        if path.is_dir():
            assign_exported_variables(model, path)
        else:
            with warnings.catch_warnings():  # the optimizer starts afresh on purpose
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(str(path))
    except (ValueError, OSError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"{path}: cannot start from these weights; are they of a model with the same "
            f"model section? ({str(error).splitlines()[0]})"
        ) from None
    print(f"initialized from {path}", flush=True)
    return True


def run_callbacks(
    output_dir: Path,
    dev_metric: keras.callbacks.Callback,
    curves: TrainingCurves,
    monitor: str,
    mode: str,
    patience: int,
    backup_every_steps: int,
    max_minutes: float = 0.0,
    keep_checkpoints: int = 0,
) -> list[keras.callbacks.Callback]:
    """The callbacks of every `seq2seq train` run, in the order they must run.

    Args:
        output_dir: the run directory (history, logs, backup).
        dev_metric: writes `monitor` into the logs and keeps the best weights.
        curves: the training-curve plot of the run.
        monitor: the dev metric early stopping watches (e.g. `dev_bleu`).
        mode: `"max"` or `"min"`: which way `monitor` improves.
        patience: epochs without improvement before stopping.
        backup_every_steps: steps between backups (also one per epoch).
        max_minutes: wall-clock minutes of training before stopping (0: no limit).
        keep_checkpoints: epochs whose end weights are kept in `checkpoints/` (0: none).
    """
    epoch_checkpoints = (
        [EpochCheckpoints(output_dir / "checkpoints", keep_checkpoints)]
        if keep_checkpoints > 0
        else []
    )
    return [
        keras.callbacks.TerminateOnNaN(),
        TimeLimit(max_minutes),
        dev_metric,
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
        curves,
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience),
        keras.callbacks.TensorBoard(str(output_dir / "logs"), update_freq=50),
        *epoch_checkpoints,
        # Last, so an epoch counts as done only once its history row is written.
        BackupEveryStepsAndEpoch(
            str(output_dir / "backup"),
            save_freq=backup_every_steps,
            double_checkpoint=True,
            delete_checkpoint=False,  # a finished run asked for more epochs continues
        ),
    ]
