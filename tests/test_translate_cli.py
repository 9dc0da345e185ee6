"""`seq2seq translate`: one output line per input line, in order, whatever the input;
beam sizes by signature; model paths and their errors; attention plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_seq2seq
from seq2seq.cli import main
from seq2seq.export import resolve_model_dir
from seq2seq.inference import SavedModelTranslator, Translator

SENTENCES = ["the red cat sees three dogs .", "the white horse sees five birds ."]


def test_stdin_gives_one_line_per_line_in_order(tiny_export):
    long_line = " ".join(["the red cat sees three dogs ."] * 30)  # 30 sentences
    unsplittable = " ".join(["the red cat sees three dogs"] * 20)  # over the token limit
    lines = [
        SENTENCES[0].encode(),
        b"",
        b"   ",
        b"the \xff\xfe blue dog .",  # not UTF-8
        long_line.encode(),
        unsplittable.encode(),
        SENTENCES[1].encode(),
    ]
    result = run_seq2seq(
        "translate",
        "--model",
        str(tiny_export),
        "--beam-size",
        "3",
        input=b"\n".join(lines) + b"\n",
        text=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    outputs = result.stdout.decode().split("\n")
    assert outputs[-1] == "" and len(outputs) == len(lines) + 1  # one line each, then EOF
    assert outputs[1] == outputs[2] == ""
    assert all(outputs[i] for i in (0, 3, 4, 5, 6))
    # The long line's 30 sentences are translated one by one and joined with spaces.
    assert outputs[4].count(" ") >= 29
    warnings = [line for line in stderr.splitlines() if line.startswith("seq2seq translate:")]
    assert len(warnings) == 1 and "line 6" in warnings[0]


def test_text_arguments_and_an_empty_one(tiny_export, capsys):
    assert main(["translate", "--model", str(tiny_export), "--beam-size", "1", "", *SENTENCES]) == 1
    captured = capsys.readouterr()
    outputs = captured.out.split("\n")
    assert len(outputs) == 4 and outputs[0] == "" and outputs[1] and outputs[2]
    assert captured.err == "seq2seq translate: TEXT 1 is empty\n"


def test_n_best_prints_one_json_line_per_input(tiny_export, capsys):
    two_sentences = f"{SENTENCES[0]} {SENTENCES[1]}"
    texts = [SENTENCES[0], two_sentences, SENTENCES[1]]
    translator = SavedModelTranslator.load(tiny_export)
    translator.max_source_tokens = 12  # so that the second text goes as two sentences
    assert translator.pieces(two_sentences) == SENTENCES

    results = translator.n_best(texts, 3)
    assert [row[0][0] for row in results] == translator.translate(texts)  # best first
    for row in (results[0], results[2]):
        scores = [score for _, score in row]
        assert 1 <= len(row) <= 3 and scores == sorted(scores, reverse=True)
        assert all(np.isfinite(scores))
    # Two sentences: the k-th hypotheses of each, joined, scored by the sum. (The same
    # sentence in another row of a batch may score a float32 rounding apart.)
    joined = list(zip(results[0], results[2], strict=False))
    assert [text for text, _ in results[1]] == [f"{a} {b}" for (a, _), (b, _) in joined]
    assert [score for _, score in results[1]] == pytest.approx(
        [a + b for (_, a), (_, b) in joined], rel=1e-5
    )
    assert len(translator.n_best(texts, 1)[0]) == 1
    assert translator.n_best(["", "  "], 3) == [[("", 0.0)], [("", 0.0)]]

    assert main(["translate", "--model", str(tiny_export), "--n-best", "2", SENTENCES[0]]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "source": SENTENCES[0],
        "translations": [
            {"text": text, "score": round(score, 4)} for text, score in results[0][:2]
        ],
    }


def test_n_best_needs_the_default_beam_search(tiny_export, capsys):
    arguments = ["translate", "--model", str(tiny_export), SENTENCES[0]]
    for bad in (["--n-best", "0"], ["--n-best", "2", "--beam-size", "3"]):
        assert main([*arguments, *bad]) == 2
        assert "--n-best needs N >= 1, and no --beam-size" in capsys.readouterr().err

    class GreedyOnly(Translator):
        def _run(self, signature_name, texts):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="m: the model has no n_best signature"):
        GreedyOnly("m", ["serving_default", "greedy"]).n_best(["a"], 2)


def test_python_api(tiny_export):
    translator = SavedModelTranslator.load(tiny_export)
    assert translator.model_dir == tiny_export / "1"
    assert translator.beam_sizes == [1, 2, 3, 4, 5, 8]
    assert [translator.signature_name(size) for size in (None, 1, 3)] == [
        "serving_default",
        "greedy",
        "beam_3",
    ]
    with pytest.raises(ValueError, match=r"beam size 6 \(available: 1, 2, 3, 4, 5, 8\)"):
        translator.translate(["x"], beam_size=6)
    long_line = " ".join(["the red cat sees three dogs ."] * 30)
    assert translator.pieces(long_line) == ["the red cat sees three dogs ."] * 30
    assert translator.pieces(" \t") == [] and not translator.is_truncated(long_line)
    assert translator.is_truncated("the red cat sees three dogs " * 10)
    greedy, two_lines = translator.translate([SENTENCES[0], "a\nb"], beam_size=1)
    assert greedy and "\n" not in two_lines
    assert translator.translate([]) == []


def test_missing_model_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_seq2seq("translate", "--model", str(missing), "hello", timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(missing) in result.stderr
    assert result.stdout == ""
    (tmp_path / "empty").mkdir()
    assert main(["translate", "--model", str(tmp_path / "empty"), "hello"]) == 2


def test_base_directory_resolves_the_highest_version(tmp_path):
    for version in ("1", "2", "10", "latest", ".export-tmp-1"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").touch()
    (tmp_path / "11").mkdir()  # no SavedModel in it: not a version
    assert resolve_model_dir(tmp_path) == tmp_path / "10"
    assert resolve_model_dir(tmp_path / "2") == tmp_path / "2"


def test_plot_attention_writes_a_png(tiny_export, tmp_path, capsys):
    png = tmp_path / "attention.png"
    assert (
        main(["translate", "--model", str(tiny_export), "--plot-attention", str(png), "hi ."]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["translate", "--model", str(tiny_export), "--plot-attention", str(png)]) == 2


def test_unreachable_server_is_one_line_error(capsys):
    assert main(["translate", "--server", "http://127.0.0.1:9/v1/models/m", "x"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq translate: error: http://127.0.0.1:9/v1/models/m")
    assert error.count("\n") == 1
