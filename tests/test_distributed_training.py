"""`seq2seq train` with two workers under MultiWorkerMirroredStrategy (`TF_CONFIG`), on
127.0.0.1: both finish, take the same number of steps on different batches, end with
identical weights and histories, and only the chief writes the run's own files."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import sentencepiece
import yaml

CONFIG = "configs/test-translate-tiny.yaml"
TIMEOUT = 240  # seconds for both workers; they take 75-105 s on 2 busy cores


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all held at once, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(config: Path, logs: Path, count: int, *extra: str) -> list[str]:
    """Runs `seq2seq train CONFIG` as `count` workers of one cluster and returns
    their outputs. Fails (after killing them all) as soon as one fails, or when they
    are not all done within TIMEOUT: a worker left alone in a collective never ends."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    processes, paths = [], []
    try:
        for index in range(count):
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
                "CUDA_VISIBLE_DEVICES": "",
                "TF_CPP_MIN_LOG_LEVEL": "2",
                # Two processes share the CPUs: one intra-op thread each.
                "TF_NUM_INTRAOP_THREADS": "1",
                "OMP_NUM_THREADS": "1",
            }
            paths.append(logs / f"worker-{index}.log")
            with open(paths[-1], "w", encoding="utf-8") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "seq2seq", "train", str(config), *extra],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
        deadline = time.monotonic() + TIMEOUT
        while any(p.poll() is None for p in processes):
            failed = [i for i, p in enumerate(processes) if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                why = f"worker {failed[0]} failed" if failed else f"not done in {TIMEOUT} s"
                pytest.fail(f"{why}:\n{tails(paths)}")
            time.sleep(0.5)
        assert all(p.returncode == 0 for p in processes), tails(paths)
        return [path.read_text(encoding="utf-8", errors="replace") for path in paths]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def tails(paths: list[Path]) -> str:
    return "\n".join(
        f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}" for path in paths
    )


def weights(path: Path) -> dict[str, np.ndarray]:
    """Every array of a Keras `.weights.h5` file, by its path in the file."""
    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(
            lambda name, item: (
                arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None
            )
        )
    return arrays


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def test_two_workers_train_in_step_and_only_the_chief_writes_the_run(tiny_corpus, tmp_path):
    values = yaml.safe_load(Path(CONFIG).read_text(encoding="utf-8"))
    values["data"]["dir"] = str(tiny_corpus)
    output = tmp_path / "run"
    values["training"]["output_dir"] = str(output)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")

    outputs = run_workers(config, tmp_path, 2, "--epochs", "1")

    # The same number of batches on each worker, each its own half of one pass.
    shares = [re.search(r"worker (\d) of 2: (\d+) of (\d+) batches", out) for out in outputs]
    assert all(shares), outputs[0][-3000:]
    assert [int(s.group(1)) for s in shares] == [0, 1]
    steps, total = {int(s.group(2)) for s in shares}, {int(s.group(3)) for s in shares}
    assert len(steps) == 1 and len(total) == 1 and steps == {total.pop() // 2}, shares

    # The chief (worker 0) writes the run; worker 1 only its own folder in it.
    worker = output / "workers" / "worker-1"
    for name in ("config.yaml", "spm.model", "best.weights.h5", "training_curves.png"):
        assert (output / name).is_file(), name
        assert not (worker / name).exists(), name
    assert any((output / "logs").rglob("*tfevents*"))
    assert sorted(p.name for p in (output / "workers").iterdir()) == ["worker-1"]

    # Mirrored variables, all-reduced gradients: the same weights and optimizer state
    # at the end of the epoch (each worker's own backup), the same global loss, and
    # the chief's dev BLEU on both.
    chief, other = (weights(d / "backup" / "latest.weights.h5") for d in (output, worker))
    assert chief.keys() == other.keys() and len(chief) > 10
    for name, array in chief.items():
        np.testing.assert_array_equal(array, other[name], err_msg=name)
    rows = history(output)
    assert rows == history(worker)
    assert [r["epoch"] for r in rows] == ["0"]
    assert 0.0 <= float(rows[0]["dev_bleu"]) <= 100.0
    # The mean loss per token, as on one worker: below that of a uniform guess, where
    # training starts (a loss summed over the workers, not averaged, is twice as big).
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(output / "spm.model"))
    assert 0.0 < float(rows[0]["loss"]) < math.log(vocab.get_piece_size())
    for d in (output, worker):
        metadata = json.loads((d / "backup" / "training_metadata.json").read_text())
        assert metadata["epoch"] == 1
