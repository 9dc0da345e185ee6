"""The Wesnoth corpus: English-French game text from Debian's Wesnoth 1.16 packages.

`wesnoth-1.16-data` and the campaign packages install the French translation catalogs
(`*.mo`) of the game's dialogue, unit descriptions, help and interface text. Each
catalog maps an English message to its French translation. Many messages are
templates (`$variables`, `{macros}`, `a|b` alternatives) or markup; those are
dropped or stripped so that only plain sentences remain.
"""

from __future__ import annotations

import gettext
import html
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from seq2seq.data import DataError
from seq2seq.data.packages import apt_install

LOCALE_DIR = Path("/usr/share/games/wesnoth/1.16/locale/fr/LC_MESSAGES")
PACKAGES = (
    "wesnoth-1.16-data",
    *(
        f"wesnoth-1.16-{campaign}"
        for campaign in "did dm dw ei httt l low nr sof sota sotbe thot trow tsg ttb utbs".split()
    ),
)

# Formatting tags whose text is shown as is: removed, their content kept.
_FORMAT_TAG = re.compile(r"</?(?:b|i|u|s|tt|big|small|span|bold|italic|header|format)\b[^>]*>")
# The help browser's tags hold their shown text in a `text='...'` attribute.
_TEXT_ATTRIBUTE = re.compile(r"<(bold|italic|header|ref)>[^<]*?text='((?:\\'|[^'])*)'[^<]*</\1>")
_IMAGE = re.compile(r"<img>.*?</img>")
# Substitutions, macros, alternatives, WML tags and attributes, printf formats.
_TEMPLATE = re.compile(r"[$@|{}\[\]<>=]|%[a-zA-Z]")
# Wesnoth disambiguates identical English messages with a "context^" prefix.
_CONTEXT = re.compile(r"^[\w +-]+\^")
_TYPOGRAPHY = str.maketrans(
    {
        "\u00a0": " ",  # no-break space, before French ! ? : ;
        "\u202f": " ",  # narrow no-break space
        "\u200b": "",  # zero-width space
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
    }
)
_GUILLEMETS = re.compile(r"«\s*|\s*»")
_BULLET = re.compile(r"^[•◦]\s*")
_SPACES = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")
_NOT_WORD = re.compile(r"[\W_]+")
# Name generators' syllable lists: "Bal,Cam,Corn,...".
_NAME_LIST = re.compile(r"[^\W\d_],[^\W\d_]+,[^\W\d_]")


def ensure_installed(locale_dir: Path = LOCALE_DIR) -> None:
    """Install the Wesnoth packages with apt-get if their French catalogs are missing.

    Only root can install; anyone else is told the command to run.
    """
    if locale_dir.is_dir():
        return
    problem = apt_install(PACKAGES)
    if problem:
        raise DataError(f"{locale_dir} is missing: {problem}")
    if not locale_dir.is_dir():
        raise DataError(
            f"{locale_dir} is missing, though {PACKAGES[0]} and its campaigns are installed"
        )


def read_catalogs(locale_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield (msgid, msgstr) of every singular, translated message of every catalog.

    Catalogs are read in name order, so the result is the same on every machine.
    """
    catalogs = sorted(locale_dir.glob("*.mo"))
    if not catalogs:
        raise DataError(f"no .mo catalogs in {locale_dir}")
    for path in tqdm(catalogs, desc="wesnoth catalogs", unit=" catalogs", file=sys.stderr):
        with path.open("rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog
        for english, french in catalog.items():
            # Plural forms are keyed by (msgid, n); "" is the catalog's header.
            if isinstance(english, str) and english and french:
                yield english, french


def clean_message(text: str) -> str | None:
    """Plain text of one message, or None when it is a template, code or no prose.

    >>> clean_message("It <i>is</i> fitting.")
    'It is fitting.'
    >>> clean_message("Les <italic>text='villages submergés'</italic> sont l\u00e0\u00a0!")
    'Les villages submergés sont là !'
    >>> clean_message("Hé, regardez «\u00a0ça\u00a0»\u2026") == 'Hé, regardez "ça"...'
    True
    >>> clean_message("female^Fugitive"), clean_message("• jusqu\\\\'au bout")
    ('Fugitive', "jusqu'au bout")
    >>> clean_message("$name has fallen") is None, clean_message("{AMLA_TOOLTIP}") is None
    (True, True)
    """
    text = _CONTEXT.sub("", text)
    text = _IMAGE.sub("", text)
    text = _TEXT_ATTRIBUTE.sub(lambda match: match[2].replace("\\'", "'"), text)
    text = _FORMAT_TAG.sub("", text)
    text = html.unescape(text).replace("\\'", "'")
    if _TEMPLATE.search(text) or _NAME_LIST.search(text):
        return None
    text = _GUILLEMETS.sub('"', text.translate(_TYPOGRAPHY))
    text = _BULLET.sub("", _SPACES.sub(" ", text).strip())
    # Mostly digits, symbols or punctuation: a format or a key name, not prose.
    if len(_LETTER.findall(text)) * 2 < len(text.replace(" ", "")):
        return None
    return text


def clean_pairs(messages: Iterable[tuple[str, str]], stats: Counter) -> list[tuple[str, str]]:
    """Clean (English, French) messages into sentence pairs, one per English text.

    A message of several lines is split into its lines when both sides have as many;
    otherwise its lines are joined. Pairs with a side that is not plain text, and
    untranslated ones (the same words on both sides, as names and battle cries in
    made-up languages), are dropped. `stats` counts what happened.
    """
    pairs: dict[str, str] = {}
    for english, french in messages:
        stats["messages"] += 1
        english_lines = [line for line in english.splitlines() if line.strip()]
        french_lines = [line for line in french.splitlines() if line.strip()]
        if len(english_lines) != len(french_lines):
            english_lines, french_lines = [" ".join(english_lines)], [" ".join(french_lines)]
        for english_line, french_line in zip(english_lines, french_lines, strict=True):
            english_text, french_text = clean_message(english_line), clean_message(french_line)
            if not english_text or not french_text:
                stats["not plain text"] += 1
            elif _words(english_text) == _words(french_text):
                stats["untranslated"] += 1
            elif english_text in pairs:
                stats["duplicate"] += 1
            else:
                pairs[english_text] = french_text
    stats["pairs"] = len(pairs)
    return list(pairs.items())


def _words(text: str) -> str:
    """`text` without case, spaces or punctuation: "Victoire !" and "victoire!" match."""
    return _NOT_WORD.sub("", text.casefold())
