"""Spoken English as text: numbers as words, what a speech engine is given to say, and
the transcripts that go with it.

`spoken_form` turns a sentence into what an engine should say so that its transcript
(`transcript_of`) is exactly what was said; sentences an engine would read otherwise
than written are rejected. `normalize_transcript` normalizes any English text the same
way (used for the real recordings' transcripts, which are not ours to choose).
"""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen"
    " fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def number_words(number: int) -> str:
    """A whole number as American English words, without "and" or hyphens.

    >>> number_words(0), number_words(42), number_words(1_000_000)
    ('zero', 'forty two', 'one million')
    >>> number_words(2305)
    'two thousand three hundred five'
    """
    if number < 0:
        return f"minus {number_words(-number)}"
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    if number >= 10**15:
        return " ".join(_ONES[int(digit)] for digit in str(number))
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(number)  # pragma: no cover


def ordinal_words(number: int) -> str:
    """>>> ordinal_words(1), ordinal_words(12), ordinal_words(40), ordinal_words(103)
    ('first', 'twelfth', 'fortieth', 'one hundred third')
    """
    words = number_words(number).split()
    last = words[-1]
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*words[:-1], last])


def year_words(number: int) -> str:
    """A four-digit number read as a year where people do: 1984, 1905, 1800, 2024.

    >>> year_words(1984), year_words(1905), year_words(1800), year_words(2024)
    ('nineteen eighty four', 'nineteen oh five', 'eighteen hundred', 'twenty twenty four')
    >>> year_words(2005), year_words(4242)
    ('two thousand five', 'four thousand two hundred forty two')
    """
    if 1100 <= number <= 1999 or 2010 <= number <= 2099:
        high, low = divmod(number, 100)
        if low == 0:
            return f"{number_words(high)} hundred"
        return f"{number_words(high)} {'oh ' if low < 10 else ''}{number_words(low)}"
    return number_words(number)


def _integer_words(digits: str) -> str:
    if len(digits) > 1 and digits.startswith("0"):  # 007, 0800: digit by digit
        return " ".join(_ONES[int(digit)] for digit in digits)
    number = int(digits)
    return year_words(number) if len(digits) == 4 else number_words(number)


_THOUSANDS = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_ORDINAL_NUMBER = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_INTEGER = re.compile(r"\d+")


def spell_numbers(text: str) -> str:
    """`text` with every number written as words.

    >>> spell_numbers("Dial 1,234 or press 2, on the 3rd day")
    'Dial one thousand two hundred thirty four or press two, on the third day'
    >>> spell_numbers("a 28.8 kilobit modem")
    'a twenty eight point eight kilobit modem'
    >>> spell_numbers("3D audio in 1905")
    'three D audio in nineteen oh five'
    """
    text = _THOUSANDS.sub(lambda match: f" {number_words(int(match[0].replace(',', '')))} ", text)
    text = _ORDINAL_NUMBER.sub(lambda match: f" {ordinal_words(int(match[1]))} ", text)
    text = _DECIMAL.sub(
        lambda m: f" {_integer_words(m[1])} point {' '.join(_ONES[int(d)] for d in m[2])} ",
        text,
    )
    text = _INTEGER.sub(lambda match: f" {_integer_words(match[0])} ", text)
    return re.sub(r" (?=[.,;:!?])", "", _SPACES.sub(" ", text)).strip()


# --- text normalization --------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201b": "'", "`": "'", "\u00b4": "'",
        "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2013": " - ", "\u2014": " - ", "\u2026": "...", "\u00a0": " ", "\u202f": " ",
        "\u200b": "",
    }
)  # fmt: skip
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_ABBREVIATION = re.compile(r"\b(Mr|Mrs|Dr)\.", re.IGNORECASE)
# What an engine would not read as written: acronyms ("HP", "XP"), initials and other
# abbreviations ("J. R.", "St.", "e.g."), times, ranges, digits glued to letters.
_UNSPEAKABLE = re.compile(
    r"\b[A-Z]{2,}\b|\b[A-Za-z]\.\s*[A-Za-z]\b|\b(?:St|Jr|Sr|Mt|vs|etc|No|Vol|Gen|Col|Capt|Lt"
    r"|Sgt|Prof|Rev|Ave|Co|Inc|Ltd|cf|ca|ch|vv?)\.|\d\s*[:/\-]\s*\d|\d[A-Za-z]|[A-Za-z]\d"
    r"|^\W*[A-Za-z]:|\s[A-Za-z]:"
)
_SPOKEN_CHARACTERS = re.compile(r"^[A-Za-z0-9 .,;:!?'\"()\-&%]*$")
_SYMBOLS = {"&": " and ", "%": " percent "}
_NOT_TRANSCRIPT = re.compile(r"[^a-z' ]+")
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def spoken_form(text: str) -> str | None:
    """What an engine is given to say `text` as its transcript reads, or None.

    Numbers become words, `&` and `%` words, `Mr.`/`Mrs.`/`Dr.` words, hyphens
    and dashes spaces; punctuation stays for the engines' prosody. Text an engine
    would read otherwise than written (acronyms, initials, other abbreviations,
    times, ranges, symbols, letters outside A-Z) is rejected.

    >>> spoken_form("Mr. Smith paid 1,000 gold & 3 horses - a 50% share!")
    'mister Smith paid one thousand gold and three horses a fifty percent share!'
    >>> spoken_form("The HP of St. Elmo"), spoken_form("Café au lait"), spoken_form("At 10:30")
    (None, None, None)
    """
    text = text.translate(_TYPOGRAPHY)
    text = _ABBREVIATION.sub(lambda match: _ABBREVIATIONS[match[1].lower()], text)
    if not _SPOKEN_CHARACTERS.match(text) or _UNSPEAKABLE.search(text):
        return None
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = spell_numbers(text)
    text = re.sub(r"\s*-+\s*", " ", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = _SPACES.sub(" ", text).strip()
    return text if _NOT_TRANSCRIPT.sub("", text.lower()).strip() else None


def transcript_of(text: str) -> str:
    """The transcript of spoken text: lowercase letters, inner apostrophes, one space.

    >>> transcript_of("'Tis the sons' \\"Hold-fast\\" rule, Waldo's, isn't it?")
    "tis the sons hold fast rule waldo's isn't it"
    """
    text = _NOT_TRANSCRIPT.sub(" ", text.lower())
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def normalize_transcript(text: str) -> str:
    """The normalized transcript of any English text: numbers as words, lowercase,
    letters, inner apostrophes and single spaces; bracketed notes (`[beep]`,
    `(simple tone sound plays)`, `<beep>`) dropped, acronyms spelled out.

    Used for the real recordings' transcripts, whose text is not ours to choose.

    >>> normalize_transcript("Please press 1 to mute, or 8 to exit. Press * or #.")
    'please press one to mute or eight to exit press star or pound'
    >>> normalize_transcript("the Asterisk open source PBX at 8 A.M. (tone plays)")
    'the asterisk open source p b x at eight a m'
    >>> normalize_transcript("[ascending tones]"), normalize_transcript("28.8 kilobit, 3D")
    ('', 'twenty eight point eight kilobit three d')
    """
    text = text.translate(_TYPOGRAPHY)
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>", " ", text)
    text = text.replace("*", " star ").replace("#", " pound ")
    text = re.sub(r"\bwww\.", "w w w dot ", text)
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", " dot ", text)  # asterisk.org
    text = re.sub(r"\b((?:[A-Za-z]\.){2,})", lambda m: " ".join(m[1].split(".")), text)
    text = re.sub(r"\b[A-Z]{2,5}\b", lambda match: " ".join(match[0]), text)
    text = text.replace("&", " and ").replace("%", " percent ")
    text = spell_numbers(re.sub(r"(?<=[A-Za-z])\.(?=\d)", " ", text))
    return transcript_of(text)


# Sentence ends: . ! ? (and closing quotes) followed by a capital.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z])")


def split_sentences(text: str) -> list[str]:
    """>>> split_sentences('He said "Go." Then he left! Did he? yes.')
    ['He said "Go."', 'Then he left!', 'Did he? yes.']
    """
    text = _SPACES.sub(" ", text).strip()
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start : match.start()] + match[0].strip())
        start = match.end()
    pieces.append(text[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def estimated_seconds(transcript: str, speed: float = 1.0) -> float:
    """About how long an engine takes to say `transcript` at `speed` (before synthesis)."""
    return 0.4 + len(transcript.split()) / (2.7 * speed)
