"""`seq2seq train` on a tiny corpus: it trains, keeps its best checkpoint,
plots its curves, resumes after an interruption, and decodes."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from seq2seq.cli import main
from seq2seq.config import load_config
from seq2seq.data.pipeline import (
    SubwordTokenizer,
    corpus_pair,
    encode_pairs,
    read_tsv,
    source_ids,
    training_batches,
)
from seq2seq.export.saved_model import load_run
from seq2seq.training import trainer
from seq2seq.training.callbacks import warm_start
from seq2seq.training.trainer import build_model

CONFIG = "configs/test-translate-tiny.yaml"


@pytest.fixture(scope="module")
def tiny_config(tiny_corpus, tmp_path_factory):
    values = yaml.safe_load(open(CONFIG, encoding="utf-8"))
    values["data"]["dir"] = str(tiny_corpus)
    values["training"]["output_dir"] = str(tmp_path_factory.mktemp("run") / "tiny")
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def run_train(config_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", "train", str(config_path), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tiny_config, tiny_run):
    """The config of a copy of `tiny_run`: `seq2seq train` of `tiny_config`, whose
    output directory the copy is (the tests below train it further)."""
    config = load_config(tiny_config)
    shutil.copytree(tiny_run, config.training.output_dir)
    return config


def history(output_dir):
    with open(output_dir / "history.csv", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def test_training_writes_checkpoint_history_plot_and_logs(trained):
    output = Path(trained.training.output_dir)
    for name in ("best.weights.h5", "training_curves.png", "config.yaml", "spm.model"):
        assert (output / name).is_file(), name
    assert any((output / "logs").rglob("*tfevents*"))
    rows = history(output)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0.0 <= float(r["dev_bleu"]) <= 100.0 for r in rows)
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    # Kept after the last epoch: a rerun asking for more epochs continues from it.
    assert (output / "backup" / "training_metadata.json").is_file()


def test_rerun_with_more_epochs_continues_where_it_stopped(trained, tiny_config):
    result = run_train(tiny_config, "--epochs", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    output = Path(trained.training.output_dir)
    assert [int(r["epoch"]) for r in history(output)] == [0, 1, 2]
    # training.keep_checkpoints: 2 keeps the last two epochs, numbered across the rerun.
    kept = sorted(path.name for path in (output / "checkpoints").iterdir())
    assert kept == ["epoch-002.weights.h5", "epoch-003.weights.h5"]


def test_killed_run_resumes_from_its_backup(tiny_corpus, tmp_path):
    values = yaml.safe_load(open(CONFIG, encoding="utf-8"))
    values["data"]["dir"] = str(tiny_corpus)
    values["training"].update(output_dir=str(tmp_path / "run"), epochs=30)
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "seq2seq", "train", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # kill -9 once an epoch is backed up
            if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no backup of epoch 1 within 5 minutes")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    backed_up = json.loads(metadata.read_text())["epoch"]  # epochs fully done
    result = run_train(config, "--epochs", str(backed_up + 1))
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [int(r["epoch"]) for r in history(tmp_path / "run")]
    # The rerun trains only the epoch that was cut short; at most the row of
    # an epoch killed between its history row and its backup is written twice.
    assert sorted(set(epochs)) == list(range(backed_up + 1))
    assert len(epochs) <= backed_up + 2
    assert epochs[-1] == backed_up


def test_init_from_starts_a_fresh_run_from_given_weights(trained, tiny_corpus, tmp_path):
    values = yaml.safe_load(open(CONFIG, encoding="utf-8"))
    values["data"]["dir"] = str(tiny_corpus)
    values["training"]["output_dir"] = str(tmp_path / "warm")
    config = tmp_path / "warm.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    weights = Path(trained.training.output_dir) / "best.weights.h5"
    result = run_train(config, "--init-from", str(weights), "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"initialized from {weights}" in result.stdout
    # Keras's warnings that do not apply: the fresh optimizer is meant, the dataset comes
    # shuffled, and an epoch of unknown length ends by running out
    for needless in ("Skipping variable loading", "shuffle=True", "ran out of data"):
        assert needless not in result.stderr, needless
    # Its first epoch starts where the trained run ended, far below a random start.
    cold = float(history(Path(trained.training.output_dir))[0]["loss"])
    assert float(history(tmp_path / "warm")[0]["loss"]) < cold


def test_init_from_an_export_loads_the_weights_it_was_exported_from(
    tiny_run, tiny_export, tmp_path
):
    # A model base directory, as shipped in saved_models/ (its highest version is taken).
    config = load_run(tiny_run)
    vocab_size = SubwordTokenizer(tiny_run / "spm.model").vocab_size
    exported, checkpoint = build_model(config, vocab_size), build_model(config, vocab_size)
    assert warm_start(exported, str(tiny_export), tmp_path / "fresh-run")
    checkpoint.load_weights(tiny_run / "best.weights.h5")
    for ours, theirs in zip(exported.weights, checkpoint.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def test_init_from_an_export_grows_the_encoder(tiny_run, tiny_export, tmp_path):
    # One more encoder layer than the export's: the trained layers are loaded and the new
    # one adds nothing yet, so the encoder's memory is the trained model's.
    config = load_run(tiny_run)
    vocab_size = SubwordTokenizer(tiny_run / "spm.model").vocab_size
    checkpoint = build_model(config, vocab_size)
    checkpoint.load_weights(tiny_run / "best.weights.h5")
    config.model.encoder_layers += 1
    grown = build_model(config, vocab_size)
    assert warm_start(grown, str(tiny_export), tmp_path / "fresh-run")
    source = np.array([[5, 9, 12, 7, 2], [8, 6, 2, 0, 0]], dtype="int32")
    np.testing.assert_array_equal(grown.encode(source)[0], checkpoint.encode(source)[0])
    assert not np.any(grown.encoder.rnns[-1].forward_layer.cell.kernel.numpy())


def test_init_from_a_bad_weights_file_is_a_one_line_error(tiny_config, tmp_path, capsys):
    not_weights = tmp_path / "notes.weights.h5"
    not_weights.write_text("not HDF5", encoding="utf-8")
    not_a_model = tmp_path / "empty-base"
    not_a_model.mkdir()
    for path in (tmp_path / "missing.weights.h5", not_weights, not_a_model):
        values = yaml.safe_load(open(tiny_config, encoding="utf-8"))
        values["training"]["output_dir"] = str(tmp_path / path.stem)
        config = tmp_path / f"{path.stem}.yaml"
        config.write_text(yaml.safe_dump(values), encoding="utf-8")
        # In this process: the error comes before any training.
        assert main(["train", str(config), "--init-from", str(path)]) == 2
        error = capsys.readouterr().err
        assert error.startswith("seq2seq train: ") and error.count("\n") == 1
        assert str(path) in error


def test_best_checkpoint_decodes_greedy_and_beam(trained):
    output = Path(trained.training.output_dir)
    tokenizer = SubwordTokenizer(output / "spm.model")
    model = build_model(trained, tokenizer.vocab_size)
    model.load_weights(output / "best.weights.h5")
    ids = source_ids(tokenizer, ["the red cat sees three dogs ."], "fr")
    source = np.array(ids, dtype=np.int32)
    greedy = model.search(source)
    beam = model.search(source, beam_size=3, n_best=2)
    assert tuple(greedy.ids.shape)[:2] == (1, 1)
    assert tuple(beam.ids.shape)[:2] == (1, 2)
    assert float(beam.scores[0, 0]) >= float(beam.scores[0, 1])


def test_mixed_bfloat16_policy_trains_in_bfloat16_with_float32_weights_and_logits(trained):
    output = Path(trained.training.output_dir)
    tokenizer = SubwordTokenizer(output / "spm.model")
    mixed_config = copy.deepcopy(trained)
    mixed_config.training.dtype_policy = "mixed_bfloat16"
    reference = build_model(trained, tokenizer.vocab_size)
    mixed = build_model(mixed_config, tokenizer.vocab_size)
    assert keras.config.dtype_policy().name == "float32"  # restored after building
    for model in (reference, mixed):
        model.load_weights(output / "best.weights.h5")
    assert mixed.encoder.compute_dtype == mixed.decoder.compute_dtype == "bfloat16"
    assert {v.dtype for v in mixed.trainable_variables} == {"float32"}
    sources, targets = encode_pairs(
        read_tsv(Path(trained.data.dir) / "train.tsv"),
        trained.data.directions,
        corpus_pair(trained.data.dir),
        tokenizer,
        trained.data.max_length,
    )
    inputs, labels = next(iter(training_batches(sources, targets, 512, 100, seed=0)))
    logits = mixed(inputs)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    expected = reference.test_on_batch(inputs, labels)
    assert mixed.test_on_batch(inputs, labels) == pytest.approx(expected, rel=0.02)
    before = [v.numpy() for v in mixed.trainable_variables]
    for _ in range(2):  # the warm-up's first learning rate is 0
        assert np.isfinite(mixed.train_on_batch(inputs, labels))
    after = mixed.trainable_variables
    assert not any(np.array_equal(v.numpy(), b) for v, b in zip(after, before, strict=True))
    assert {v.dtype for v in after} == {"float32"}


def test_bad_config_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  gru: cudnn\n", encoding="utf-8")
    result = run_train(bad)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "model.gru" in result.stderr
    missing = run_train(tmp_path / "missing.yaml")
    assert missing.returncode == 2 and "missing.yaml" in missing.stderr


def test_a_negative_no_repeat_ngram_size_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("decoding:\n  no_repeat_ngram_size: -1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.yaml: decoding.no_repeat_ngram_size must not"):
        load_config(bad)
    bad.write_text("task: asr\ndecoding:\n  no_repeat_ngram_size: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):  # translators only
        load_config(bad)


@pytest.mark.parametrize(
    ("section", "policy", "choices"),
    [
        ("training", "mixed_float16", "float32, mixed_bfloat16"),
        ("decoding", "mixed_bfloat16", "float32, bfloat16"),  # an export's: no per-step casts
    ],
)
def test_an_unknown_dtype_policy_names_the_key_and_the_choices(tmp_path, section, policy, choices):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{section}:\n  dtype_policy: {policy}\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=rf"bad.yaml: {section}.dtype_policy must be one of {choices}, "
    ):
        load_config(bad)


def test_a_mixed_policy_on_a_cpu_without_bfloat16_units_is_warned_of(monkeypatch, tmp_path):
    assert trainer.has_bfloat16_units() == any(
        flag in Path("/proc/cpuinfo").read_text().split() for flag in ("amx_bf16", "avx512_bf16")
    )
    monkeypatch.setattr(trainer, "has_bfloat16_units", lambda: False)
    assert "emulated" in trainer.emulated_precision_warning("mixed_bfloat16")
    assert trainer.emulated_precision_warning("float32") is None
    monkeypatch.setattr(trainer, "has_bfloat16_units", lambda: True)
    assert trainer.emulated_precision_warning("mixed_bfloat16") is None


def test_a_negative_keep_checkpoints_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  keep_checkpoints: -2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.yaml: training.keep_checkpoints must not"):
        load_config(bad)


def test_bad_time_limit_is_a_one_line_error(capsys):
    assert main(["train", CONFIG, "--max-minutes", "-5"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq train: --max-minutes: training.max_minutes") and (
        error.count("\n") == 1
    )


def test_time_limit_ends_the_epoch_at_the_step_that_crosses_it():
    import keras

    from seq2seq.training.callbacks import TimeLimit

    seconds = iter(range(1000))  # the clock moves one second per look
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    ended = []
    model.fit(
        np.zeros((40, 3)),
        np.zeros(40),
        batch_size=4,
        epochs=3,
        verbose=0,
        callbacks=[
            TimeLimit(5 / 60, clock=lambda: float(next(seconds))),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch)),
        ],
    )
    assert int(model.optimizer.iterations) == 5 and ended == [0]  # of 3 epochs of 10 steps
