"""Short phrases to synthesize instead of sentences: `seq2seq prepare asr --phrases`.

Prompts, commands and answers are often a word or two ("nine", "press star", "third
floor") and under a second long, which no sentence of the text sources is: a corpus
of sentences only never shows a model an isolated word between silences. These
phrases are spans of one to three consecutive words of those sentences, and numbers
as people say them: amounts, ordinals, years and digit strings (a PIN, an extension).
They are text like the sentences', spoken and normalized by the same rules
(`seq2seq.data.spoken.spoken_form`: "1937" is said "nineteen thirty seven", "0415"
digit by digit), and kept out of the evaluation transcripts the same way.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator

from seq2seq.data.spoken import ordinal_words

MAX_WORDS = 3
"""The longest span of a sentence's words."""
NUMBER_EVERY = 4
"""One number after every this many spans."""
SECONDS = (0.3, 20.0)
"""The shortest and longest synthesized phrase kept (sentences: 1 to 20 s)."""

_WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def word_spans(sentences: Iterable[str], rng: random.Random) -> Iterator[str]:
    """A span of 1 to `MAX_WORDS` consecutive words of each sentence that has words,
    its length uniform; the words without the punctuation around them.

    >>> list(word_spans(["Go north, then east!", "...", "Yes."], random.Random(3)))
    ['north', 'Yes']
    """
    for sentence in sentences:
        words = _WORD.findall(sentence)
        if not words:
            continue
        length = rng.randint(1, min(MAX_WORDS, len(words)))
        start = rng.randrange(len(words) - length + 1)
        yield " ".join(words[start : start + length])


def number_text(rng: random.Random) -> str:
    """A number as it would be written, in one of four kinds alike: an amount of 1 to
    6 digits (log-uniform), an ordinal up to 100 (in words: engines and `spoken_form`
    do not read "21st"), a year, or 3 to 7 digits read one by one (written with spaces
    between them).

    >>> rng = random.Random(0)
    >>> [number_text(rng) for _ in range(6)]
    ['0 4 8 7 6 4', '9 3 8 2 4', 'ninety seventh', '5131', '1937', '1925']
    """
    kind = rng.randrange(4)
    if kind == 0:
        return str(int(10 ** rng.uniform(0, 6)))
    if kind == 1:
        return ordinal_words(rng.randint(1, 100))
    if kind == 2:
        return str(rng.randint(1900, 2030))
    return " ".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 7)))


def short_phrases(sentences: Iterable[str], seed: int) -> Iterator[str]:
    """`word_spans` of `sentences`, with a `number_text` after every `NUMBER_EVERY`
    spans; the same phrases for the same sentences and seed."""
    rng = random.Random(f"phrases-{seed}")
    for index, span in enumerate(word_spans(sentences, rng), 1):
        yield span
        if index % NUMBER_EVERY == 0:
            yield number_text(rng)
