"""The character vocabulary of the speech recognizer: a fixed, tiny alphabet.

Ids: 0 is padding (and the CTC blank), 1 end of sentence, 2 beginning of sentence,
then space, apostrophe and `a`-`z`. A transcript is lower-cased and reduced to these
characters by `normalize_transcript`; the model only ever writes them, so what it
writes needs no further clean-up. No tokenizer model to ship: the exported graph turns
ids back into text with a constant table.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
BLANK_ID = PAD_ID
"""CTC's blank shares id 0 with padding: neither is ever a target character."""

SPECIALS = ("<pad>", "</s>", "<s>")
CHARACTERS = " '" + "abcdefghijklmnopqrstuvwxyz"
VOCABULARY = (*SPECIALS, *CHARACTERS)
"""Every token, by id: `VOCABULARY[id]`."""
VOCAB_SIZE = len(VOCABULARY)
FIRST_CHARACTER_ID = len(SPECIALS)

_IDS = {character: index for index, character in enumerate(VOCABULARY) if index >= len(SPECIALS)}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})
_OTHER = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r" +")


def normalize_transcript(text: str) -> str:
    """Lower-cases `text`, strips accents, and keeps only the vocabulary's characters.

    Typographic apostrophes become `'`; every other character outside the vocabulary
    (digits, punctuation, hyphens) becomes a space; runs of spaces become one.

    >>> normalize_transcript("Don’t  PANIC -- it's 4 o'clock, Zoë!")
    "don't panic it's o'clock zoe"
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return _SPACES.sub(" ", _OTHER.sub(" ", text)).strip()


def encode(text: str) -> list[int]:
    """Character ids of a normalized transcript (no BOS/EOS).

    >>> encode("hi 'a")
    [12, 13, 3, 4, 5]
    """
    return [_IDS[character] for character in normalize_transcript(text)]


def decode(ids) -> str:
    """Text of character ids; stops at the first EOS, skips padding and BOS.

    >>> decode([12, 13, 3, 4, 5, 1, 9])
    "hi 'a"
    """
    characters = []
    for token in ids:
        token = int(token)
        if token == EOS_ID:
            break
        if token >= FIRST_CHARACTER_ID:
            characters.append(VOCABULARY[token])
    return "".join(characters)


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """jiwer's word and character error rates of `hypotheses` against `references`, in
    percent, both compared as `normalize_transcript` makes them (what the model is
    trained on and writes). Dev WER in training and `seq2seq evaluate` use this.

    Args:
        references: the reference transcripts, one per hypothesis.
        hypotheses: the model's transcripts.

    Returns:
        `(wer, cer)`; over 100 when the hypotheses insert more than they match.

    >>> error_rates(["The cat!"], ["the hat"])
    (50.0, 14.285714285714285)
    """
    import jiwer  # only here: the vocabulary itself needs none of it

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    references = [normalize_transcript(text) for text in references]
    hypotheses = [normalize_transcript(text) for text in hypotheses]
    return 100.0 * jiwer.wer(references, hypotheses), 100.0 * jiwer.cer(references, hypotheses)
