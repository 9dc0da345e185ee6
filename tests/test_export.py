"""`seq2seq export`: the SavedModel runs without project code, in both loaders and in
`saved_model_cli`, translates as the Keras model does, and versions appear atomically."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorflow_serving.apis import prediction_log_pb2

from seq2seq.cli import main
from seq2seq.data.pipeline import SubwordTokenizer, pad_batch, source_ids
from seq2seq.export import saved_model
from seq2seq.export.saved_model import check_serving_ops, export_run, load_run
from seq2seq.training.trainer import build_model

SENTENCES = [
    "the red cat sees three dogs .",
    "the white horse sees five birds .",
    "the black dog sees two cats .",
    "",
]
SIGNATURES = ("serving_default", "greedy", "beam_3", "n_best", "align")

# Run in a fresh process: only TensorFlow and tensorflow-text, as on a TF Serving host.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops
    assert not [name for name in sys.modules if name.startswith("seq2seq")]
    model = tf.saved_model.load(sys.argv[1])
    sentences = json.loads(sys.argv[2])
    results = {}
    for name in ("serving_default", "greedy", "beam_3"):
        outputs = model.signatures[name](text=tf.constant(sentences))
        results[name] = {
            "text": [t.decode() for t in outputs["text"].numpy()],
            "score": outputs["score"].numpy().tolist(),
        }
    n_best = model.signatures["n_best"](text=tf.constant(sentences))
    results["n_best"] = {
        "text": [[t.decode() for t in row] for row in n_best["text"].numpy()],
        "score": n_best["score"].numpy().tolist(),
    }
    long_text = " ".join(["the red cat sees three dogs"] * 40)
    align = model.signatures["align"](text=tf.constant(sentences[:1] + [long_text]))
    results["align"] = {name: list(align[name].shape) for name in align}
    empty = model.signatures["serving_default"](text=tf.constant([], tf.string))
    results["empty_batch"] = list(empty["text"].shape)
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def export_dir(tiny_export) -> Path:
    return tiny_export / "1"


@pytest.fixture(scope="module")
def fresh_outputs(export_dir) -> dict:
    """What the export gives in a process that imports only tensorflow and tensorflow_text."""
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(export_dir), json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_layout_assets_and_signatures(tiny_export, export_dir):
    assert sorted(p.name for p in tiny_export.iterdir()) == ["1"]  # no temporary left
    assets = export_dir / "assets"
    assert {"spm.model", "config.yaml", "export.json"} <= {p.name for p in assets.iterdir()}
    info = json.loads((assets / "export.json").read_text(encoding="utf-8"))
    assert info == {
        "direction": "en-fr",
        "max_source_tokens": 32,  # the tiny config's data.max_length
        "beam_size": 3,
        "beam_sizes": [1, 2, 3, 4, 5, 8],
        "no_repeat_ngram_size": 0,
        "dtype_policy": "float32",
    }
    check_serving_ops(export_dir)  # passes: core and tensorflow-text ops only
    assert saved_model.beam_sizes(6) == [1, 2, 3, 4, 5, 6, 8]  # a default gets its beam_N


def keras_search(run_dir: Path, beam_size: int, n_best: int = 1) -> tuple[list, np.ndarray]:
    """The run's model, built as training builds it (not as the export does: weights that
    the export failed to load would show as different translations), searching SENTENCES:
    `(texts [sentence][hypothesis], scores [sentence, hypothesis])`."""
    config = load_run(run_dir)
    tokenizer = SubwordTokenizer(run_dir / "spm.model")
    model = build_model(config, tokenizer.vocab_size)
    model.load_weights(run_dir / "best.weights.h5")
    source = pad_batch(source_ids(tokenizer, SENTENCES, "fr"))
    decoding = config.decoding
    result = model.search(
        source,
        beam_size=beam_size,
        length_penalty=decoding.length_penalty,
        max_length_ratio=decoding.max_length_ratio,
        max_length_offset=decoding.max_length_offset,
        n_best=n_best,
    )
    texts = [
        tokenizer.decode([[int(t) for t in ids[:n]] for ids, n in zip(rows, lengths, strict=True)])
        for rows, lengths in zip(result.ids.numpy(), result.lengths.numpy(), strict=True)
    ]
    return texts, result.scores.numpy()


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_fresh_process_matches_keras_search(tiny_run, fresh_outputs):
    for name, beam_size in (("greedy", 1), ("beam_3", 3), ("serving_default", 3)):
        texts, scores = keras_search(tiny_run, beam_size)
        expected = [hypotheses[0] for hypotheses in texts]
        expected[-1] = ""  # a blank input has no translation
        assert fresh_outputs[name]["text"] == expected, name
        np.testing.assert_allclose(fresh_outputs[name]["score"][:-1], scores[:-1, 0], rtol=1e-4)
        assert fresh_outputs[name]["score"][-1] == 0.0


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_n_best_lists_every_hypothesis_of_the_default_search(tiny_run, fresh_outputs):
    texts, scores = keras_search(tiny_run, beam_size=3, n_best=3)
    n_best = fresh_outputs["n_best"]
    assert np.shape(n_best["score"]) == (len(SENTENCES), 3)
    for row in range(len(SENTENCES) - 1):
        finite = np.isfinite(scores[row])
        assert finite[0]
        assert n_best["text"][row] == [
            text if ok else "" for text, ok in zip(texts[row], finite, strict=True)
        ]
        np.testing.assert_allclose(n_best["score"][row], scores[row], rtol=1e-4)
        assert sorted(n_best["score"][row], reverse=True) == n_best["score"][row]  # best first
    assert [row[0] for row in n_best["text"]] == fresh_outputs["serving_default"]["text"]
    assert n_best["text"][-1] == ["", "", ""] and n_best["score"][-1] == [0.0, 0.0, 0.0]


def test_align_empty_batch_and_source_limit(fresh_outputs):
    source, target, attention = (
        fresh_outputs["align"][name] for name in ("source_tokens", "target_tokens", "attention")
    )
    assert source == [2, 32]  # the long text is cut to max_source_tokens
    assert attention == [2, target[1], 32]
    assert fresh_outputs["empty_batch"] == [0]


def test_session_loader_runs_serving_default(export_dir, fresh_outputs):
    # The loader TF Serving uses: a TF1 graph and session, variables restored by name.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        signature = meta_graph.signature_def["serving_default"]
        outputs = session.run(
            {name: tensor.name for name, tensor in signature.outputs.items()},
            {signature.inputs["text"].name: SENTENCES},
        )
    assert [t.decode() for t in outputs["text"]] == fresh_outputs["serving_default"]["text"]
    assert outputs["score"].dtype == np.float32


def test_saved_model_cli_run(export_dir, fresh_outputs, tmp_path):
    # Stock saved_model_cli knows only core ops; TensorFlow loads op libraries found in
    # site-packages/tensorflow-plugins/ at import, which registers tensorflow-text's
    # SentencePiece ops the way TF Serving links them in.
    import tensorflow_text

    plugins = tmp_path / "site-packages" / "tensorflow-plugins"
    plugins.mkdir(parents=True)
    library = Path(tensorflow_text.__file__).parent / "python/ops/_sentencepiece_tokenizer.so"
    (plugins / library.name).symlink_to(library)
    inputs = tmp_path / "text.npy"
    np.save(inputs, np.array(SENTENCES, dtype=object), allow_pickle=True)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "saved_model_cli"),
            "run",
            "--dir",
            str(export_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"text={inputs}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(plugins.parent)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    texts = np.load(tmp_path / "out" / "text.npy", allow_pickle=True)
    assert [t.decode() for t in texts] == fresh_outputs["serving_default"]["text"]


def test_warmup_requests_parse(tiny_export, export_dir):
    path = export_dir / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    sentences = saved_model.WARMUP_SENTENCES["en"]
    assert len(records) == len(sentences) + 1
    for record in records:
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        assert request.model_spec.name == tiny_export.name
        assert request.model_spec.signature_name == "serving_default"
        assert tf.make_ndarray(request.inputs["text"]).dtype == object
    last = prediction_log_pb2.PredictionLog.FromString(records[-1]).predict_log.request
    assert [t.decode() for t in tf.make_ndarray(last.inputs["text"])] == sentences


def _identity_module(*_args, **_kwargs) -> tuple[tf.Module, dict]:
    """A stand-in for the translator module: cheap to save, and its ops are all core."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return {"text": tf.strings.upper(text), "score": tf.zeros(tf.shape(text))}

    return module, {"serving_default": serve.get_concrete_function()}


def _py_function_module(*_args, **_kwargs) -> tuple[tf.Module, dict]:
    """A module whose graph holds a Python function, which TF Serving cannot run."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        upper = tf.py_function(lambda t: tf.strings.upper(t), [text], tf.string)
        return {"text": upper, "score": tf.zeros(tf.shape(text))}

    return module, {"serving_default": serve.get_concrete_function()}


def test_versions_are_numbered_and_a_refused_export_leaves_nothing(
    tiny_run, tiny_export, tmp_path, monkeypatch
):
    base = tmp_path / tiny_export.name
    shutil.copytree(tiny_export, base)  # version 1, from the real export
    # The real module is tested above; the stand-ins make the second and third exports fast.
    monkeypatch.setattr(saved_model, "build_serving_module", _identity_module)
    assert export_run(tiny_run, base) == base / "2"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]

    monkeypatch.setattr(saved_model, "build_serving_module", _py_function_module)
    with pytest.raises(ValueError, match="unsupported op.*EagerPyFunc"):
        export_run(tiny_run, base)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no 3, no temporary


def test_several_weights_files_export_their_average(tiny_run, tmp_path, monkeypatch):
    checkpoints = sorted((tiny_run / "checkpoints").glob("epoch-*.weights.h5"))
    assert len(checkpoints) == 2  # training.keep_checkpoints of the tiny config
    exported = []

    def capture(model, *args, **kwargs):
        exported.extend(variable.numpy() for variable in model.variables)
        return _identity_module()

    monkeypatch.setattr(saved_model, "build_serving_module", capture)
    arguments = ["--run", str(tiny_run), "--model-base-path", str(tmp_path / "m")]
    assert main(["export", *arguments, "--weights", *map(str, checkpoints)]) == 0
    config = load_run(tiny_run)
    vocab_size = SubwordTokenizer(tiny_run / "spm.model").vocab_size
    epochs = []
    for path in checkpoints:
        model = build_model(config, vocab_size)
        model.load_weights(path)
        epochs.append([variable.numpy() for variable in model.variables])
    differing = 0
    for value, first, second in zip(exported, *epochs, strict=True):
        if np.issubdtype(value.dtype, np.floating):  # not the random-number states
            np.testing.assert_allclose(value, (first + second) / 2, rtol=1e-6, atol=1e-7)
            differing += not np.array_equal(first, second)
    assert differing > 0  # the two epochs differ, so their average is neither


def test_a_run_trained_under_a_mixed_policy_exports_a_float32_model(
    tiny_run, tmp_path, monkeypatch
):
    # TF Serving hosts without bfloat16 units would emulate it slowly: exports compute in
    # float32 whatever policy the run trained under.
    run = tmp_path / "mixed-run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("backup", "logs"))
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["training"]["dtype_policy"] = "mixed_bfloat16"
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    exported = []
    monkeypatch.setattr(
        saved_model,
        "build_serving_module",
        lambda model, *args, **kwargs: exported.append(model) or _identity_module(),
    )
    assert main(["export", "--run", str(run), "--model-base-path", str(tmp_path / "m")]) == 0
    (model,) = exported
    assert {layer.compute_dtype for layer in model._flatten_layers()} == {"float32"}
    assert load_run(tmp_path / "m" / "1" / "assets").training.dtype_policy == "mixed_bfloat16"


def test_a_bfloat16_export_stores_and_computes_in_bfloat16(tiny_export, export_dir, tmp_path):
    # `--dtype-policy bfloat16`: half the variables' bytes, the same signatures and output
    # dtypes, and (for a trained model) the float32 export's translations.
    base = tmp_path / "m"
    arguments = ["--run", str(tiny_export), "--model-base-path", str(base)]
    assert main(["export", *arguments, "--dtype-policy", "bfloat16"]) == 0
    exported = base / "1"
    info = json.loads((exported / "assets" / "export.json").read_text(encoding="utf-8"))
    assert info["dtype_policy"] == load_run(exported / "assets").decoding.dtype_policy == "bfloat16"
    loaded, original = tf.saved_model.load(str(exported)), tf.saved_model.load(str(export_dir))
    floats = {v.dtype for v in loaded.model_variables if v.dtype.is_floating}
    assert floats == {tf.bfloat16}

    def variables_bytes(directory: Path) -> int:
        return sum(path.stat().st_size for path in (directory / "variables").iterdir())

    assert variables_bytes(exported) < 0.6 * variables_bytes(export_dir)
    sentences = tf.constant(SENTENCES)
    for name in ("serving_default", "greedy"):
        ours, theirs = (m.signatures[name](text=sentences) for m in (loaded, original))
        assert ours["score"].dtype == tf.float32
        assert ours["text"].numpy().tolist() == theirs["text"].numpy().tolist(), name
        np.testing.assert_allclose(ours["score"], theirs["score"], rtol=0.05, atol=0.05)
    # Exporting it again keeps its policy unless told otherwise.
    again = ["export", "--run", str(base), "--model-base-path", str(base)]
    assert main(again) == 0
    assert load_run(base / "2" / "assets").decoding.dtype_policy == "bfloat16"
    assert main([*again, "--dtype-policy", "float32"]) == 0
    float32 = tf.saved_model.load(str(base / "3"))
    assert {v.dtype for v in float32.model_variables if v.dtype.is_floating} == {tf.float32}


def test_an_export_exports_again_with_other_search_settings(
    tiny_export, export_dir, tmp_path, monkeypatch
):
    # `--run` may name an export: its config, tokenizer and variables are exported again
    # (a shipped model with this code's signatures and other search settings).
    exported = []

    def capture(model, *args, **kwargs):
        exported.extend(variable.numpy() for variable in model.variables)
        return _identity_module()

    monkeypatch.setattr(saved_model, "build_serving_module", capture)
    base = tmp_path / "m"
    arguments = ["--run", str(tiny_export), "--model-base-path", str(base)]
    assert main(["export", *arguments, "--length-penalty", "1.5", "--beam-size", "2"]) == 0
    source = tf.saved_model.load(str(export_dir)).model_variables
    assert len(exported) == len(source)
    for value, original in zip(exported, source, strict=True):
        if "seed_generator" not in original.name:  # random-number states are not learned
            np.testing.assert_array_equal(value, original.numpy(), err_msg=original.name)
    assets = base / "1" / "assets"
    assert load_run(assets).decoding.length_penalty == 1.5
    assert load_run(assets).decoding.beam_size == 2
    assert load_run(assets).model == load_run(export_dir / "assets").model
    assert (assets / "spm.model").read_bytes() == (export_dir / "assets" / "spm.model").read_bytes()


def test_an_export_of_the_second_direction_exports_again_in_that_direction(
    tiny_export, tmp_path, monkeypatch
):
    # The run's first direction is en-fr; an fr-en export exported again stays fr-en.
    def identity_with_variables(model, *args):
        module, signatures = _identity_module()
        module.model_variables = [variable.value for variable in model.variables]
        return module, signatures

    monkeypatch.setattr(saved_model, "build_serving_module", identity_with_variables)
    first, second = tmp_path / "first", tmp_path / "second"
    run = ["--run", str(tiny_export), "--model-base-path", str(first), "--direction", "fr-en"]
    assert main(["export", *run]) == 0
    assert main(["export", "--run", str(first), "--model-base-path", str(second)]) == 0
    info = json.loads((second / "1" / "assets" / "export.json").read_text(encoding="utf-8"))
    assert info["direction"] == "fr-en"


def test_bad_export_arguments_are_one_line_errors(tiny_run, tmp_path, capsys):
    base = tmp_path / "models" / "m"
    assert (
        main(
            [
                "export",
                "--run",
                str(tiny_run),
                "--model-base-path",
                str(base),
                "--direction",
                "de-fr",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert error.startswith("seq2seq export: error:") and error.count("\n") == 1
    assert "de-fr" in error
    assert main(["export", "--run", str(tmp_path / "nope"), "--model-base-path", str(base)]) == 2
    error = capsys.readouterr().err
    assert "nope" in error and error.count("\n") == 1
    arguments = ["--run", str(tiny_run), "--model-base-path", str(base)]
    assert main(["export", *arguments, "--ctc-weight", "0.5"]) == 2  # translators have no CTC
    error = capsys.readouterr().err
    assert "--ctc-weight" in error and error.count("\n") == 1
    assert main(["export", *arguments, "--lm-weight", "0.5"]) == 2
    error = capsys.readouterr().err
    assert "--lm-weight" in error and error.count("\n") == 1
    for flag in ("--no-repeat-ngram", "--length-penalty"):
        assert main(["export", *arguments, flag, "-1"]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"seq2seq export: error: {flag}: decoding.") and (
            "must not be negative" in error and error.count("\n") == 1
        )
    missing = tmp_path / "epoch-009.weights.h5"
    assert (
        main(["export", *arguments, "--weights", str(tiny_run / "best.weights.h5"), str(missing)])
        == 2
    )
    error = capsys.readouterr().err
    assert error == f"seq2seq export: error: {missing}: no such weights file\n"
    assert not base.exists()  # nothing created for a refused export
