"""Fixtures shared by the tests: tiny synthetic corpora (text and speech), and tiny
models trained on them and exported, once per session: under pytest-xdist
(`scripts/test` runs two workers), the first worker to need one builds it and the
others reuse it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sentencepiece
import yaml
from filelock import FileLock

ONES_EN = "zero one two three four five six seven eight nine".split()
ONES_FR = "zéro un deux trois quatre cinq six sept huit neuf".split()
COLORS = {"red": "rouge", "green": "vert", "blue": "bleu", "black": "noir", "white": "blanc"}
TRANSLATE_CONFIG = "configs/test-translate-tiny.yaml"
ASR_CONFIG = "configs/test-asr-tiny.yaml"
THINGS = {"cat": "chat", "dog": "chien", "horse": "cheval", "bird": "oiseau"}


def synthetic_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """English-French pairs like ('the red cat sees three dogs', ...)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        color, thing = rng.choice(list(COLORS)), rng.choice(list(THINGS))
        number = rng.randrange(2, 10)
        other = rng.choice(list(THINGS))
        english = f"the {color} {thing} sees {ONES_EN[number]} {other}s ."
        french = f"le {THINGS[thing]} {COLORS[color]} voit {ONES_FR[number]} {THINGS[other]}s ."
        pairs.append((english, french))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> None:
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in pairs), encoding="utf-8")


def shared(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`tmp/NAME`, filled by `build(path)` once per test session, whichever worker
    process asks first: under pytest-xdist the workers share the parent of their
    temporary directories, and a file lock makes the others wait for the build.

    Args:
        tmp_path_factory: pytest's fixture.
        name: a relative path, unique per shared thing.
        build: fills the (not yet existing) directory it is given.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "shared" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    done = path.with_name(f"{path.name}.done")
    with FileLock(path.with_name(f"{path.name}.lock")):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # what a failed build left
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared en-fr corpus in the layout `seq2seq prepare translate` writes."""
    return shared(tmp_path_factory, "data/translate-en-fr", write_tiny_corpus)


def write_tiny_corpus(directory: Path) -> None:
    directory.mkdir()
    train = synthetic_pairs(600, seed=1)
    write_tsv(directory / "train.tsv", train)
    for name, seed in (("dev", 2), ("test-bible", 3), ("test-wesnoth", 4), ("dev-wesnoth", 5)):
        write_tsv(directory / f"{name}.tsv", synthetic_pairs(24, seed))
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([text for pair in train for text in pair]),
        model_prefix=str(directory / "spm"),
        vocab_size=64,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        user_defined_symbols=["<2en>", "<2fr>"],
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (directory / "manifest.json").write_text(json.dumps({"pair": "en-fr"}), encoding="utf-8")


def run_seq2seq(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Runs `python -m seq2seq ARGS...` and captures its output (as text unless
    `text=False`); other keyword arguments go to `subprocess.run`."""
    kwargs.setdefault("text", True)
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, timeout=timeout, **kwargs
    )


def train_tiny(config_path: str, data_dir: Path, output_dir: Path, *extra: str) -> None:
    """`seq2seq train` of a tiny test config on `data_dir`, into `output_dir`."""
    values = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    values["data"]["dir"] = str(data_dir)
    values["training"]["output_dir"] = str(output_dir)
    config = output_dir.with_name(f"{output_dir.name}.yaml")
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = run_seq2seq("train", str(config), *extra)
    assert result.returncode == 0, result.stderr[-3000:]


def export_tiny(run_dir: Path, base: Path, *extra: str) -> None:
    """`seq2seq export` of a run as version 1 of `base`, in this process (which has
    TensorFlow loaded already)."""
    from seq2seq.cli import main

    assert main(["export", "--run", str(run_dir), "--model-base-path", str(base), *extra]) == 0


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """A training run directory of the tiny config, trained for its two epochs (~30 s)."""
    return shared(
        tmp_path_factory, "runs/tiny", lambda path: train_tiny(TRANSLATE_CONFIG, tiny_corpus, path)
    )


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """A TF Serving model base directory holding `seq2seq export`'s version 1 of `tiny_run`."""
    return shared(
        tmp_path_factory, "saved_models/translate-en-fr", lambda path: export_tiny(tiny_run, path)
    )


# -- speech: a synthetic tone corpus (tests/asr_corpus.py) and a tiny model trained on it --


@pytest.fixture(scope="session")
def tiny_asr_corpus(tmp_path_factory) -> Path:
    """A prepared speech corpus in the layout `seq2seq prepare asr` writes."""
    from asr_corpus import write_corpus

    return shared(tmp_path_factory, "data/asr-en", write_corpus)


@pytest.fixture(scope="session")
def tiny_asr_run(tiny_asr_corpus, tmp_path_factory) -> Path:
    """A training run of configs/test-asr-tiny.yaml on the tone corpus (~1 min)."""
    return shared(
        tmp_path_factory,
        "runs/asr-tiny",
        lambda path: train_tiny(ASR_CONFIG, tiny_asr_corpus, path),
    )


@pytest.fixture(scope="session")
def tiny_asr_export(tiny_asr_run, tmp_path_factory) -> Path:
    """A TF Serving model base directory holding `seq2seq export`'s version 1 of
    `tiny_asr_run`, with CTC weight 0.5 and a language model of weight 0.3 for its beam
    searches (the run's are 0.3 and 0)."""
    return shared(
        tmp_path_factory,
        "saved_models/asr-en",
        lambda path: export_tiny(tiny_asr_run, path, "--ctc-weight", "0.5", "--lm-weight", "0.3"),
    )
