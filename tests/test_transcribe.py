"""Speech recognition end to end on a synthetic tone corpus (tests/asr_corpus.py):
`seq2seq train` learns it, `seq2seq export` writes a SavedModel that runs without
project code in both loaders and decodes as the Keras model does, and `seq2seq
transcribe` uses it directly and through `seq2seq serve` (REST and gRPC)."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jiwer
import numpy as np
import pytest
import requests
import soundfile
import tensorflow as tf
import yaml
from tensorflow_serving.apis import prediction_log_pb2

from audio.io import load_audio, to_wav_bytes
from conftest import run_seq2seq
from seq2seq.cli import main
from seq2seq.data import characters
from seq2seq.data.speech_pipeline import load_utterances, pad_audio, read_speech_tsv
from seq2seq.export.asr import language_model
from seq2seq.export.saved_model import check_serving_ops, load_run
from seq2seq.training.asr import build_asr_model
from seq2seq.training.callbacks import transcribe_ids, warm_start
from seq2seq.transcription import SavedModelTranscriber, Transcriber
from seq2seq.utils.ngram import NgramScorer
from serving_helpers import serving

SIGNATURES = {
    "serving_default",
    "transcribe_wav",
    "greedy",
    "ctc_greedy",
    "beam_4",
    "beam_8",
    "beam_16",
    "beam_32",
}

# Run in a fresh process: only TensorFlow, as on a TF Serving host.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, inputs = sys.argv[1], np.load(sys.argv[2])
    audio, lengths = tf.constant(inputs["audio"]), tf.constant(inputs["lengths"])
    model = tf.saved_model.load(path)
    results = {}
    for name in ("serving_default", "greedy", "ctc_greedy", "beam_8"):
        out = model.signatures[name](audio=audio, audio_length=lengths)
        results[name] = {"text": [t.decode() for t in out["text"].numpy()],
                         "score": out["score"].numpy().tolist()}
    wavs = [open(f"{sys.argv[3]}/{row}.wav", "rb").read() for row in range(len(inputs["lengths"]))]
    out = model.signatures["transcribe_wav"](wav_bytes=tf.constant(wavs))
    results["transcribe_wav"] = {"text": [t.decode() for t in out["text"].numpy()],
                                 "score": out["score"].numpy().tolist()}
    empty = model.signatures["serving_default"](
        audio=tf.zeros([0, 160]), audio_length=tf.zeros([0], tf.int32))
    results["empty_batch"] = list(empty["text"].shape)
    # The loader TF Serving uses: a TF1 graph and session, variables restored by name.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        out = session.run(
            {name: tensor.name for name, tensor in signature.outputs.items()},
            {signature.inputs["audio"].name: inputs["audio"],
             signature.inputs["audio_length"].name: inputs["lengths"]})
    results["session"] = {"text": [t.decode() for t in out["text"]],
                          "score": out["score"].tolist()}
    project = [m for m in sys.modules if m.split(".")[0] in ("audio", "seq2seq", "librosa")]
    assert not project, project
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def trained(tiny_asr_run):
    """The config and the best checkpoint of the tiny run, as training builds them."""
    config = load_run(tiny_asr_run)
    model = build_asr_model(config)
    model.load_weights(tiny_asr_run / "best.weights.h5")
    return config, model


@pytest.fixture(scope="module")
def dev(tiny_asr_corpus):
    """Eight dev utterances: `(paths, signals, transcripts)`."""
    utterances = read_speech_tsv(tiny_asr_corpus / "dev.tsv")[:8]
    signals, transcripts = load_utterances(utterances)
    return [u.path for u in utterances], signals, transcripts


@pytest.fixture(scope="module")
def local(tiny_asr_export) -> SavedModelTranscriber:
    """The export, loaded in this process."""
    return SavedModelTranscriber.load(tiny_asr_export)


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


@pytest.mark.parametrize("augmentation", ["spec_augment", "vtlp"])
def test_init_from_an_export_fits_a_model_with_an_augmentation_switched(
    augmentation, tiny_asr_run, tiny_asr_export, trained, tmp_path
):
    # SpecAugment and VTLP add a random-number state, which is not learned: a run that
    # switches one starts from the learned weights of an export made without it, and back.
    config, checkpoint = copy.deepcopy(trained[0]), trained[1]
    counts = []
    for enabled in (True, False):
        getattr(config.model, augmentation).enabled = enabled
        model = build_asr_model(config)
        assert warm_start(model, str(tiny_asr_export), tmp_path / f"run-{enabled}")
        counts.append(len(model.variables))
        learned = [(v.path, v.numpy()) for v in model.variables if "seed_generator" not in v.path]
        expected = [v.numpy() for v in checkpoint.variables if "seed_generator" not in v.path]
        assert len(learned) == len(expected)
        for (path, ours), theirs in zip(learned, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=path)
    assert counts[0] == counts[1] + 1  # the augmentation's random-number state


def test_init_from_an_export_widens_the_ctc_head(
    tiny_asr_corpus, tiny_asr_export, trained, tmp_path
):
    # A model with 2 CTC frames an encoder frame starts from an export with 1: its head
    # repeats the trained one, so the best CTC paths read the same transcripts.
    config, checkpoint = copy.deepcopy(trained[0]), trained[1]
    config.model.ctc_upsampling = 2
    model = build_asr_model(config)
    assert warm_start(model, str(tiny_asr_export), tmp_path / "run")
    kernel = model.ctc_head.kernel.numpy()
    np.testing.assert_array_equal(kernel, np.tile(checkpoint.ctc_head.kernel.numpy(), [1, 2]))
    signals, _ = load_utterances(read_speech_tsv(tiny_asr_corpus / "train.tsv")[:8])
    widened = transcribe_ids(model, signals, beam_size=0)
    assert widened == transcribe_ids(checkpoint, signals, beam_size=0)
    assert any(widened)
    # Any other change of shape is refused, naming the weights.
    config.model.encoder_units *= 2
    with pytest.raises(ValueError, match="cannot start from these weights"):
        warm_start(build_asr_model(config), str(tiny_asr_export), tmp_path / "other")


def test_init_from_an_export_grows_the_encoder(tiny_asr_corpus, tiny_asr_export, trained, tmp_path):
    # A model with one more encoder layer starts from an export with fewer: the new
    # layer adds nothing yet (zero input kernels and biases under its residual
    # connection), so the encoder computes what the trained one does, and a gradient
    # reaches the new layer, so training moves it.
    config, checkpoint = copy.deepcopy(trained[0]), trained[1]
    config.model.encoder_layers += 1
    model = build_asr_model(config)
    assert warm_start(model, str(tiny_asr_export), tmp_path / "run")
    new_layer = model.encoder.rnns[-1]
    for weight in new_layer.weights:
        if weight.name != "recurrent_kernel":
            assert not np.any(weight.numpy()), weight.path
    signals, _ = load_utterances(read_speech_tsv(tiny_asr_corpus / "train.tsv")[:8])
    audio, lengths = pad_audio(signals)
    grown_memory = model.encode(audio, lengths)[0]
    np.testing.assert_array_equal(grown_memory, checkpoint.encode(audio, lengths)[0])
    assert transcribe_ids(model, signals, beam_size=0) == transcribe_ids(
        checkpoint, signals, beam_size=0
    )
    with tf.GradientTape() as tape:
        memory = model.encode(audio, lengths, training=True)[0]
        loss = tf.reduce_sum(tf.square(memory))
    kernel = new_layer.forward_layer.cell.kernel
    assert np.any(tape.gradient(loss, kernel.value).numpy())
    # Growing from more layers, or from none (the first has no residual connection), is
    # refused.
    for trained_layers in (0, config.model.encoder_layers + 1):
        with pytest.raises(ValueError, match="cannot grow from"):
            model.encoder.grow(trained_layers)


def test_training_learns_the_tones(tiny_asr_run, tiny_asr_corpus, trained):
    for name in ("best.weights.h5", "training_curves.png", "config.yaml"):
        assert (tiny_asr_run / name).is_file(), name
    assert any((tiny_asr_run / "logs").rglob("*tfevents*"))
    assert (tiny_asr_run / "backup" / "training_metadata.json").is_file()
    rows = history(tiny_asr_run)
    assert len(rows) == 8
    losses = [float(row["loss"]) for row in rows]
    assert losses[-1] < 0.3 * losses[0], losses
    assert float(rows[-1]["ctc_loss"]) < float(rows[0]["ctc_loss"])
    assert min(float(row["dev_cer"]) for row in rows) < 50.0  # percent, held-out sentences

    # Transcripts of training utterances by the search the checkpoint was chosen with
    # (greedy, joint with CTC): far better than chance (CER ~1). The attention decoder
    # alone is not checked: after 8 tiny epochs it still repeats words on some machines
    # (CER 0.63 on one, where the joint search had 0.05).
    config, model = trained
    signals, references = load_utterances(read_speech_tsv(tiny_asr_corpus / "train.tsv")[:32])
    joint = transcribe_ids(model, signals, beam_size=1, ctc_weight=config.decoding.ctc_weight)
    hypotheses = [characters.decode(ids) for ids in joint]
    assert jiwer.cer(references, hypotheses) < 0.2, list(zip(references, hypotheses, strict=True))
    # The CTC head alone, best path (what `--beam-size 0` runs).
    best_paths = [characters.decode(ids) for ids in transcribe_ids(model, signals, beam_size=0)]
    assert jiwer.cer(references, best_paths) < 0.3, list(zip(references, best_paths, strict=True))


def test_export_layout_ops_and_warmup(tiny_asr_export):
    assert sorted(p.name for p in tiny_asr_export.iterdir()) == ["1"]  # no temporary left
    export_dir = tiny_asr_export / "1"
    info = json.loads((export_dir / "assets" / "export.json").read_text(encoding="utf-8"))
    assert info["task"] == "asr" and info["sample_rate"] == 16000
    assert info["beam_size"] == 4 and info["beam_sizes"] == [0, 1, 4, 8, 16, 32]
    assert info["max_piece_seconds"] == 4.0
    # `--ctc-weight` and `--lm-weight` override the run's, and the assets record them.
    config = yaml.safe_load((export_dir / "assets" / "config.yaml").read_text(encoding="utf-8"))
    assert info["ctc_weight"] == config["decoding"]["ctc_weight"] == 0.5
    assert info["lm"]["weight"] == config["decoding"]["lm_weight"] == 0.3
    assert info["lm"]["order"] == config["decoding"]["lm_order"] == 7
    assert info["lm"]["sentences"] == 960 and info["lm"]["contexts"] > 100
    check_serving_ops(export_dir)  # passes: no PyFunc, no cuDNN, core ops only
    loaded = tf.saved_model.load(str(export_dir))
    assert set(loaded.signatures) == SIGNATURES
    records = list(
        tf.data.TFRecordDataset(str(export_dir / "assets.extra" / "tf_serving_warmup_requests"))
    )
    request = prediction_log_pb2.PredictionLog.FromString(records[-1].numpy()).predict_log.request
    assert set(request.inputs) == {"audio", "audio_length"}
    assert tf.make_ndarray(request.inputs["audio"]).dtype == np.float32


def test_export_without_the_language_model_text_is_a_one_line_error(tiny_asr_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    values = yaml.safe_load((tiny_asr_run / "config.yaml").read_text(encoding="utf-8"))
    values["data"]["dir"] = str(tmp_path / "no-corpus")
    (run / "config.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
    (run / "best.weights.h5").symlink_to(tiny_asr_run / "best.weights.h5")
    base = tmp_path / "asr"
    for flags, needle in (
        (["--lm-weight", "0.3"], "lm.txt"),
        (["--lm-weight", "-1"], "lm_weight"),
        (["--no-repeat-ngram", "3"], "--no-repeat-ngram is for translators"),
    ):
        assert main(["export", "--run", str(run), "--model-base-path", str(base), *flags]) == 2
        error = capsys.readouterr().err
        assert error.startswith("seq2seq export: error:") and error.count("\n") == 1
        assert needle in error
    assert not base.exists()


def test_language_model_learns_the_text_of_every_training_corpus(tmp_path):
    from seq2seq.config import config_from_dict
    from seq2seq.data import characters
    from seq2seq.export.asr import language_model

    sentences = ["the knights rode to the castle", "the river runs to the sea"] * 20
    phrases = ["press star", "press nine", "press star to repeat"] * 20
    corpora = (
        ("main", sentences),
        ("again", sentences),
        ("some", sentences[:3]),
        ("phrases", phrases),
    )
    for name, lines in corpora:
        (tmp_path / name).mkdir()
        (tmp_path / name / "lm.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "no-text").mkdir()
    data = {"dir": str(tmp_path / "main"), "train": "train.tsv"}
    config = config_from_dict({"task": "asr", "data": data, "decoding": {"lm_weight": 0.5}})
    alone, alone_info = language_model(config)
    # A corpus of the same sentences (another prosody draw) or of some of them counts
    # once; one with no lm.txt of its own adds nothing.
    data["train"] = [
        "train.tsv",
        "../again/train.tsv",
        "../some/t.tsv",
        "../phrases/t.tsv",
        "../no-text/t.tsv",
    ]
    config = config_from_dict({"task": "asr", "data": data, "decoding": {"lm_weight": 0.5}})
    both, info = language_model(config)
    assert [t["path"] for t in info["texts"]] == [
        str(tmp_path / "main" / "lm.txt"),
        str(tmp_path / "phrases" / "lm.txt"),
    ]
    assert info["sentences"] == len(sentences) + len(phrases) == 100
    assert alone_info["sentences"] == len(sentences)
    press_star = characters.encode("press star")
    assert both.log_prob(press_star) > alone.log_prob(press_star) + 5.0


def test_an_export_exports_again_with_other_search_settings(tiny_asr_export, local, dev, tmp_path):
    # A shipped model gets this code's signatures and other search settings without its
    # training run: `--run` names the export, whose config and variables are used again.
    base = tmp_path / "asr-en"
    arguments = ["--run", str(tiny_asr_export), "--model-base-path", str(base)]
    settings = ["--beam-size", "8", "--lm-weight", "0", "--length-penalty", "1.0"]
    assert main(["export", *arguments, *settings]) == 0
    info = json.loads((base / "1" / "assets" / "export.json").read_text(encoding="utf-8"))
    assert info["beam_size"] == 8 and info["lm"] is None and info["ctc_weight"] == 0.5
    decoding = load_run(base / "1" / "assets").decoding
    assert decoding.lm_weight == 0.0 and decoding.length_penalty == 1.0
    assert decoding.beam_size == 8  # so that exporting this export again keeps it
    again = SavedModelTranscriber.load(base)
    _, signals, _ = dev
    # The searches without the language model are the same searches of the same weights.
    for beam_size in (0, 1):
        assert [t.text for t in again.transcribe(signals, beam_size)] == [
            t.text for t in local.transcribe(signals, beam_size)
        ]


def test_a_bfloat16_export_transcribes_as_the_float32_one(tiny_asr_export, local, dev, tmp_path):
    # The model's weights in bfloat16, the front-end's and the language model's as they
    # were; a trained model's transcripts unchanged.
    base = tmp_path / "asr-en"
    arguments = ["--run", str(tiny_asr_export), "--model-base-path", str(base)]
    assert main(["export", *arguments, "--dtype-policy", "bfloat16"]) == 0
    loaded = tf.saved_model.load(str(base / "1"))
    front_end = {v.dtype for v in loaded.model_variables if "log_mel" in v.name}
    assert front_end == {tf.float32}  # its mel matrix: the front-end computes in float32
    encoder = {v.dtype for v in loaded.model_variables if "encoder/" in v.name}
    assert encoder == {tf.bfloat16}
    assert {v.dtype for v in loaded.lm_variables} == {tf.int64, tf.uint8}
    again = SavedModelTranscriber.load(base)
    _, signals, _ = dev
    for beam_size in (0, 1, 4):
        ours, theirs = again.transcribe(signals, beam_size), local.transcribe(signals, beam_size)
        assert [t.text for t in ours] == [t.text for t in theirs], beam_size
        np.testing.assert_allclose(
            [t.score for t in ours], [t.score for t in theirs], rtol=0.05, atol=0.05
        )


def test_fresh_process_matches_keras_search(tiny_asr_export, trained, dev, tmp_path):
    config, model = trained
    _, signals, _ = dev
    audio, lengths = pad_audio(signals)
    np.savez(tmp_path / "inputs.npz", audio=audio, lengths=lengths)
    for row, signal in enumerate(signals):
        (tmp_path / f"{row}.wav").write_bytes(to_wav_bytes(signal))  # exact: 16-bit WAVs
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(tiny_asr_export / "1"),
            str(tmp_path / "inputs.npz"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])

    decoding = config.decoding
    info = json.loads((tiny_asr_export / "1" / "assets" / "export.json").read_text("utf-8"))
    lm, _ = language_model(config)  # the run's corpus: the export's language model
    searches = (("greedy", 1), ("ctc_greedy", 0), ("beam_8", 8), ("serving_default", 4))
    for name, beam_size in searches:
        expected = model.search(
            audio,
            lengths,
            beam_size=beam_size,
            length_penalty=decoding.length_penalty,
            max_length_ratio=decoding.max_length_ratio,
            max_length_offset=decoding.max_length_offset,
            ctc_weight=info["ctc_weight"],
            lm=NgramScorer(lm),
            lm_weight=info["lm"]["weight"],
        )
        texts = [
            characters.decode(ids[0][:n])
            for ids, (n,) in zip(expected.ids.numpy(), expected.lengths.numpy(), strict=True)
        ]
        assert outputs[name]["text"] == texts, name
        np.testing.assert_allclose(
            outputs[name]["score"], expected.scores.numpy()[:, 0], rtol=1e-4, atol=1e-5
        )
    assert outputs["transcribe_wav"]["text"] == outputs["serving_default"]["text"]
    np.testing.assert_allclose(
        outputs["transcribe_wav"]["score"], outputs["serving_default"]["score"], atol=1e-4
    )
    assert outputs["session"]["text"] == outputs["serving_default"]["text"]
    assert outputs["empty_batch"] == [0]


def _audio_files(dev, directory: Path) -> tuple[list[str], list[np.ndarray]]:
    """Files for the CLI: dev WAVs, a FLAC at 8 kHz in stereo, a long recording that
    must be split, a broken file and a missing one. Returns their names and the audio
    the good ones hold (None for the bad ones)."""
    paths, signals, _ = dev
    flac = directory / "stereo-8k.flac"
    soundfile.write(flac, np.stack([signals[1], signals[1]], axis=1)[::2], 8000)
    pause = np.zeros(8000, np.float32)
    long = np.concatenate([piece for s in signals for piece in (s, pause)])  # > 4 s pieces
    soundfile.write(directory / "long.wav", long, 16000, subtype="PCM_16")
    (directory / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    names = [
        str(paths[0]),
        str(directory / "broken.wav"),
        str(paths[2]),
        str(directory / "missing.ogg"),
        str(flac),
        str(directory / "long.wav"),
    ]
    audio = [None if "broken" in n or "missing" in n else load_audio(n) for n in names]
    return names, audio


def test_transcribe_cli_one_line_per_file(tiny_asr_export, local, dev, tmp_path):
    names, audio = _audio_files(dev, tmp_path)
    good = [signal for signal in audio if signal is not None]
    transcripts = iter(local.transcribe(good))
    expected = [next(transcripts).text if signal is not None else "" for signal in audio]
    assert local.transcribe([audio[-1]])[0].pieces > 1  # the long file was split

    result = run_seq2seq("transcribe", "--model", str(tiny_asr_export), *names)
    assert result.returncode == 1
    assert result.stdout.splitlines() == expected
    errors = [line for line in result.stderr.splitlines() if line.startswith("seq2seq")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    # and none of TensorFlow's start-up lines (seq2seq.cli.import_tensorflow_quietly)
    assert "absl::InitializeLog" not in result.stderr and "cuda drivers" not in result.stderr
    assert "oneDNN supports" not in result.stderr  # the notice of the model's first call
    assert errors[0].startswith(f"seq2seq transcribe: {names[1]}:")
    assert errors[1] == f"seq2seq transcribe: {names[3]}: no such file"

    # Real transcripts: the dev sentences, the resampled copy, and the long file whole.
    _, _, references = dev
    assert jiwer.cer([references[0], references[2]], [expected[0], expected[2]]) < 0.5
    assert jiwer.cer(references[1], expected[4]) < 0.5
    # The long file is cut at silences into pieces the tiny model hears with less context
    # than whole sentences: a looser bound, still far from a lost piece (CER ~1).
    assert jiwer.cer(" ".join(references), expected[5]) < 0.6


def test_transcribe_json_and_plot(tiny_asr_export, local, dev, tmp_path, capsys):
    paths, signals, _ = dev
    plot = tmp_path / "plot.png"
    argv = ["transcribe", "--model", str(tiny_asr_export), "--json", "--beam-size", "1"]
    assert main([*argv, "--plot", str(plot), str(paths[1])]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert set(record) == {"file", "text", "score", "seconds", "rtf"}
    assert record["file"] == str(paths[1])
    assert record["seconds"] == pytest.approx(len(signals[1]) / 16000, abs=1e-3)
    assert record["rtf"] > 0 and record["score"] <= 0
    assert record["text"] == local.transcribe([signals[1]], beam_size=1)[0].text
    assert plot.read_bytes()[:4] == b"\x89PNG"

    assert main([*argv, str(paths[0]), str(tmp_path / "nope.wav")]) == 1
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[1] == {"file": str(tmp_path / "nope.wav"), "error": out[1]["error"]}
    assert set(out[0]) == {"file", "text", "score", "seconds", "rtf"}


class Echo(Transcriber):
    """A transcriber whose model writes each piece's length and first sample, and
    scores it by its length: what `transcribe` and `transcribe_stream` send, in order."""

    def __init__(self):
        super().__init__("echo", ["serving_default"], max_piece_seconds=20.0)
        self.rows = 0

    def _run(self, signature_name, audio, lengths):
        self.rows += len(lengths)
        texts = [f"{n}:{row[0]:.6f}".encode() for row, n in zip(audio, lengths, strict=True)]
        return texts, -lengths / 1000.0


def test_transcribe_stream_equals_transcribe_of_the_whole():
    rng = np.random.default_rng(3)
    parts = []
    for _ in range(60):  # 2-6 s "words" with short faint pauses: about 4.5 minutes
        parts.append(rng.uniform(-0.5, 0.5, int(rng.uniform(2, 6) * 16000)))
        parts.append(rng.normal(0, 0.001, int(rng.uniform(0.1, 0.5) * 16000)))
    audio = np.concatenate(parts).astype(np.float32)
    whole = Echo().transcribe([audio])[0]
    assert whole.pieces >= 14
    for block_seconds in (0.3, 13.0, 1000.0):
        block = int(block_seconds * 16000)
        echo = Echo()
        streamed = echo.transcribe_stream(audio[i : i + block] for i in range(0, len(audio), block))
        assert streamed == whole and echo.rows == whole.pieces
    assert Echo().transcribe_stream([]) == Echo().transcribe([np.zeros(0, np.float32)])[0]


def test_transcribe_streams_long_files(tiny_asr_export, local, dev, tmp_path, capsys, monkeypatch):
    """A FILE longer than `BLOCK_SECONDS` is read and transcribed block by block, with the
    transcript, duration and JSON of a file loaded whole; the others of the call too."""
    import seq2seq.transcribe

    paths, signals, _ = dev
    monkeypatch.setattr(seq2seq.transcribe, "BLOCK_SECONDS", 1.0)  # every dev file is longer
    flac = tmp_path / "long.flac"
    soundfile.write(flac, np.concatenate(signals), 16000)
    names = [str(paths[0]), str(tmp_path / "nope.wav"), str(flac)]
    assert main(["transcribe", "--model", str(tiny_asr_export), "--json", *names]) == 1
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in records] == names and "error" in records[1]
    expected = local.transcribe([signals[0], np.concatenate(signals)])
    assert [records[0]["text"], records[2]["text"]] == [t.text for t in expected]
    assert records[2]["seconds"] == pytest.approx(sum(len(s) for s in signals) / 16000, abs=1e-3)
    assert records[2]["rtf"] > 0 and "Traceback" not in captured.err


def _text_model(path: Path) -> Path:
    """A SavedModel whose serving_default takes text, as a translator's does."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return {"text": text, "score": tf.zeros(tf.shape(text))}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def test_transcribe_option_errors_are_one_line(tiny_asr_export, dev, tmp_path, capsys):
    paths = [str(p) for p in dev[0][:2]]
    translator = _text_model(tmp_path / "translator")
    cases = [
        (["--model", str(translator), *paths], "not a speech recognizer"),
        (["--model", str(tiny_asr_export), "--plot", str(tmp_path / "p.png"), *paths], "--plot"),
        (["--model", str(tiny_asr_export), "--beam-size", "5", *paths], "beam size 5"),
        (["--model", str(tmp_path / "no-model"), *paths], "no-model"),
        (["--server", "ftp://example/x", *paths], "ftp://example/x"),
    ]
    for args, needle in cases:
        assert main(["transcribe", *args]) == 2, args
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and needle in error, error


def test_transcribe_through_the_server_rest_and_grpc(tiny_asr_export, local, dev, tmp_path):
    paths, signals, _ = dev
    names = [str(paths[0]), str(tmp_path / "missing.wav"), str(paths[1]), str(paths[2])]
    texts = [t.text for t in local.transcribe([signals[0], signals[1], signals[2]])]
    expected = [texts[0], "", texts[1], texts[2]]
    flags = ("--model_name", "asr-en", "--model_base_path", str(tiny_asr_export))
    with serving(*flags, log=tmp_path / "serve.log", ready_model="asr-en") as server:
        for url in (server.rest("asr-en"), server.grpc("asr-en")):
            result = run_seq2seq("transcribe", "--server", url, *names)
            assert result.returncode == 1, result.stderr[-2000:]
            assert result.stdout.splitlines() == expected, url
            assert f"{names[1]}: no such file" in result.stderr

        # TF Serving's row format, audio of different lengths zero-padded into one batch.
        audio, lengths = pad_audio(signals[:3])
        body = {
            "signature_name": "greedy",
            "instances": [
                {"audio": row.tolist(), "audio_length": int(length)}
                for row, length in zip(audio, lengths, strict=True)
            ],
        }
        answer = requests.post(f"{server.rest('asr-en')}:predict", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        greedy = [t.text for t in local.transcribe(signals[:3], beam_size=1)]
        assert [p["text"] for p in predictions] == greedy
        assert all(isinstance(p["score"], float) for p in predictions)
