"""The speech front-end (`audio/`): loading, librosa log-mel features and their
in-graph twin (also inside a SavedModel), normalization, silence splitting,
augmentation and plots."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio.augment import (
    add_noise,
    augment_waveform,
    background_noise,
    pink_noise,
    signal_to_noise_db,
    speed_perturb,
    white_noise,
)
from audio.features import FrontEndConfig, log_mel_librosa
from audio.io import (
    AudioError,
    AudioWarning,
    audio_duration,
    load_audio,
    read_wav_bytes,
    silence_spans,
    split_at_silences,
    split_stream,
    stream_audio,
    to_wav_bytes,
)

SR = 16000
# Measured max |twin - librosa| of the log-mel: 9.5e-7 (one float32 ulp at |x| ~ 8-16).
TWIN_TOLERANCE = 1e-5
REAL_SOUNDS = Path("/usr/share/games/wesnoth/1.16/sounds")  # real recordings, if installed


def tone_sweep(seconds: float, low: float = 100.0, high: float = 7500.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (low * t + (high - low) / (2 * seconds) * t**2)
    return (0.5 * np.sin(phase)).astype(np.float32)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise through two resonances, amplitude-modulated at a syllable rate."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / SR)
    shape = sum(1 / (1 + ((frequencies - f) / 150) ** 2) for f in (500, 1500))
    noise = np.fft.irfft(spectrum * shape, n)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(n) / SR)
    audio = noise * envelope**2
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


def clipped(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.clip(4.0 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32)


def padded_batch(signals, garbage: float = 0.5):
    """A zero-padded batch, except that row 0 holds noise past its length
    (which `LogMel` must ignore)."""
    longest = max(len(s) for s in signals)
    batch = np.zeros((len(signals), longest), np.float32)
    for row, signal in zip(batch, signals, strict=True):
        row[: len(signal)] = signal
    batch[0, len(signals[0]) :] = garbage * np.random.default_rng(9).uniform(
        -1, 1, longest - len(signals[0])
    )
    return batch, np.array([len(s) for s in signals], np.int32)


SIGNALS = {
    "speech-like short": speech_like(0.77, seed=1),  # row 0: noise past its length
    "chirp": tone_sweep(2.0),
    "speech-like": speech_like(1.5, seed=2),
    "silence": np.zeros(5000, np.float32),
    "clipped": clipped(1.0),
    "one sample": np.array([0.25], np.float32),
    "shorter than a window": speech_like(0.03, seed=3)[:399],
    "hop multiple": speech_like(0.5, seed=4)[:1600],
}


@pytest.fixture(scope="module")
def warm_librosa():
    """One melspectrogram call, so that numba's compilation (~13 s in a fresh
    environment, ~1 s from its cache) is paid once for the module."""
    log_mel_librosa(np.zeros(SR // 10, np.float32))


# -- the in-graph twin ---------------------------------------------------------------------


def test_twin_matches_librosa_on_a_padded_batch(warm_librosa):
    from audio.features import LogMel

    signals = list(SIGNALS.values())
    batch, lengths = padded_batch(signals)
    features, frame_lengths = (np.asarray(x) for x in LogMel()(batch, lengths))
    assert features.shape == (len(signals), 1 + batch.shape[1] // 160, 80)
    worst = 0.0
    for row, (name, signal) in enumerate(SIGNALS.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # librosa: n_fft > signal length
            reference = log_mel_librosa(signal)
        frames = int(frame_lengths[row])
        assert frames == len(reference) == 1 + len(signal) // 160, name
        difference = float(np.abs(features[row, :frames] - reference).max())
        worst = max(worst, difference)
        assert difference < TWIN_TOLERANCE, (name, difference)
        assert not features[row, frames:].any(), f"{name}: padded frames are not 0"
    print(f"max |LogMel - librosa| of log-mel on synthetic audio: {worst:.2e}")


@pytest.mark.skipif(not REAL_SOUNDS.is_dir(), reason="no real recordings installed")
def test_twin_matches_librosa_on_real_recordings(warm_librosa):
    from audio.features import LogMel

    paths = sorted(REAL_SOUNDS.glob("*.ogg"))[:2] + sorted(REAL_SOUNDS.glob("*.wav"))[:2]
    signals = [load_audio(path)[: 3 * SR] for path in paths]
    batch, lengths = padded_batch(signals, garbage=0.0)
    features, frame_lengths = (np.asarray(x) for x in LogMel()(batch, lengths))
    for row, signal in enumerate(signals):
        difference = np.abs(features[row, : frame_lengths[row]] - log_mel_librosa(signal)).max()
        assert difference < TWIN_TOLERANCE, (paths[row], difference)


def test_twin_edge_cases():
    from audio.features import LogMel

    layer = LogMel(FrontEndConfig(n_mels=40, fmax=None).get_config())
    features, frame_lengths = layer(np.ones((2, 1000), np.float32), np.array([0, 5000]))
    assert np.asarray(frame_lengths).tolist() == [0, 7]  # empty row; length clipped
    assert not np.asarray(features)[0].any()
    everything, _ = layer(np.ones((2, 1000), np.float32))  # no lengths: all samples
    np.testing.assert_array_equal(np.asarray(everything)[1], np.asarray(features)[1])
    assert layer.mel_matrix.shape == (201, 40) and not layer.trainable_weights


def test_layers_serialize():
    import keras

    from audio.augment import SpecAugment
    from audio.features import FeatureNormalization, LogMel

    config = FrontEndConfig(n_mels=64, fmin=20.0)
    for layer in (LogMel(config), FeatureNormalization(64, "global"), SpecAugment(seed=3)):
        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(copy) is type(layer) and copy.get_config() == layer.get_config()
    assert LogMel(config.get_config()).config == config


# -- normalization ------------------------------------------------------------------------


def ragged_features(seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.array([7, 3, 5])
    features = rng.normal(2.0, 3.0, size=(3, 7, 4)).astype(np.float32)
    return features, lengths


def test_normalization_modes():
    from audio.features import FeatureNormalization

    features, lengths = ragged_features()
    rows = [features[i, :n] for i, n in enumerate(lengths)]

    utterance = np.asarray(FeatureNormalization(4, "utterance", epsilon=0.0)(features, lengths))
    for i, row in enumerate(rows):
        expected = (row - row.mean(0)) / row.std(0)
        np.testing.assert_allclose(utterance[i, : lengths[i]], expected, atol=1e-5)
        assert not utterance[i, lengths[i] :].any()

    global_layer = FeatureNormalization(4, "global", epsilon=0.0)
    global_layer.adapt(features, lengths)
    stacked = np.concatenate(rows)
    np.testing.assert_allclose(np.asarray(global_layer.mean), stacked.mean(0), rtol=1e-5)
    normalized = np.asarray(global_layer(features, lengths))
    np.testing.assert_allclose(
        normalized[0], (rows[0] - stacked.mean(0)) / stacked.std(0), atol=1e-5
    )

    # The default: the utterance's own mean, a global scale; blind to a gain change.
    default = FeatureNormalization(4)
    default.adapt([(features, lengths)])
    centred = np.concatenate([row - row.mean(0) for row in rows])
    np.testing.assert_allclose(np.asarray(default.variance), centred.var(0), rtol=1e-5)
    louder = np.asarray(default(features + 3.0, lengths))
    np.testing.assert_allclose(louder, np.asarray(default(features, lengths)), atol=1e-5)


# -- the SavedModel ------------------------------------------------------------------------

# Runs in a fresh process that imports only TensorFlow, as on a TF Serving host.
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    path, inputs = sys.argv[1], np.load(sys.argv[2])
    results = {}
    model = tf.saved_model.load(path)
    out = model.signatures["serving_default"](
        audio=tf.constant(inputs["audio"]), audio_length=tf.constant(inputs["lengths"]))
    results.update({"eager_" + name: value.numpy() for name, value in out.items()})
    wavs = [open(f"{row}.wav", "rb").read() for row in range(len(inputs["lengths"]))]
    out = model.signatures["transcribe_wav"](wav_bytes=tf.constant(wavs))
    results.update({"wav_" + name: value.numpy() for name, value in out.items()})
    # The loader TF Serving uses: a TF1 graph and session, variables restored by name.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        out = session.run(
            {name: tensor.name for name, tensor in signature.outputs.items()},
            {signature.inputs["audio"].name: inputs["audio"],
             signature.inputs["audio_length"].name: inputs["lengths"]})
    results.update({"session_" + name: value for name, value in out.items()})
    project = [m for m in sys.modules if m.split(".")[0] in ("audio", "seq2seq", "librosa")]
    assert not project, project
    np.savez(sys.argv[3], **results)
    """
)


def front_end_model():
    """A tiny Keras model of the front-end: audio and lengths to log-mel features,
    normalized features and frame lengths."""
    import keras

    from audio.features import FeatureNormalization, LogMel

    audio = keras.Input((None,), name="audio")
    lengths = keras.Input((), dtype="int32", name="audio_length")
    features, frame_lengths = LogMel()(audio, lengths)
    normalization = FeatureNormalization()
    normalized = normalization(features, frame_lengths)
    model = keras.Model([audio, lengths], [features, normalized, frame_lengths])
    normalization.variance.assign(np.linspace(1.0, 4.0, 80).astype(np.float32))
    return model


def export_front_end(model, path: Path) -> None:
    import tensorflow as tf

    from audio.features import decode_wav_batch

    module = tf.Module()
    module.model = model
    module.variables_ = [v.value for v in model.variables]  # for the session loader

    def outputs(audio, lengths):
        features, normalized, frame_lengths = model([audio, lengths])
        return {"features": features, "normalized": normalized, "frame_lengths": frame_lengths}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="audio"),
            tf.TensorSpec([None], tf.int32, name="audio_length"),
        ]
    )
    def serving_default(audio, audio_length):
        return outputs(audio, audio_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="wav_bytes")])
    def transcribe_wav(wav_bytes):
        return outputs(*decode_wav_batch(wav_bytes))

    signatures = {"serving_default": serving_default, "transcribe_wav": transcribe_wav}
    tf.saved_model.save(module, str(path), signatures=signatures)


def saved_model_ops(path: Path) -> set[str]:
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for graph in (meta_graph.graph_def for meta_graph in saved_model.meta_graphs):
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def test_saved_model_round_trip(tmp_path, warm_librosa):
    import tensorflow as tf

    model = front_end_model()
    signals = [SIGNALS[name] for name in ("chirp", "speech-like", "clipped", "silence")]
    signals = [np.round(s * 32767) / 32768 for s in signals]  # exact in 16-bit WAV
    batch, lengths = padded_batch(signals, garbage=0.0)
    expected = [np.asarray(x) for x in model([batch, lengths])]
    export_front_end(model, tmp_path / "model")

    ops = saved_model_ops(tmp_path / "model")
    assert "RFFT" in ops
    forbidden = {op for op in ops if "PyFunc" in op or op.startswith("Cudnn")}
    assert not forbidden and ops <= set(dir(tf.raw_ops)), forbidden | (ops - set(dir(tf.raw_ops)))

    for row, signal in enumerate(signals):
        (tmp_path / f"{row}.wav").write_bytes(to_wav_bytes(signal))
    np.savez(tmp_path / "inputs.npz", audio=batch, lengths=lengths)
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "model"), "inputs.npz", "out.npz"],
        cwd=tmp_path,
        check=True,
        timeout=300,
    )
    results = np.load(tmp_path / "out.npz")
    for prefix in ("eager_", "session_", "wav_"):
        np.testing.assert_allclose(results[prefix + "features"], expected[0], atol=1e-6)
        np.testing.assert_allclose(results[prefix + "normalized"], expected[1], atol=1e-5)
        np.testing.assert_array_equal(results[prefix + "frame_lengths"], expected[2])
    for row, signal in enumerate(signals):
        reference = log_mel_librosa(signal)
        difference = np.abs(results["session_features"][row, : len(reference)] - reference)
        assert difference.max() < TWIN_TOLERANCE


def test_decode_wav_batch_is_read_wav_bytes():
    import tensorflow as tf

    from audio.features import decode_wav_batch

    rng = np.random.default_rng(5)
    stereo = rng.uniform(-1, 1, size=(1234, 2)).astype(np.float32)
    mono = rng.uniform(-1, 1, size=567).astype(np.float32)
    wavs = [to_wav_bytes(stereo), to_wav_bytes(mono)]
    audio, lengths = (np.asarray(x) for x in decode_wav_batch(tf.constant(wavs)))
    assert lengths.tolist() == [1234, 567] and audio.shape == (2, 1234)
    for row, data in enumerate(wavs):
        np.testing.assert_allclose(audio[row, : lengths[row]], read_wav_bytes(data), atol=1e-7)
    assert not audio[1, 567:].any()
    with pytest.raises(tf.errors.InvalidArgumentError, match="16000 Hz"):
        decode_wav_batch(tf.constant([to_wav_bytes(mono, 8000)]))


# -- loading ------------------------------------------------------------------------------


def two_channels(rate: int, seconds: float = 1.0) -> np.ndarray:
    """Different band-limited content per channel (below 3.5 kHz: survives 8 kHz)."""
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.minimum(1.0, 10 * np.minimum(t, seconds - t))
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    right = 0.3 * np.sin(2 * np.pi * 1200 * t + 0.5)
    return (envelope[:, None] * np.stack([left, right], axis=1)).astype(np.float32)


FORMATS = [  # (extension, soundfile format, subtype, sample rate, channels, lossy)
    ("wav", "WAV", "PCM_24", 8000, 2, False),
    ("wav", "WAV", "PCM_16", 44100, 1, False),
    ("wav", "WAV", "FLOAT", 48000, 2, False),
    ("flac", "FLAC", "PCM_16", 22050, 2, False),
    ("flac", "FLAC", "PCM_24", 16000, 1, False),
    ("ogg", "OGG", "VORBIS", 44100, 2, True),
    ("opus", "OGG", "OPUS", 48000, 1, True),
    ("mp3", "MP3", "MPEG_LAYER_III", 44100, 2, True),
    ("mp3", "MP3", "MPEG_LAYER_III", 16000, 1, True),
]


@pytest.mark.parametrize(("extension", "kind", "subtype", "rate", "channels", "lossy"), FORMATS)
def test_load_audio_formats(tmp_path, extension, kind, subtype, rate, channels, lossy):
    import librosa

    original = two_channels(rate)[:, :channels]
    path = tmp_path / f"clip.{extension}"
    soundfile.write(path, original, rate, format=kind, subtype=subtype)
    loaded = load_audio(path)
    expected = librosa.resample(
        original.mean(axis=1), orig_sr=rate, target_sr=SR, res_type="soxr_hq"
    )
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    if not lossy:
        assert len(loaded) == len(expected)
        np.testing.assert_allclose(loaded, expected, atol=2e-4)  # 16-bit quantization
    else:
        assert abs(len(loaded) - len(expected)) <= 2
        n = min(len(loaded), len(expected))
        error = np.sqrt(np.mean((loaded[:n] - expected[:n]) ** 2) / np.mean(expected[:n] ** 2))
        assert error < 0.1, error  # SNR > 20 dB
    np.testing.assert_array_equal(load_audio(path.read_bytes()), loaded)  # bytes in, same out


def wav_bytes(seconds: float = 0.5) -> bytes:
    return to_wav_bytes(np.sin(np.arange(int(SR * seconds)) / 9.0) * 0.5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("random.wav", np.random.default_rng(0).bytes(3000), "cannot decode"),
        ("header.wav", wav_bytes()[:20], "cannot decode"),
        ("empty.wav", b"", "empty file"),
        ("cut.wav", wav_bytes()[: 44 + 5000], "truncated"),
        ("no-samples.wav", wav_bytes()[:44], "truncated"),
        ("cut.flac", None, "cannot decode"),
        ("cut.ogg", None, "truncated"),
        ("cut.mp3", None, "truncated"),
    ],
)
@pytest.mark.filterwarnings("ignore::audio.io.AudioWarning")  # half an MP3: damage, then error
def test_bad_files_raise_audio_error_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:  # half of a real file of that format
        buffer = io.BytesIO()
        kind = path.suffix[1:].upper()
        soundfile.write(buffer, speech_like(2.0, seed=7), SR, format=kind)
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as error:
        load_audio(path)
    assert str(error.value).startswith(str(path))


def test_damaged_mp3_frames_are_one_warning_not_decoder_chatter(tmp_path, capfd):
    """libmpg123 skips damaged frames and says so on file descriptor 2: the notes become
    one `AudioWarning` naming the file, and nothing reaches the real stderr."""
    buffer = io.BytesIO()
    soundfile.write(buffer, speech_like(10.0, seed=8), SR, format="MP3")
    data = bytearray(buffer.getvalue())
    data[20000:20100] = bytes(100)  # a frame of zeros in the middle (< 1% of the audio)
    path = tmp_path / "damaged.mp3"
    path.write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.warns(AudioWarning, match="damaged.mp3: the decoder reported damage") as caught:
        audio = load_audio(path)
    assert len(caught) == 1 and len(audio) > SR  # the rest decoded
    assert capfd.readouterr().err == ""
    with warnings.catch_warnings():  # an intact file: no warning
        warnings.simplefilter("error")
        load_audio(buffer.getvalue())


def test_missing_file_and_lenient_truncation(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.mp3")
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)
    with pytest.warns(AudioWarning, match="cut.wav: truncated"):
        audio = load_audio(wav_bytes()[: 44 + 5000], name="cut.wav", strict=False)
    assert len(audio) == 2500
    with pytest.raises(AudioError, match="^cut.wav: contains no audio"), pytest.warns(AudioWarning):
        load_audio(wav_bytes()[:44], name="cut.wav", strict=False)


def test_non_finite_samples_are_replaced_and_clipped(tmp_path):
    samples = np.array([0.1, np.nan, 2.0, -np.inf, np.inf, -0.5], np.float32)
    path = tmp_path / "bad-values.wav"
    soundfile.write(path, samples, SR, subtype="FLOAT")
    with pytest.warns(AudioWarning, match="bad-values.wav: replaced 3 non-finite"):
        audio = load_audio(path)
    np.testing.assert_array_equal(audio, np.float32([0.1, 0.0, 1.0, 0.0, 0.0, -0.5]))


def test_read_wav_bytes():
    samples = np.arange(-32768, 32768, 97, dtype=np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SR, format="WAV", subtype="PCM_16")
    np.testing.assert_array_equal(read_wav_bytes(buffer.getvalue()), samples / np.float32(32768))
    slow = to_wav_bytes(np.zeros(800), sample_rate=8000)
    assert read_wav_bytes(slow).shape == (1600,)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(10), SR, format="WAV", subtype="PCM_24")
    with pytest.raises(AudioError, match="upload.wav: expected 16-bit PCM WAV, got WAV PCM_24"):
        read_wav_bytes(buffer.getvalue(), name="upload.wav")
    with pytest.raises(AudioError, match="not a WAV"):
        read_wav_bytes(b"ID3 surely not a wav")


# -- long audio -----------------------------------------------------------------------------


def words_and_pauses(seconds: float, seed: int):
    """Bursts of speech-like sound between pauses of faint noise; returns the
    audio and the pauses as (start, end) sample spans."""
    rng = np.random.default_rng(seed)
    pieces, pauses, position = [], [], 0
    while position < seconds * SR:
        word = speech_like(rng.uniform(0.3, 2.5), seed=int(rng.integers(1 << 30)))
        pause = (0.001 * rng.standard_normal(int(rng.uniform(0.12, 0.6) * SR))).astype(np.float32)
        pieces += [word, pause]
        pauses.append((position + len(word), position + len(word) + len(pause)))
        position += len(word) + len(pause)
    return np.concatenate(pieces), pauses


def test_split_at_silences_cuts_in_pauses():
    audio, pauses = words_and_pauses(70.0, seed=11)
    spans = silence_spans(audio, max_seconds=20.0)
    assert spans[0][0] == 0 and spans[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(0 < end - start <= 20 * SR for start, end in spans)
    assert len(spans) <= 7
    for cut in (start for start, _ in spans[1:]):
        assert any(start <= cut < end for start, end in pauses), cut / SR
    pieces = split_at_silences(audio, max_seconds=20.0)
    np.testing.assert_array_equal(np.concatenate(pieces), audio)
    assert len(split_at_silences(audio[: 5 * SR])) == 1
    assert all(len(p) <= 3 * SR for p in split_at_silences(np.ones(10 * SR), max_seconds=3))


@pytest.mark.parametrize("block_seconds", [0.37, 7.0, 31.0, 200.0])
def test_split_stream_cuts_as_the_whole_is_cut(block_seconds):
    audio, _ = words_and_pauses(95.0, seed=12)
    block = int(block_seconds * SR)
    blocks = (audio[i : i + block] for i in range(0, len(audio), block))
    streamed = list(split_stream(blocks, max_seconds=20.0))
    whole = split_at_silences(audio, max_seconds=20.0)
    assert [len(p) for p in streamed] == [len(p) for p in whole] and len(whole) > 4
    for piece, expected in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(piece, expected)
    assert list(split_stream([])) == [] and len(list(split_stream([audio[:SR]]))) == 1


STREAMED = [  # (extension, soundfile format, subtype, sample rate, channels)
    ("flac", "FLAC", "PCM_24", 44100, 2),
    ("wav", "WAV", "PCM_16", 16000, 1),
    ("wav", "WAV", "FLOAT", 8000, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 22050, 1),
]


@pytest.mark.parametrize(("extension", "kind", "subtype", "rate", "channels"), STREAMED)
def test_stream_audio_is_load_audio_in_blocks(tmp_path, extension, kind, subtype, rate, channels):
    import librosa

    audio, _ = words_and_pauses(9.0, seed=13)
    audio = librosa.resample(audio, orig_sr=SR, target_sr=rate) if rate != SR else audio
    path = tmp_path / f"long.{extension}"
    both = np.stack([audio, -0.5 * audio], axis=1)[:, :channels]
    soundfile.write(path, both, rate, format=kind, subtype=subtype)
    whole = load_audio(path)
    assert audio_duration(path) == pytest.approx(len(whole) / SR, abs=0.1)
    for block_seconds in (0.5, 2.0, 60.0):
        blocks = list(stream_audio(path, block_seconds=block_seconds))
        assert max(len(b) for b in blocks) <= block_seconds * SR + SR // 20  # + resampler delay
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_long_mp3_decodes_as_one_read(tmp_path):
    """`load_audio` reads in blocks of 2**20 samples; soundfile's `read` seeks after each
    block, which restarted libmpg123 without its bit reservoir (samples off by up to 0.17
    at each block boundary, "part2_3_length too large" on stderr)."""
    import librosa

    noise = np.random.default_rng(0).normal(0.0, 0.1, 22050 * 60).astype(np.float32)
    path = tmp_path / "long.mp3"
    soundfile.write(path, noise, 22050)  # busy frames use the bit reservoir (7 seeds of 8 did)
    decoded, rate = soundfile.read(path, dtype="float32")  # one read: no seek
    assert len(decoded) > 2**20
    expected = librosa.resample(decoded, orig_sr=rate, target_sr=SR, res_type="soxr_hq")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no decoder damage reported
        np.testing.assert_allclose(load_audio(path), np.clip(expected, -1, 1), atol=1e-6)


def test_stream_audio_warns_and_fails_as_load_audio_does(tmp_path):
    samples = np.array([0.1, np.nan, 2.0, -np.inf, np.inf, -0.5] * 1000, np.float32)
    path = tmp_path / "bad-values.wav"
    soundfile.write(path, samples, SR, subtype="FLOAT")
    with pytest.warns(AudioWarning, match="bad-values.wav: replaced 3000 non-finite") as caught:
        streamed = np.concatenate(list(stream_audio(path, block_seconds=0.01)))
    assert len(caught) == 1  # once for the file, not per block
    with pytest.warns(AudioWarning):
        np.testing.assert_array_equal(streamed, load_audio(path))

    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav_bytes(2.0)[: 44 + 5000])
    with pytest.raises(AudioError, match="^.*cut.wav: truncated"):
        next(stream_audio(cut))  # before any block is read
    with pytest.warns(AudioWarning, match="cut.wav: truncated"):
        assert sum(len(b) for b in stream_audio(cut, strict=False)) == 2500
    cut_ogg = tmp_path / "cut.ogg"
    buffer = io.BytesIO()
    soundfile.write(buffer, speech_like(2.0, seed=7), SR, format="OGG")
    cut_ogg.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(AudioError, match="cut.ogg: truncated"):
        next(stream_audio(cut_ogg))
    for name, content, message in [
        ("random.wav", np.random.default_rng(0).bytes(3000), "cannot decode"),
        ("empty.wav", b"", "empty file"),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(AudioError, match=f"{name}: {message}"):
            next(stream_audio(tmp_path / name))
        assert audio_duration(tmp_path / name) is None
    with pytest.raises(AudioError, match="missing.flac: no such file"):
        next(stream_audio(tmp_path / "missing.flac"))


def test_stream_audio_memory_follows_the_block_not_the_file(tmp_path):
    """Twenty minutes of 44.1 kHz audio streamed and cut: the peak of Python-visible
    allocations (NumPy's included) stays near what a minute takes, while the file
    decodes to 77 MB at 16 kHz."""
    import tracemalloc

    path = tmp_path / "twenty-minutes.wav"
    minute, _ = words_and_pauses(60.0, seed=14)
    with soundfile.SoundFile(path, "w", 44100, 1, "PCM_16") as file:
        import librosa

        block = librosa.resample(minute, orig_sr=SR, target_sr=44100)
        for _ in range(20):
            file.write(block)
    tracemalloc.start()
    try:
        pieces = 0
        samples = 0
        for piece in split_stream(stream_audio(path, block_seconds=60.0), max_seconds=20.0):
            pieces += 1
            samples += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert samples / SR == pytest.approx(20 * len(block) / 44100, abs=0.01) and pieces >= 60
    print(f"\n20 minutes streamed: peak {peak / 2**20:.1f} MB of allocations")
    # A minute at 44.1 kHz is 10.6 MB as float32; the whole file would be 212 MB decoded,
    # and 77 MB at 16 kHz.
    assert peak < 48 * 2**20, peak


# -- augmentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [0.0, 5.0, 12.5, 30.0])
def test_noise_at_the_requested_snr(snr):
    clean = speech_like(1.0, seed=3)
    rng = np.random.default_rng(0)
    clip = pink_noise(3000, rng)  # shorter than the audio: looped
    for noise in ("white", "pink", clip):
        noisy = add_noise(clean, snr, np.random.default_rng(1), noise)
        assert abs(signal_to_noise_db(clean, noisy - clean) - snr) < 0.5
        again = add_noise(clean, snr, np.random.default_rng(1), noise)
        np.testing.assert_array_equal(noisy, again)
    assert abs(np.mean(white_noise(50000, rng) ** 2) - 1.0) < 0.05
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(add_noise(silent, snr, rng), silent)


def test_pink_noise_falls_3_db_per_octave():
    noise = pink_noise(SR * 4, np.random.default_rng(2)).astype(np.float64)
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise), 1 / SR)

    def band(low):
        return power[(frequencies >= low) & (frequencies < 2 * low)].mean()

    slope = 10 * np.log10(band(2000) / band(500)) / 2  # dB per octave
    assert -4.0 < slope < -2.0


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation(factor):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    faster = speed_perturb(tone, factor)
    assert abs(len(faster) - SR / factor) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(faster))) * SR / len(faster)
    assert abs(peak - 1000 * factor) < 2
    np.testing.assert_array_equal(speed_perturb(tone, 1.0), tone)


def test_waveform_augmentation_is_seeded():
    clean = speech_like(1.0, seed=4)
    clips = [pink_noise(4000, np.random.default_rng(0))]
    first = [augment_waveform(clean, np.random.default_rng(s), noise_clips=clips) for s in range(6)]
    again = [augment_waveform(clean, np.random.default_rng(s), noise_clips=clips) for s in range(6)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len({len(a) for a in first}) > 1  # several speeds drawn
    assert not np.array_equal(first[0], first[1])


def test_background_noise_is_white_or_pink_at_a_level_in_range():
    kinds = set()
    for seed in range(12):
        noise = background_noise(32000, np.random.default_rng(seed), level_db=(-60.0, -30.0))
        np.testing.assert_array_equal(
            noise, background_noise(32000, np.random.default_rng(seed), level_db=(-60.0, -30.0))
        )
        assert -60.0 <= 10 * np.log10(np.mean(noise.astype(np.float64) ** 2)) <= -30.0
        power = np.abs(np.fft.rfft(noise)) ** 2  # 0.5 Hz bins: below 500 Hz against above 4 kHz
        kinds.add("pink" if power[1:1000].mean() > 10 * power[8000:].mean() else "white")
    assert kinds == {"white", "pink"}


def masked_counts(features, length):
    """(fully masked bands, fully masked frames) within a valid length."""
    valid = features[:length] == 0
    return int(valid.all(axis=0).sum()), int(valid.all(axis=1).sum())


def test_spec_augment_layer():
    from audio.augment import SpecAugment

    features = np.random.default_rng(0).normal(size=(4, 120, 80)).astype(np.float32) + 10
    lengths = np.array([120, 90, 30, 1])
    features[np.arange(120)[None, :] >= lengths[:, None]] = 7.0  # marks the padding
    layer = SpecAugment(seed=42)
    np.testing.assert_array_equal(np.asarray(layer(features, lengths)), features)
    masked = np.asarray(layer(features, lengths, training=True))
    again = np.asarray(SpecAugment(seed=42)(features, lengths, training=True))
    np.testing.assert_array_equal(masked, again)
    assert not np.array_equal(np.asarray(layer(features, lengths, training=True)), masked)
    changed = masked != features
    assert np.all(masked[changed] == 0.0)
    for row, length in enumerate(lengths):
        assert not changed[row, length:].any() or changed[row, length:].all(axis=0).any()
        bands, frames = masked_counts(masked[row], length)
        assert bands <= 2 * 27 or frames == length
        assert frames <= 2 * min(40, int(0.2 * length)) or bands == 80
    assert 0 < changed.mean() < 0.6


def test_front_end_layers_compute_in_float32_under_a_mixed_policy():
    import keras

    from audio.layers import VTLP, FeatureNormalization, LogMel, SpecAugment
    from seq2seq.utils.precision import dtype_policy

    features = np.random.default_rng(0).normal(size=(2, 30, 80)).astype(np.float32)
    lengths = np.array([30, 12])
    with dtype_policy("mixed_bfloat16"):
        layers = [LogMel(), FeatureNormalization(80), SpecAugment(seed=1), VTLP(seed=1)]
        explicit = FeatureNormalization(80, dtype="mixed_bfloat16")
        outputs = [layers[0](np.zeros((2, 1600), np.float32), np.array([1600, 800]))[0]]
        outputs += [layers[2](features, lengths, training=True), layers[3](features, training=True)]
    assert [layer.compute_dtype for layer in layers] == ["float32"] * 4
    assert [keras.backend.standardize_dtype(out.dtype) for out in outputs] == ["float32"] * 3
    assert explicit.compute_dtype == "bfloat16"  # a dtype given is kept


def test_spec_augment_in_tf_data():
    import tensorflow as tf

    from audio.augment import spec_augment

    features = np.random.default_rng(1).normal(size=(6, 50, 20)).astype(np.float32) + 5
    dataset = tf.data.Dataset.from_tensor_slices((features, np.full(6, 50))).enumerate()
    dataset = dataset.map(
        lambda i, item: spec_augment(item[0], item[1], seed=(7, i), freq_width=5, time_width=8)
    )
    first, again = (np.stack(list(dataset.as_numpy_iterator())) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0] == 0, first[1] == 0)  # one seed per example
    for row in first:
        bands, frames = masked_counts(row, 50)
        assert bands <= 10 and frames <= 2 * min(8, 10)


def tone(hz: float, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(SR * seconds)) / SR)).astype(np.float32)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_vtlp_moves_a_tone_as_a_shorter_or_longer_vocal_tract_would(factor):
    from audio.augment import warp_frequencies

    config = FrontEndConfig()
    bands = config.band_frequencies()
    original = log_mel_librosa(tone(1000.0), config)[None]
    warped = np.asarray(warp_frequencies(original, np.array([factor]), bands, 8000.0))[0]
    moved = log_mel_librosa(tone(1000.0 * factor), config)
    # Away from the edge frames, the peak lands on the band of the moved tone and the
    # spectra agree around it.
    inner = slice(5, -5)
    assert np.all(np.argmax(warped[inner], axis=1) == np.argmax(moved[inner], axis=1))
    peak = int(np.argmax(moved[10]))
    near = slice(peak - 1, peak + 2)  # a pure tone falls to the log floor beyond
    assert np.max(np.abs(warped[inner, near] - moved[inner, near])) < 0.75
    assert np.max(np.abs(original[0][inner, near] - moved[inner, near])) > 2.0
    same = np.asarray(warp_frequencies(original, np.array([1.0]), bands, 8000.0))
    np.testing.assert_allclose(same, original, atol=1e-5)


def test_vtlp_layer_warps_each_utterance_only_in_training():
    import keras

    from audio.augment import VTLP

    features = np.stack([log_mel_librosa(tone(hz)) for hz in (500.0, 1000.0, 2000.0)])
    layer = VTLP(FrontEndConfig(), max_warp=0.2, seed=5)
    np.testing.assert_array_equal(np.asarray(layer(features)), features)
    warped = np.asarray(layer(features, training=True))
    np.testing.assert_array_equal(
        warped, np.asarray(VTLP(max_warp=0.2, seed=5)(features, training=True))
    )
    peaks = np.argmax(warped[:, 10], axis=1) - np.argmax(features[:, 10], axis=1)
    assert np.any(peaks != 0) and np.all(np.abs(peaks) <= 8)
    assert np.isfinite(warped).all() and warped.shape == features.shape
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert copy.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="max_warp"):
        VTLP(max_warp=1.5)


# -- plots ----------------------------------------------------------------------------------


def test_plot_spectrogram(tmp_path, warm_librosa):
    import matplotlib.image

    from audio.plot import plot_spectrogram

    audio = speech_like(2.0, seed=5)
    plot_spectrogram(audio, tmp_path / "audio.png", title="the red cat sees three dogs " * 8)
    plot_spectrogram(log_mel_librosa(audio), tmp_path / "features.png")
    for name in ("audio.png", "features.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
    with pytest.raises(ValueError, match="expected features"):
        plot_spectrogram(np.zeros((2, 3, 4)), tmp_path / "bad.png")
