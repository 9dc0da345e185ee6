"""`seq2seq evaluate` on tiny exported models, a translator and a speech recognizer:
scores for every test split, greedy and beam, speed, a JSON report, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest
import sacrebleu

from conftest import run_seq2seq
from seq2seq.cli import main
from seq2seq.data.pipeline import read_tsv
from seq2seq.data.speech_pipeline import load_utterances, read_speech_tsv
from seq2seq.evaluation import searches
from seq2seq.transcription import SavedModelTranscriber


def test_evaluate_scores_every_split_greedy_and_beam(tiny_export, tiny_corpus, tmp_path):
    report = tmp_path / "report.json"
    result = run_seq2seq(
        "evaluate",
        "--model",
        str(tiny_export),
        "--data",
        str(tiny_corpus),
        "--beam-size",
        "3",
        "--limit",
        "8",
        "--json",
        str(report),
        "--outputs",
        str(tmp_path / "outputs"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(report.read_text(encoding="utf-8"))["results"]
    assert {(r["split"], r["search"]) for r in rows} == {
        (split, search)
        for split in ("test-bible", "test-wesnoth")
        for search in ("greedy", "beam 3")
    }
    for row in rows:
        assert row["sentences"] == 8
        assert 0.0 <= row["bleu"] <= 100.0 and 0.0 <= row["chrf"] <= 100.0
        assert row["sentences_per_second"] > 0
    assert "test-bible" in result.stdout and "BLEU" in result.stdout

    # --outputs: each search's translations of each split, in the split's order
    names = sorted(path.name for path in (tmp_path / "outputs").iterdir())
    assert names == [
        f"{split}.{search}.tsv"
        for split in ("test-bible", "test-wesnoth")
        for search in ("beam-3", "greedy")
    ]
    pairs = read_tsv(tiny_corpus / "test-bible.tsv")[:8]  # en-fr: English, then French
    lines = (tmp_path / "outputs" / "test-bible.beam-3.tsv").read_text().splitlines()
    header, *written = [line.split("\t") for line in lines]
    assert header == ["source", "reference", "output"]
    assert [tuple(row[:2]) for row in written] == pairs
    # the translations scored: their BLEU is the report's
    beam = next(r for r in rows if (r["split"], r["search"]) == ("test-bible", "beam 3"))
    bleu = sacrebleu.corpus_bleu([row[2] for row in written], [[row[1] for row in written]])
    assert round(bleu.score, 2) == beam["bleu"]


def test_evaluate_names_a_missing_corpus(tiny_export, tmp_path):
    result = run_seq2seq("evaluate", "--model", str(tiny_export), "--data", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "nope" in result.stderr and result.stderr.strip().count("\n") == 0


# -- speech: the tiny tone model of tests/test_transcribe.py (conftest's tiny_asr_export) --


def write_speech_tsv(path: Path, rows: list[tuple[str, str, float]]) -> None:
    lines = "".join(f"{name}\t{text}\t{seconds:.3f}\ttones\n" for name, text, seconds in rows)
    path.write_text("path\ttranscript\tseconds\tvoice\n" + lines, encoding="utf-8")


@pytest.fixture
def speech_corpus(tiny_asr_corpus, tmp_path) -> Path:
    """Both test splits, from the tone corpus's test-synthetic files: 6 utterances in
    test-synthetic; 3 in test-real, and two bad ones (a missing file, one not audio)."""
    utterances = read_speech_tsv(tiny_asr_corpus / "test-synthetic.tsv")
    rows = [(str(u.path), u.transcript, u.seconds) for u in utterances]
    directory = tmp_path / "asr-en"
    directory.mkdir()
    (directory / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_speech_tsv(directory / "test-synthetic.tsv", rows[:6])
    bad = [("missing.wav", "a cat", 1.0), ("broken.wav", "the dog", 1.0)]
    write_speech_tsv(directory / "test-real.tsv", [*rows[6:8], bad[0], rows[8], bad[1]])
    return directory


def test_evaluate_speech_wer_cer_rtf_per_split_and_search(
    tiny_asr_export, speech_corpus, tmp_path, capsys
):
    report = tmp_path / "report.json"
    argv = ["evaluate", "--model", str(tiny_asr_export), "--data", str(speech_corpus)]
    outputs = tmp_path / "outputs"
    assert main([*argv, "--limit", "5", "--json", str(report), "--outputs", str(outputs)]) == 1
    captured = capsys.readouterr()  # 1: files were skipped

    # The bad files: one warning line each, naming them; the others are scored.
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 2, captured.err
    assert "missing.wav" in warnings[0] and "broken.wav" in warnings[1]
    assert "Traceback" not in captured.err

    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["kind"] == "speech" and data["load_seconds"] >= 0
    assert data["skipped_files"] == 2 and data["sample_rate"] == 16000
    rows = {(r["split"], r["search"]): r for r in data["results"]}
    # Without --beam-size: CTC greedy, greedy, and serving_default (the tiny config's
    # beam 4).
    assert set(rows) == {
        (split, search)
        for split in ("test-synthetic", "test-real")
        for search in ("ctc greedy", "greedy", "beam 4")
    }
    tsv = read_speech_tsv(speech_corpus / "test-synthetic.tsv")[:5]
    for (split, _), row in rows.items():
        assert row["utterances"] == (5 if split == "test-synthetic" else 3)  # --limit 5
        assert row["skipped"] == (0 if split == "test-synthetic" else 2)
        assert 0.0 <= row["wer"] < 1000.0 and 0.0 <= row["cer"] < 1000.0
        assert row["seconds"] > 0 and row["rtf"] > 0
        assert row["rtf"] == pytest.approx(row["seconds"] / row["audio_seconds"], abs=1e-3)
        assert set(row["example"]) == {"reference", "output"}
    synthetic = rows["test-synthetic", "greedy"]
    assert synthetic["audio_seconds"] == pytest.approx(sum(u.seconds for u in tsv), abs=0.1)
    # The model learned the tones: far better than chance on held-out sentences.
    assert synthetic["cer"] < 75.0, synthetic

    # The WER is jiwer's of the model's own transcripts, on normalized text.
    transcriber = SavedModelTranscriber.load(tiny_asr_export)
    signals, references = load_utterances(tsv)
    hypotheses = [t.text for t in transcriber.transcribe(signals, beam_size=1)]
    assert synthetic["wer"] == round(100 * jiwer.wer(references, hypotheses), 2)
    assert synthetic["cer"] == round(100 * jiwer.cer(references, hypotheses), 2)

    # --outputs: the audio file, its WER, reference and output, skipped files left out
    lines = (outputs / "test-synthetic.greedy.tsv").read_text(encoding="utf-8").splitlines()
    header, *written = [line.split("\t") for line in lines]
    assert header == ["audio", "wer", "reference", "output"]
    assert [row[0] for row in written] == [str(u.path) for u in tsv]
    assert [row[2:] for row in written] == [
        list(pair) for pair in zip(references, hypotheses, strict=True)
    ]
    for _, wer, reference, output in written:
        assert float(wer) == pytest.approx(100 * jiwer.wer(reference, output), abs=0.05)
    real = (outputs / "test-real.beam-4.tsv").read_text(encoding="utf-8")
    assert real.count("\n") == 1 + 3 and "missing.wav" not in real and "broken.wav" not in real

    # The table: the title with the loading time, then one line per split and search.
    title, header, *lines = captured.out.splitlines()
    assert "(speech), loaded in" in title
    assert header.split() == ["split", "search", "n", "WER", "%", "CER", "%", "audio", "s", "RTF"]
    expected = [
        [split, *search.split(), str(n)]
        for split, n in (("test-synthetic", 5), ("test-real", 3))
        for search in ("ctc greedy", "greedy", "beam 4")
    ]
    assert [line.split()[: len(e)] for line, e in zip(lines, expected, strict=True)] == expected


def test_searches_follow_the_beam_size_or_the_export(tmp_path):
    assert searches(tmp_path, None) == [("greedy", 1), ("default", None)]  # no export.json
    (tmp_path / "assets").mkdir()
    for exported, beam_size, expected in (
        (5, None, [("greedy", 1), ("beam 5", None)]),
        (5, 3, [("greedy", 1), ("beam 3", 3)]),
        (5, 1, [("greedy", 1)]),
        (1, None, [("greedy", 1)]),
        ((4, [0, 1, 4]), None, [("ctc greedy", 0), ("greedy", 1), ("beam 4", None)]),
        ((0, [0, 1, 4]), None, [("ctc greedy", 0), ("greedy", 1)]),
        ((4, [0, 1, 4]), 0, [("ctc greedy", 0), ("greedy", 1)]),
    ):
        exported, sizes = exported if isinstance(exported, tuple) else (exported, [])
        info = json.dumps({"beam_size": exported, "beam_sizes": sizes})
        (tmp_path / "assets" / "export.json").write_text(info, encoding="utf-8")
        assert searches(tmp_path, beam_size) == expected, (exported, beam_size)


def test_evaluate_speech_option_errors_are_one_line(tiny_asr_export, tiny_asr_corpus, capsys):
    argv = ["evaluate", "--model", str(tiny_asr_export), "--data", str(tiny_asr_corpus)]
    for extra, message in (
        (["--beam-size", "3"], "no signature for beam size 3"),
        (["--direction", "en-fr"], "--direction is for translators"),
        (["--splits", "dev,nope"], "nope.tsv: no such split"),
    ):
        assert main([*argv, *extra]) == 2, extra
        error = capsys.readouterr().err
        assert message in error and error.strip().count("\n") == 0, error


def test_evaluate_scores_the_splits_asked_for(tiny_asr_export, tiny_asr_corpus, tmp_path):
    report = tmp_path / "report.json"
    argv = ["evaluate", "--model", str(tiny_asr_export), "--data", str(tiny_asr_corpus)]
    assert main([*argv, "--splits", "dev", "--beam-size", "1", "--json", str(report)]) == 0
    rows = json.loads(report.read_text(encoding="utf-8"))["results"]
    dev = read_speech_tsv(tiny_asr_corpus / "dev.tsv")
    assert [(r["split"], r["search"], r["utterances"]) for r in rows] == [
        ("dev", "ctc greedy", len(dev)),
        ("dev", "greedy", len(dev)),
    ]


def test_evaluate_speech_scores_each_engine_and_voice_of_a_split(
    tiny_asr_export, tiny_asr_corpus, tmp_path, capsys
):
    # test-synthetic in three voices of two engines (with and without a speed x pitch
    # variant, which is not part of the voice), test-real in one: only test-synthetic
    # gets tables by engine and by voice.
    utterances = read_speech_tsv(tiny_asr_corpus / "test-synthetic.tsv")[:7]
    voices = ["tones:low@0.90x1.10", "tones:high", "clicks:mid", "tones:low@1.10x1.00"]
    voices += ["tones:high", "clicks:mid", "tones:low"]
    directory = tmp_path / "asr-en"
    directory.mkdir()
    for split, split_voices in (("test-synthetic", voices), ("test-real", ["asterisk:a"] * 3)):
        lines = [
            f"{u.path}\t{u.transcript}\t{u.seconds}\t{voice}\n"
            for u, voice in zip(utterances[: len(split_voices)], split_voices, strict=True)
        ]
        (directory / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    report = tmp_path / "report.json"
    argv = ["evaluate", "--model", str(tiny_asr_export), "--data", str(directory)]
    assert main([*argv, "--beam-size", "1", "--json", str(report)]) == 0
    output = capsys.readouterr().out

    groups = {
        "engine": {"clicks": [2, 5], "tones": [0, 1, 3, 4, 6]},
        "voice": {"clicks:mid": [2, 5], "tones:high": [1, 4], "tones:low": [0, 3, 6]},
    }
    transcriber = SavedModelTranscriber.load(tiny_asr_export)
    signals, references = load_utterances(utterances)
    hypotheses = [t.text for t in transcriber.transcribe(signals, beam_size=1)]
    full_report = json.loads(report.read_text(encoding="utf-8"))
    for column, members in groups.items():
        rows = full_report[f"by_{column}"]
        assert [(r["split"], r["search"], r[column], r["utterances"]) for r in rows] == [
            ("test-synthetic", search, name, len(indices))
            for search in ("ctc greedy", "greedy")
            for name, indices in members.items()
        ]
        for name, indices in members.items():
            (row,) = [r for r in rows if r[column] == name and r["search"] == "greedy"]
            chosen = ([references[i] for i in indices], [hypotheses[i] for i in indices])
            assert row["wer"] == round(100 * jiwer.wer(*chosen), 2)
            assert row["cer"] == round(100 * jiwer.cer(*chosen), 2)

    # Printed after the table per split and search: by engine, then by voice.
    tables = output.split("\n\n")
    assert len(tables) == 3, output
    for table, (column, members) in zip(tables[1:], groups.items(), strict=True):
        header, *lines = table.strip().splitlines()
        assert header.split()[:4] == ["split", "search", column, "n"]
        # Each line ends with the group, n, WER and CER.
        assert [tuple(line.split()[-4:-2]) for line in lines] == [
            (name, str(len(indices))) for name, indices in members.items()
        ] * 2


def test_evaluate_help_describes_both_model_kinds(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse would wrap test-synthetic at its hyphen
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "translator",
        "BLEU and chrF",
        "speech recognizer",
        "WER and CER",
        "RTF",
        "test-synthetic",
        "test-real",
        "data/asr-en",
    ):
        assert words in text, words
