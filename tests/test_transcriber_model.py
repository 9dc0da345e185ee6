"""The speech model's parts, without training: configs, the character vocabulary, masks
(a batch decodes each utterance as it would alone), the joint loss, decoding joint with
CTC and a language model, the stock-GRU twin and the training input pipeline."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from audio.io import load_audio
from seq2seq.config import (
    SpecAugmentSection,
    SpeechModelConfig,
    VTLPSection,
    WaveAugmentConfig,
    config_from_dict,
    load_config,
)
from seq2seq.data import characters
from seq2seq.data.speech_pipeline import (
    bucket_batch_sizes,
    encode_utterances,
    pad_audio,
    read_speech_tsv,
    training_batches,
)
from seq2seq.models.transcriber import ConvSubsampling, Transcriber
from seq2seq.training.asr import training_utterances
from seq2seq.utils.ctc import ctc_greedy_search
from seq2seq.utils.ngram import CharNgramLM, NgramScorer
from seq2seq.utils.precision import dtype_policy

TINY = "configs/test-asr-tiny.yaml"


def tiny_model(**changes) -> Transcriber:
    keras.utils.set_random_seed(0)
    config = copy.deepcopy(load_config(TINY).model)
    for name, value in changes.items():
        setattr(config, name, value)
    model = Transcriber(config)
    model.build()
    return model


def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * np.arange(n) / 16000)
    return (0.2 * rng.standard_normal(n) * envelope).astype(np.float32)


def test_configs_by_task():
    asr = load_config("configs/asr-en.yaml")
    assert asr.task == "asr" and isinstance(asr.model, SpeechModelConfig)
    assert asr.model.front_end.n_mels == 80 and asr.model.conv_channels == [32, 32]
    assert asr.data.augment.speeds == [0.9, 1.0, 1.1]
    stock = load_config("configs/asr-en-stock.yaml")  # the peer: only the GRU and paths differ
    assert stock.model.gru == "stock" and stock.training.output_dir == "runs/asr-en-stock"
    stock.model.gru, stock.name, stock.training.output_dir = "ours", asr.name, "runs/asr-en"
    assert stock == asr
    translate = load_config("configs/translate-en-fr.yaml")
    assert translate.task == "translate" and translate.data.directions == ["en-fr", "fr-en"]
    # Defaults of a bare asr config never point at the translator's run.
    bare = config_from_dict({"task": "asr"})
    assert bare.name == "asr-en" and bare.training.output_dir == "runs/asr-en"
    assert bare.data.dir == "data/asr-en"
    # Round trip through the run directory's config.yaml.
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(asr.to_dict()))) == asr


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"task": "speech"}, "task"),
        ({"task": "asr", "model": {"embedding": 3}}, "embedding"),
        ({"task": "asr", "model": {"front_end": {"mels": 3}}}, "mels"),
        ({"task": "asr", "model": {"gru": "cudnn"}}, "model.gru"),
        ({"task": "asr", "model": {"ctc_weight": 1.5}}, "ctc_weight"),
        ({"task": "asr", "model": {"ctc_upsampling": 0}}, "ctc_upsampling"),
        ({"task": "asr", "model": {"front_end": {"normalization": "x"}}}, "normalization"),
        ({"task": "asr", "data": {"batch_seconds": 5, "max_seconds": 10}}, "batch_seconds"),
        ({"task": "asr", "data": {"train": []}}, "data.train"),
        ({"task": "asr", "data": {"train": ["train.tsv", 3]}}, "data.train"),
        ({"task": "translate", "data": {"augment": {}}}, "augment"),
        ({"task": "asr", "data": {"augment": {"noise_only_probability": 1}}}, "noise_only"),
    ],
)
def test_bad_asr_configs_name_the_problem(values, needle, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    with pytest.raises(ValueError, match=needle):
        load_config(path)


def test_several_training_files_are_read_together_and_mixed(tiny_asr_corpus, tmp_path):
    # A second corpus beside the first, its paths relative to its own folder.
    more = tmp_path / "more"
    more.mkdir()
    rows = read_speech_tsv(tiny_asr_corpus / "dev.tsv")
    lines = [f"{u.path}\t{u.transcript}\t{u.seconds}\t{u.voice}" for u in rows]
    (more / "train.tsv").write_text("path\ttranscript\tseconds\tvoice\n" + "\n".join(lines))
    data = config_from_dict({"task": "asr", "data": {"dir": str(tiny_asr_corpus)}}).data
    alone = training_utterances(data, seed=1)
    assert alone == read_speech_tsv(tiny_asr_corpus / "train.tsv")  # one file: as written
    data.train = ["train.tsv", str(more / "train.tsv")]
    both = training_utterances(data, seed=1)
    assert sorted(map(str, both)) == sorted(map(str, alone + rows))
    assert both == training_utterances(data, seed=1) != training_utterances(data, seed=2)
    # The second file's utterances are spread over the list, not left at its end.
    second = [i for i, u in enumerate(both) if u in rows]
    assert second[0] < len(both) - len(rows)
    data.train = ["train.tsv", "missing.tsv"]
    with pytest.raises(ValueError, match="missing.tsv: no prepared speech corpus"):
        training_utterances(data, seed=1)


def test_characters_round_trip():
    assert characters.VOCAB_SIZE == 31
    text = "it's a cat"
    assert characters.decode(characters.encode(text)) == text
    assert characters.encode("IT’S — 42 Cats!") == characters.encode("it's cats")
    assert min(characters.encode("a z '")) >= characters.FIRST_CHARACTER_ID


def test_conv_subsampling_lengths_and_padding():
    layer = ConvSubsampling([4, 4], 3, output_dim=6, n_mels=10)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3, 23, 10)).astype(np.float32)
    lengths = np.array([23, 9, 1], np.int32)
    for row, length in enumerate(lengths):
        features[row, length:] = 0.0
    outputs, out_lengths = layer(features, lengths)
    assert tuple(outputs.shape) == (3, 6, 6)
    assert np.asarray(out_lengths).tolist() == [6, 3, 1]  # ceil(ceil(n / 2) / 2)
    for row, length in enumerate(lengths):
        alone, _ = layer(features[row : row + 1, :length], lengths[row : row + 1])
        n = int(out_lengths[row])
        np.testing.assert_allclose(np.asarray(outputs)[row, :n], np.asarray(alone)[0], atol=1e-5)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # 1-frame memory
def test_a_batch_transcribes_each_utterance_as_alone():
    model = tiny_model()
    signals = [speech_like(1.3, 1), speech_like(0.45, 2), speech_like(0.9, 3)]
    audio, lengths = pad_audio(signals)
    batch = model.search(audio, lengths, beam_size=3, ctc_weight=0.3, n_best=2)
    for row, signal in enumerate(signals):
        length = np.array([len(signal)], np.int32)
        alone = model.search(signal[None], length, beam_size=3, ctc_weight=0.3, n_best=2)
        np.testing.assert_allclose(batch.scores[row], alone.scores[0], rtol=1e-4, atol=1e-4)
        n = int(alone.lengths[0, 0])
        assert batch.ids.numpy()[row, 0, :n].tolist() == alone.ids.numpy()[0, 0, :n].tolist()
    # Empty audio: an empty transcript.
    empty = model.search(np.zeros((1, 400), np.float32), np.zeros(1, np.int32), beam_size=1)
    assert int(empty.lengths[0, 0]) == 0


def test_joint_loss_survives_an_utterance_too_short_for_its_transcript():
    model = tiny_model(ctc_weight=0.5)
    audio, lengths = pad_audio([speech_like(1.0, 4), speech_like(0.05, 5)])  # 2 frames
    ids = characters.encode("a long transcript")
    target_in = np.array([[characters.BOS_ID, *ids]] * 2, np.int32)
    target_out = np.array([[*ids, characters.EOS_ID]] * 2, np.int32)
    inputs = {"audio": audio, "audio_length": lengths, "target_in": target_in}
    with tf.GradientTape() as tape:
        loss = model.compute_loss(y=target_out, y_pred=model(inputs, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss))
    assert all(np.isfinite(tf.convert_to_tensor(g)).all() for g in gradients if g is not None)
    ce, ctc = float(model.ce_tracker.result()), float(model.ctc_tracker.result())
    assert ce > 0 and ctc > 0
    assert float(loss) == pytest.approx(0.5 * ce + 0.5 * ctc, rel=1e-5)


def test_vtlp_warps_the_features_in_training_only():
    plain = tiny_model()
    warped = tiny_model(vtlp=VTLPSection(enabled=True, max_warp=0.2))
    audio, lengths = pad_audio([speech_like(1.0, 1), speech_like(0.6, 2)])
    reference, frames = plain.features(audio, lengths)
    inference, _ = warped.features(audio, lengths)
    np.testing.assert_array_equal(np.asarray(inference), np.asarray(reference))
    spec = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
    graph = tf.function(lambda x, n: warped.features(x, n, training=True), input_signature=spec)
    training, _ = graph(audio, lengths)
    training, reference = np.asarray(training), np.asarray(reference)
    valid = np.arange(reference.shape[1])[None, :] < np.asarray(frames)[:, None]
    for row in range(2):  # each utterance warped, its padding left alone
        assert np.abs(training[row][valid[row]] - reference[row][valid[row]]).mean() > 0.01
        np.testing.assert_array_equal(training[row][~valid[row]], reference[row][~valid[row]])


@pytest.mark.parametrize("upsampling", [1, 2])
def test_ctc_greedy_search_reads_the_ctc_head_and_ignores_padding(upsampling):
    model = tiny_model(ctc_upsampling=upsampling)
    signals = [speech_like(1.3, 1), speech_like(0.45, 2), speech_like(0.9, 3)]
    audio, lengths = pad_audio(signals)
    result = model.search(audio, lengths, beam_size=0)
    memory, _, memory_mask, _, ctc_logits, frame_lengths = model.encode(audio, lengths)
    # Each encoder frame gives `upsampling` CTC frames, the head's outputs in order.
    encoder_lengths = np.sum(np.asarray(memory_mask), axis=1)
    np.testing.assert_array_equal(frame_lengths, upsampling * encoder_lengths)
    assert ctc_logits.shape[1] == upsampling * memory.shape[1]
    head = np.asarray(model.ctc_head(memory))
    np.testing.assert_array_equal(np.reshape(ctc_logits, head.shape), head)
    expected = ctc_greedy_search(ctc_logits, frame_lengths)
    np.testing.assert_array_equal(result.ids, expected.ids)
    for row, signal in enumerate(signals):
        n = int(result.lengths[row, 0])
        alone = model.search(signal[None], np.array([len(signal)]), beam_size=0)
        assert alone.ids.numpy()[0, 0, :n].tolist() == result.ids.numpy()[row, 0, :n].tolist()
    empty = model.search(np.zeros((1, 400), np.float32), np.zeros(1, np.int32), beam_size=0)
    assert int(empty.lengths[0, 0]) == 0


def tiny_lm() -> CharNgramLM:
    """A 3-gram model of a few made-up sentences over the whole alphabet."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "it's", "zebra"]
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(200)]
    return CharNgramLM.estimate(
        [characters.encode(s) for s in sentences], 3, characters.VOCAB_SIZE,
        characters.BOS_ID, characters.EOS_ID, min_count=2,
    )  # fmt: skip


@pytest.mark.parametrize(("ctc_weight", "lm_weight"), [(0.5, 0.0), (1.0, 0.0), (0.3, 0.7)])
def test_joint_decoding_scores_are_the_weighted_decoder_ctc_and_lm_log_likelihoods(
    ctc_weight, lm_weight
):
    """Every hypothesis of a joint beam search ends with EOS within the audio's frames,
    and its score is `(1 - w) * decoder + w * CTC + lm_weight * LM` log-likelihood (LM
    0 for an empty transcript), each computed apart: the decoder teacher-forced on the
    transcript, CTC by TensorFlow's own loss, the language model by its NumPy look-up."""
    model = tiny_model()
    signals = [speech_like(1.3, 4), speech_like(0.7, 5)]
    audio, lengths = pad_audio(signals)
    lm = tiny_lm()
    result = model.search(
        audio, lengths, beam_size=3, length_penalty=0.0, n_best=3, ctc_weight=ctc_weight,
        lm=NgramScorer(lm), lm_weight=lm_weight,
    )  # fmt: skip
    *_, ctc_logits, frame_lengths = model.encode(audio, lengths)
    checked = 0
    for row in range(len(signals)):
        for k in range(3):
            n = int(result.lengths[row, k])
            transcript = result.ids.numpy()[row, k, :n].tolist()
            assert n <= int(frame_lengths[row])
            assert all(token > characters.EOS_ID for token in transcript)
            inputs = {
                "audio": audio[row : row + 1],
                "audio_length": lengths[row : row + 1],
                "target_in": np.array([[characters.BOS_ID, *transcript]], np.int32),
            }
            log_probs = tf.nn.log_softmax(model(inputs)["logits"][0]).numpy()
            decoder = log_probs[np.arange(n + 1), [*transcript, characters.EOS_ID]].sum()
            ctc = -tf.nn.ctc_loss(
                tf.constant([transcript or [0]], tf.int32),
                ctc_logits[row : row + 1],
                tf.constant([n]),
                frame_lengths[row : row + 1],
                logits_time_major=False,
                blank_index=characters.BLANK_ID,
            )[0]
            expected = (1 - ctc_weight) * decoder + ctc_weight * float(ctc)
            if transcript:  # the language model leaves the empty transcript alone
                expected += lm_weight * lm.log_prob(transcript)
            assert float(result.scores[row, k]) == pytest.approx(expected, rel=1e-3, abs=1e-3)
            checked += 1
    assert checked == 6


def test_the_language_model_leaves_the_empty_transcript_to_the_acoustic_scores():
    """Where the CTC head says blank at every frame (silence), the search with a language
    model returns the empty transcript with the CTC score alone: the model's text has no
    empty sentence, so its own log-prob for one (EOS right after BOS) is low, and added
    to the score it would make the search write something for silence."""
    model = tiny_model()
    bias = np.full(model.ctc_head.bias.shape, -10.0, np.float32)
    bias[characters.BLANK_ID :: characters.VOCAB_SIZE] = 10.0  # every upsampled frame
    model.ctc_head.bias.assign(bias)
    model.ctc_head.kernel.assign(np.zeros(model.ctc_head.kernel.shape, np.float32))
    lm = tiny_lm()
    assert lm.log_prob([]) < -5.0
    audio, lengths = pad_audio([np.zeros(16000, np.float32), speech_like(0.8, 6)])
    *_, ctc_logits, frame_lengths = model.encode(audio, lengths)
    all_blank = -tf.nn.ctc_loss(
        tf.zeros([2, 1], tf.int32), ctc_logits, tf.zeros([2], tf.int32), frame_lengths,
        logits_time_major=False, blank_index=characters.BLANK_ID,
    )  # fmt: skip
    for beam_size in (1, 4):
        result = model.search(
            audio, lengths, beam_size=beam_size, length_penalty=1.0, ctc_weight=1.0,
            lm=NgramScorer(lm), lm_weight=0.8,
        )  # fmt: skip
        np.testing.assert_array_equal(result.lengths[:, 0], [0, 0])
        np.testing.assert_allclose(result.scores[:, 0], all_blank, rtol=1e-4, atol=1e-4)


def test_stock_gru_twin_has_the_same_weights_and_function():
    ours = tiny_model()
    stock = tiny_model(gru="stock")
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in stock.get_weights()]
    stock.set_weights(ours.get_weights())
    audio, lengths = pad_audio([speech_like(0.8, 6), speech_like(0.5, 7)])
    target_in = np.array([[2, 5, 6], [2, 7, 0]], np.int32)
    inputs = {"audio": audio, "audio_length": lengths, "target_in": target_in}
    np.testing.assert_allclose(
        np.asarray(ours(inputs)["logits"]), np.asarray(stock(inputs)["logits"]), atol=1e-4
    )


def test_mixed_bfloat16_policy_keeps_the_front_end_heads_and_weights_float32():
    # training.dtype_policy: mixed_bfloat16, as seq2seq.training.asr builds it.
    augmented = {"vtlp": VTLPSection(enabled=True), "spec_augment": SpecAugmentSection()}
    reference = tiny_model(**augmented)
    with dtype_policy("mixed_bfloat16"):
        mixed = tiny_model(**augmented)
    assert keras.config.dtype_policy().name == "float32"  # restored
    mixed.set_weights(reference.get_weights())
    assert mixed.encoder.compute_dtype == mixed.decoder.compute_dtype == "bfloat16"
    for layer in (mixed.log_mel, mixed.normalization, mixed.vtlp, mixed.spec_augment):
        assert layer.compute_dtype == "float32", layer.name
    assert {v.dtype for v in mixed.variables if v.trainable} == {"float32"}
    audio, lengths = pad_audio([speech_like(0.8, 6), speech_like(0.5, 7)])
    ids = characters.encode("a cat")
    target_in = np.array([[characters.BOS_ID, *ids]] * 2, np.int32)
    target_out = np.array([[*ids, characters.EOS_ID]] * 2, np.int32)
    inputs = {"audio": audio, "audio_length": lengths, "target_in": target_in}
    losses = {}
    for name, model in (("float32", reference), ("mixed", mixed)):
        outputs = model(inputs)
        for key in ("logits", "ctc_logits"):
            assert keras.backend.standardize_dtype(outputs[key].dtype) == "float32", key
        losses[name] = float(model.compute_loss(y=target_out, y_pred=outputs))
    assert losses["mixed"] == pytest.approx(losses["float32"], rel=0.02)
    # Its search scores in float32 (the beam state mixes both heads' log-probs).
    result = mixed.search(audio, lengths, beam_size=2, ctc_weight=0.3)
    assert keras.backend.standardize_dtype(result.scores.dtype) == "float32"


def test_training_batches_pad_audio_and_align_targets(tiny_asr_corpus):
    utterances, ids = encode_utterances(read_speech_tsv(tiny_asr_corpus / "train.tsv"), 4.0)
    assert len(utterances) == 240 and utterances[0].voice.startswith("tones")
    dataset = training_batches(
        utterances[:60], ids[:60], 6.0, [1.0, 2.0], 4.0, shuffle_buffer=60, seed=1
    )
    rows = 0
    for inputs, target_out in dataset:
        audio, lengths = inputs["audio"].numpy(), inputs["audio_length"].numpy()
        assert audio.shape[1] == lengths.max() and audio.shape[0] == len(lengths)
        for row, length in enumerate(lengths):
            assert not audio[row, length:].any()
        # Sizes by bucket upper bound: 6 of <= 1 s, 3 of <= 2 s, 1 longer.
        assert bucket_batch_sizes([1.0, 2.0], 6.0, 4.0) == [6, 3, 1]
        assert audio.size <= 6.0 * 16000 + 6
        target_in, target_out = inputs["target_in"].numpy(), target_out.numpy()
        assert (target_in[:, 0] == characters.BOS_ID).all()
        for row in range(len(lengths)):
            chars = [t for t in target_out[row] if t > characters.EOS_ID]
            assert target_out[row][len(chars)] == characters.EOS_ID
            assert target_in[row][1 : len(chars) + 1].tolist() == chars
        rows += len(lengths)
    assert rows == 60  # every utterance once per epoch


def test_some_training_utterances_become_noise_with_an_empty_transcript(tiny_asr_corpus):
    utterances, ids = encode_utterances(read_speech_tsv(tiny_asr_corpus / "train.tsv"), 4.0)
    clean = {len(load_audio(str(u.path), 16000)) for u in utterances[:60]}
    augment = WaveAugmentConfig(speeds=[1.0], noise_probability=0.0, noise_only_probability=0.4)

    def epoch(seed):
        dataset = training_batches(
            utterances[:60], ids[:60], 6.0, [1.0, 2.0], 4.0, augment=augment, seed=seed
        )
        rows = []
        for inputs, target_out in dataset:
            for row, length in enumerate(inputs["audio_length"].numpy()):
                audio = inputs["audio"].numpy()[row, :length]
                rows.append((audio, target_out.numpy()[row], inputs["target_in"].numpy()[row]))
        return rows

    rows = epoch(seed=2)
    noise = [(audio, out, into) for audio, out, into in rows if out[0] == characters.EOS_ID]
    assert len(rows) == 60 and 10 <= len(noise) <= 38
    for audio, target_out, target_in in noise:
        assert not target_out[1:].any() and target_in[0] == characters.BOS_ID
        assert not target_in[1:].any()
        level = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))
        assert -76 < level < -24 and len(audio) in clean  # as long as the file it replaced
    speech = [audio for audio, out, _ in rows if out[0] != characters.EOS_ID]
    assert min(10 * np.log10(np.mean(a.astype(np.float64) ** 2)) for a in speech) > -24
    again = epoch(seed=2)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rows, again, strict=True))
