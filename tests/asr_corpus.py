"""A tiny synthetic speech corpus that a tiny model learns in a minute: every character
is a tone of its own pitch, so the audio of a transcript is a tune.

Each character sounds for about 70 ms (a sine at its own frequency, with a softer
third harmonic and short fades), followed by a 20 ms gap; a space is 90 ms of near
silence. Utterances vary in speed, pitch (a few percent) and loudness, and get a
little white noise, so that the model must generalize a bit. All of it is
deterministic given a seed. The corpus is written in the layout of `seq2seq prepare
asr`: `train.tsv`, `dev.tsv`, ... with `path<TAB>transcript<TAB>seconds<TAB>voice`
and 16 kHz mono 16-bit WAV files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from audio.io import to_wav_bytes
from seq2seq.data.characters import CHARACTERS

SAMPLE_RATE = 16000
WORDS = "a cat dog sees the red big hat it's on".split()
_LETTERS = [c for c in CHARACTERS if c != " "]
# Log-spaced pitches from 250 Hz to 3.5 kHz, in an order that puts neighbouring
# letters of the alphabet far apart.
_PITCHES = np.geomspace(250.0, 3500.0, len(_LETTERS))
FREQUENCIES = {
    letter: float(_PITCHES[(index * 11) % len(_LETTERS)]) for index, letter in enumerate(_LETTERS)
}


def synthesize(text: str, seed: int) -> np.ndarray:
    """The tune of `text` (characters of `FREQUENCIES` and spaces), float32 16 kHz."""
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.85, 1.15)
    pitch = rng.uniform(0.97, 1.03)
    gain = rng.uniform(0.2, 0.6)
    pieces = [np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLE_RATE), np.float32)]
    for character in text:
        if character == " ":
            pieces.append(np.zeros(int(0.09 * speed * SAMPLE_RATE), np.float32))
            continue
        length = int(0.07 * speed * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        frequency = FREQUENCIES[character] * pitch
        tone = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(2 * np.pi * 3 * frequency * t)
        fade = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / 80.0)
        pieces.append((tone * fade).astype(np.float32))
        pieces.append(np.zeros(int(0.02 * speed * SAMPLE_RATE), np.float32))
    pieces.append(np.zeros(int(rng.uniform(0.05, 0.15) * SAMPLE_RATE), np.float32))
    audio = gain * np.concatenate(pieces) / 1.3
    audio += rng.normal(0.0, 0.003, len(audio))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def sentences(count: int, seed: int, max_words: int = 3) -> list[str]:
    """Random sentences of 1 to `max_words` words of `WORDS`."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, max_words))) for _ in range(count)]


def write_split(directory: Path, name: str, texts: list[str], seed: int) -> list[Path]:
    """Writes `name.tsv` and its WAV files under `directory/wav/name/`; returns the paths."""
    wav_dir = directory / "wav" / name
    wav_dir.mkdir(parents=True, exist_ok=True)
    rows, paths = [], []
    for index, text in enumerate(texts):
        audio = synthesize(text, seed * 100003 + index)
        path = wav_dir / f"{index:04d}.wav"
        path.write_bytes(to_wav_bytes(audio, SAMPLE_RATE))
        seconds = len(audio) / SAMPLE_RATE
        rows.append(f"{path.relative_to(directory)}\t{text}\t{seconds:.3f}\ttones-{index % 3}\n")
        paths.append(path)
    (directory / f"{name}.tsv").write_text(
        "path\ttranscript\tseconds\tvoice\n" + "".join(rows), encoding="utf-8"
    )
    return paths


def write_corpus(directory: Path, train: int = 240, dev: int = 24) -> Path:
    """A corpus in the layout of `seq2seq prepare asr` (train, dev, test-synthetic)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_split(directory, "train", sentences(train, seed=1), seed=1)
    write_split(directory, "dev", sentences(dev, seed=2), seed=2)
    write_split(directory, "test-synthetic", sentences(dev, seed=3), seed=3)
    # The language model's text: more sentences of the same words, as `lm.txt` is.
    lm_text = "".join(f"{sentence}\n" for sentence in sentences(4 * train, seed=4))
    (directory / "lm.txt").write_text(lm_text, encoding="utf-8")
    manifest = {"sample_rate": SAMPLE_RATE, "synthetic": "tones", "splits": ["train", "dev"]}
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory
