"""A run killed in the middle of an epoch resumes where its backup was written: it
trains the rest of that epoch, not the whole epoch again, and a second kill in the
resumed epoch still knows which epoch it was."""

from __future__ import annotations

import contextlib
import functools
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.training.callbacks import (
    BackupEveryStepsAndEpoch,
    TimeLimit,
    fit_resuming,
    unknown_epoch_length_expected,
)

BATCHES = 10  # a batch per step, 10 steps an epoch


class KilledError(Exception):
    pass


class KillAt(keras.callbacks.Callback):
    """Raises at the end of the `step`-th training step of this `fit` (1-based)."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.steps = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.step:
            raise KilledError


class Progress(keras.callbacks.Callback):
    """The steps trained and the epochs ended in one `fit_resuming`. (Not the
    optimizer's iterations: Keras counts one more at the end of each epoch of a
    dataset of unknown length, the step that finds it exhausted.)"""

    def __init__(self):
        super().__init__()
        self.steps = 0
        self.ended: list[int] = []
        self.began: list[str] = []  # as the progress bar shows them: "Epoch 2/3"

    def on_epoch_begin(self, epoch, logs=None):
        self.began.append(f"{epoch + 1}/{self.params['epochs']}")

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self.ended.append(epoch)


def batches(known_length: bool) -> tf.data.Dataset:
    """One epoch of batches, of known length or not (bucketed batches are not)."""
    data = tf.data.Dataset.from_tensor_slices((np.ones((BATCHES, 2, 3)), np.zeros((BATCHES, 2))))
    if not known_length:
        data = data.filter(lambda x, y: True)
    return data


def run(backup_dir, known_length: bool, kill_after: int | None, epochs: int = 3):
    """A fresh process's `seq2seq train`: a new model and callbacks, resumed from
    `backup_dir` if it holds a backup; killed after `kill_after` steps of this run."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = BackupEveryStepsAndEpoch(
        str(backup_dir), save_freq=2, double_checkpoint=True, delete_checkpoint=False
    )
    progress = Progress()
    callbacks = [progress, backup, *([KillAt(kill_after)] if kill_after else [])]
    try:
        fit = functools.partial(model.fit, verbose=0)
        fit_resuming(fit, batches(known_length), callbacks, epochs)
    except KilledError:
        pass
    metadata = json.loads((backup_dir / "training_metadata.json").read_text())
    return progress, metadata


@pytest.mark.parametrize("known_length", [True, False], ids=["known-length", "unknown-length"])
def test_a_run_killed_mid_epoch_trains_only_the_rest_of_that_epoch(tmp_path, known_length):
    progress, metadata = run(tmp_path, known_length, kill_after=BATCHES + 7)
    assert progress.ended == [0]
    # backed up every 2 steps: after 6 of epoch 2's batches, the 7th was lost
    assert metadata["epoch"] == 1 and metadata["batches_done"] == 6

    # KilledError again 3 steps into the resumed epoch: still epoch 2 (Keras's own callback
    # would record epoch 0 there), now 8 batches in.
    progress, metadata = run(tmp_path, known_length, kill_after=3)
    assert progress.ended == [] and metadata["epoch"] == 1 and metadata["batches_done"] == 8

    progress, metadata = run(tmp_path, known_length, kill_after=None)
    # the last 2 batches of epoch 2, then epoch 3 whole (not cut to epoch 2's rest)
    assert progress.ended == [1, 2] and progress.steps == 2 + BATCHES
    assert progress.began == ["2/3", "3/3"]
    assert metadata == {"epoch": 3, "batch": 0, "batches_done": 0}


def test_a_time_limit_in_the_rest_of_an_epoch_ends_the_run(tmp_path):
    run(tmp_path, known_length=False, kill_after=BATCHES + 4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    backup = BackupEveryStepsAndEpoch(str(tmp_path), save_freq=2, delete_checkpoint=False)
    seconds = iter(range(1000))  # the clock moves one second per look
    limit = TimeLimit(3 / 60, clock=lambda: float(next(seconds)))
    progress = Progress()
    callbacks = [limit, progress, backup]
    fit_resuming(functools.partial(model.fit, verbose=0), batches(False), callbacks, epochs=3)
    # 3 steps of the rest of epoch 2 (from its 5th batch), and no epoch 3
    assert progress.ended == [1] and progress.steps == 3


@pytest.mark.parametrize("quiet", [False, True], ids=["keras", "ours"])
def test_the_end_of_an_epoch_of_unknown_length_is_not_reported_as_running_out(quiet):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with unknown_epoch_length_expected() if quiet else contextlib.nullcontext():
            model.fit(batches(known_length=False), epochs=2, verbose=0)
    ran_out = [w for w in caught if "ran out of data" in str(w.message)]
    # Keras 3.15 warns at the end of every epoch (shown once by Python's default
    # filter), though both were whole; ours says nothing
    assert bool(ran_out) is not quiet
