"""Fixtures shared by the translation tests: a tiny synthetic corpus, and a tiny model
trained on it and exported once per session."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece
import yaml

ONES_EN = "zero one two three four five six seven eight nine".split()
ONES_FR = "zéro un deux trois quatre cinq six sept huit neuf".split()
COLORS = {"red": "rouge", "green": "vert", "blue": "bleu", "black": "noir", "white": "blanc"}
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


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared en-fr corpus in the layout `seq2seq prepare translate` writes."""
    directory = tmp_path_factory.mktemp("data") / "translate-en-fr"
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
    return directory


def run_seq2seq(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Runs `python -m seq2seq ARGS...` and captures its output (as text unless
    `text=False`); other keyword arguments go to `subprocess.run`."""
    kwargs.setdefault("text", True)
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, timeout=timeout, **kwargs
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """A training run directory of the tiny config, trained for one epoch (~20 s)."""
    values = yaml.safe_load(Path("configs/test-translate-tiny.yaml").read_text(encoding="utf-8"))
    output_dir = tmp_path_factory.mktemp("runs") / "tiny"
    values["data"]["dir"] = str(tiny_corpus)
    values["training"]["output_dir"] = str(output_dir)
    config = tmp_path_factory.mktemp("configs") / "tiny-run.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = run_seq2seq("train", str(config), "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """A TF Serving model base directory holding `seq2seq export`'s version 1 of `tiny_run`."""
    from seq2seq.cli import main  # in this process, which has TensorFlow loaded already

    base = tmp_path_factory.mktemp("saved_models") / "translate-en-fr"
    assert main(["export", "--run", str(tiny_run), "--model-base-path", str(base)]) == 0
    return base


# -- speech: a synthetic tone corpus (tests/asr_corpus.py) and a tiny model trained on it --


@pytest.fixture(scope="session")
def tiny_asr_corpus(tmp_path_factory) -> Path:
    """A prepared speech corpus in the layout `seq2seq prepare asr` writes."""
    from asr_corpus import write_corpus

    return write_corpus(tmp_path_factory.mktemp("data") / "asr-en")


@pytest.fixture(scope="session")
def tiny_asr_run(tiny_asr_corpus, tmp_path_factory) -> Path:
    """A training run of configs/test-asr-tiny.yaml on the tone corpus (~1 min)."""
    values = yaml.safe_load(Path("configs/test-asr-tiny.yaml").read_text(encoding="utf-8"))
    output_dir = tmp_path_factory.mktemp("runs") / "asr-tiny"
    values["data"]["dir"] = str(tiny_asr_corpus)
    values["training"]["output_dir"] = str(output_dir)
    config = tmp_path_factory.mktemp("configs") / "asr-tiny.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    result = run_seq2seq("train", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir


@pytest.fixture(scope="session")
def tiny_asr_export(tiny_asr_run, tmp_path_factory) -> Path:
    """A TF Serving model base directory holding `seq2seq export`'s version 1 of
    `tiny_asr_run`."""
    from seq2seq.cli import main  # in this process, which has TensorFlow loaded already

    base = tmp_path_factory.mktemp("saved_models") / "asr-en"
    assert main(["export", "--run", str(tiny_asr_run), "--model-base-path", str(base)]) == 0
    return base
