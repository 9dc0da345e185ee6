"""`seq2seq train` on several machines: data parallelism with
`tf.distribute.MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster.

Every worker runs the same command with its own `TF_CONFIG` (same `cluster`, its own
`task`). The variables are mirrored and the gradients all-reduced, so every worker
holds the same weights after every step; what has to be kept in step besides is here:

- Data: each worker trains on batches of its own, as many per epoch as every other
  worker, so that no worker waits in an all-reduce for a step another never takes.
  A step takes one batch per worker: N workers train on N times `batch_tokens`
  (`batch_seconds`) per step, in 1/N of the steps per epoch. The translator's
  workers build the same shuffled, length-bucketed batches and take every N-th one
  (`shard_batches`); the speech workers load only their own share of the files and
  take a fixed number of batches per epoch from it (`fixed_steps`).
- Files: the chief (the `chief` task, else worker 0) writes the run's files into
  `training.output_dir`; worker N writes its own history, logs and backups into
  `output_dir/workers/worker-N/` (`Worker.run_dir`), never the chief's files.
- Dev scores: only the chief decodes the dev set; its score is sent to every worker
  (`OnChief`), so early stopping and best-checkpoint keeping decide alike.
- Resuming: each worker restores its own backup, then all take the chief's weights,
  optimizer state and epoch (`SyncFromChief`), so a stale or missing backup on one
  worker cannot put it out of step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf


def distribution_strategy() -> tf.distribute.Strategy:
    """Multi-worker data parallelism when `TF_CONFIG` names a cluster, else the
    default (no-op) strategy. Call it before anything else runs a TensorFlow op:
    collective ops can only be set up at program start-up."""
    if json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_distributed(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` mirrors variables (not the default strategy of no `TF_CONFIG`)."""
    return isinstance(
        strategy, (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.MirroredStrategy)
    )


@dataclass(frozen=True)
class Worker:
    """This process's place in the cluster: `index` 0 is the chief, of `count`."""

    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def run_dir(self, output_dir: Path) -> Path:
        """Where this worker writes: `output_dir` for the chief, else
        `output_dir/workers/worker-N`."""
        if self.is_chief:
            return Path(output_dir)
        return Path(output_dir) / "workers" / f"worker-{self.index}"


def this_worker(strategy: tf.distribute.Strategy) -> Worker:
    """This process's `Worker` in the cluster of `strategy` (the chief task, if any,
    comes first, then the workers in `TF_CONFIG` order)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec() if resolver is not None else None
    if not spec or not spec.jobs:
        return Worker()
    chiefs = spec.num_tasks("chief") if "chief" in spec.jobs else 0
    workers = spec.num_tasks("worker") if "worker" in spec.jobs else 0
    if resolver.task_type == "chief":
        return Worker(0, chiefs + workers)
    if resolver.task_type != "worker":
        raise ValueError(f"TF_CONFIG: task type must be chief or worker, got {resolver.task_type}")
    return Worker(chiefs + resolver.task_id, chiefs + workers)


def shard_batches(dataset: tf.data.Dataset, batches: int, worker: Worker) -> tf.data.Dataset:
    """`worker`'s share of `dataset`, which yields `batches` batches per pass and the
    same ones on every worker (same seed): every `count`-th batch, `batches // count`
    of them on every worker (the last `batches % count` of each pass are left out),
    so that no worker waits in an all-reduce for a step another never takes."""
    steps = batches // worker.count
    if steps < 1:
        raise ValueError(f"{batches} batch(es) per epoch cannot feed {worker.count} workers")
    dataset = dataset.shard(worker.count, worker.index).take(steps)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps))


def fixed_steps(dataset: tf.data.Dataset, steps: int) -> tf.data.Dataset:
    """`steps` batches per epoch from `dataset`, repeated as needed (each pass newly
    shuffled): the same number on every worker whatever its share yields."""
    return dataset.repeat().take(steps).apply(tf.data.experimental.assert_cardinality(steps))


def broadcast_from_chief(
    strategy: tf.distribute.Strategy, values: list[tf.Tensor | float]
) -> list[tf.Tensor]:
    """The chief's `values` on every worker (one all-reduce in which only the chief's
    first replica contributes; all workers must call this together, with values of
    the same shapes and dtypes). Values travel as float64: exact for float32 and for
    integers below 2**53."""
    tensors = [tf.convert_to_tensor(value) for value in values]
    if not is_distributed(strategy) or not tensors:
        return tensors
    dtypes = [t.dtype for t in tensors]
    carried = [tf.cast(t, tf.float64) for t in tensors]

    def replica_fn(values):
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        mine = [tf.where(first, value, tf.zeros_like(value)) for value in values]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

    reduced = tf.function(lambda values: strategy.run(replica_fn, args=(values,)))(carried)
    local = [strategy.experimental_local_results(value)[0] for value in reduced]
    return [tf.cast(value, dtype) for value, dtype in zip(local, dtypes, strict=True)]


class OnChief(keras.callbacks.Callback):
    """Runs `callback`'s `on_train_begin` and `on_epoch_end` (a dev-set scorer, a plot)
    on the chief only and copies the `keys` it writes into the epoch logs to every
    worker, so that callbacks after it (early stopping, the CSV history) see the same
    values everywhere and no worker decodes the dev set for nothing.

    Args:
        callback: the wrapped callback.
        strategy: the training strategy.
        keys: epoch-log entries `callback` writes (floats). Default: none.
    """

    def __init__(self, callback, strategy: tf.distribute.Strategy, keys=()):
        super().__init__()
        self.callback = callback
        self.strategy = strategy
        self.keys = tuple(keys)
        self.chief = this_worker(strategy).is_chief

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        if self.chief:
            self.callback.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.chief:
            self.callback.on_epoch_end(epoch, logs)
        if self.keys:
            mine = [float(logs.get(key, 0.0)) if self.chief else 0.0 for key in self.keys]
            chiefs = broadcast_from_chief(self.strategy, mine)
            logs.update({key: float(value) for key, value in zip(self.keys, chiefs, strict=True)})


class SyncFromChief(keras.callbacks.Callback):
    """At the start of training, gives every worker the chief's weights, optimizer
    state and first epoch; at the end, waits for every worker to be done, so no
    worker leaves while another still writes its files. Goes last in the list (after
    `BackupAndRestore`), so that a resumed run continues from the chief's backup on
    every worker."""

    def __init__(self, strategy: tf.distribute.Strategy):
        super().__init__()
        self.strategy = strategy

    def on_train_begin(self, logs=None):
        model = self.model
        variables = [*model.weights, *model.optimizer.variables]
        epoch = float(getattr(model, "_initial_epoch", None) or 0)  # set by BackupAndRestore
        values = broadcast_from_chief(self.strategy, [epoch, *(v.value for v in variables)])
        for variable, value in zip(variables, values[1:], strict=True):
            variable.assign(value)
        model._initial_epoch = int(values[0]) or None

    def on_train_end(self, logs=None):
        broadcast_from_chief(self.strategy, [0.0])  # a barrier


def fit(model: keras.Model, strategy: tf.distribute.Strategy, batches: tf.data.Dataset, **kwargs):
    """`model.fit(batches, **kwargs)` for a model built in `strategy.scope()`, with
    `batches` this worker's own: each of its batches is one replica's batch of a step.
    Under a distributed strategy, `SyncFromChief` is added after `kwargs["callbacks"]`.

    Keras 3's `fit` needs three fixes under MultiWorkerMirroredStrategy, made here for
    this call only:
    - Before training it pulls a batch through the distributed dataset and averages
      it over all replicas to build the loss, metrics and optimizer. That fails for
      dict inputs (keras-team/keras#20329) and needs the first batch to have the same
      shape on every worker, which bucketed batches do not: here they are built from
      this worker's own first batch instead.
    - It averages each step's logs over the workers along axis 0, which scalars do not
      have ("Invalid reduction dimension 0"): here the train step returns them with
      one, so the per-step logs are the mean over all workers.
    - Each replica's loss must be divided by the number of replicas, so that the
      all-reduced (summed) gradients are the mean over the global batch. Keras does
      that only inside a `keras.losses.Loss` that returns one value per example;
      `SmoothedCrossEntropy` returns one per batch, and the `Transcriber` adds its CTC
      loss in its own `compute_loss`: here the model's total loss is divided instead.
      (Otherwise the gradients are N times too large, which global-norm clipping
      feels, and the logged loss N times too large.)
    """
    if not is_distributed(strategy):
        return model.fit(batches, **kwargs)
    # Last, after the backup's restore: every worker continues from the chief's state.
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), SyncFromChief(strategy)]
    # Each worker's batches as they are: no auto-sharding, no splitting into replicas.
    per_worker = strategy.distribute_datasets_from_function(lambda context: batches)
    first = next(iter(batches))
    build, step, compute_loss = model._maybe_symbolic_build, model.train_step, model.compute_loss
    replicas = strategy.num_replicas_in_sync

    def train_step(data):
        logs = step(data)
        return {
            name: tf.reshape(value, [1]) if tf.is_tensor(value) and value.shape.rank == 0 else value
            for name, value in logs.items()
        }

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=first)
    model.train_step = train_step
    model.compute_loss = lambda *args, **kwargs: compute_loss(*args, **kwargs) / replicas
    try:
        return model.fit(per_worker, **kwargs)
    finally:
        del model._maybe_symbolic_build
        del model.train_step
        del model.compute_loss
