"""`seq2seq evaluate` on a tiny exported model: scores for every test split,
greedy and beam, and a JSON report."""

from __future__ import annotations

import json

from conftest import run_seq2seq


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


def test_evaluate_names_a_missing_corpus(tiny_export, tmp_path):
    result = run_seq2seq("evaluate", "--model", str(tiny_export), "--data", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "nope" in result.stderr and result.stderr.strip().count("\n") == 0
