"""Property tests of a speech recognizer's predict path in `seq2seq serve`.

Hypothesis makes the requests a client could send to an audio model: audio of any
shape and size, NaN, infinities and huge samples, lengths that disagree with the audio
(negative, past its end, too many or too few), wrong dtypes, and `wav_bytes` that are
garbage, truncated or not 16 kHz, in rows (`instances`) or columns (`inputs`), for
every signature. Every answer is a 2xx or a 4xx JSON object (`check_answer` of the
translator's fuzz test), a 200 has one transcript per row, and afterwards the server
is running, logged no traceback, and still transcribes.
"""

from __future__ import annotations

import base64
import io
import json
import math
import shutil

import numpy as np
import pytest
import soundfile
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_rest_fuzz import FUZZ, JSON, check_answer, send

from serving_helpers import serving

NAME = "asr-en"
SIGNATURES = ["serving_default", "greedy", "ctc_greedy", "beam_4", "beam_8", "beam_16"]


@pytest.fixture(scope="module")
def server(tiny_asr_export, tmp_path_factory):
    """`seq2seq serve` of the tiny speech export as NAME, with batching on."""
    base = tmp_path_factory.mktemp("asr-fuzz") / NAME
    shutil.copytree(tiny_asr_export / "1", base / "1")
    flags = ["--model_name", NAME, "--model_base_path", str(base), "--enable_batching"]
    with serving(*flags, log=base.parent / "serve.log", ready_model=NAME) as running:
        yield running
    assert running.process.returncode == 0, running.log_text()[-3000:]  # a clean stop


def wav(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format="WAV")
    return out.getvalue()


SPEECH_LIKE = (0.3 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
SAMPLES = (
    st.floats(-1.0, 1.0, width=32)
    | st.sampled_from([math.nan, math.inf, -math.inf, 1e38, -1e38, 0.0, 1.0])
    | st.integers(-(2**40), 2**40)
)
SIGNALS = st.lists(SAMPLES, max_size=300) | st.integers(0, 40000).map(
    lambda n: SPEECH_LIKE.tolist() * (n // 8000) + SPEECH_LIKE[: n % 8000].tolist()
)
LENGTHS = st.integers(-5, 400) | st.integers(-(2**40), 2**40) | st.sampled_from([0, 2**31])
AUDIO_ROWS = st.fixed_dictionaries(
    {}, optional={"audio": SIGNALS | JSON, "audio_length": LENGTHS | JSON, "extra": JSON}
)
AUDIO_COLUMNS = st.fixed_dictionaries(
    {},
    optional={
        "audio": st.lists(SIGNALS, max_size=4) | SIGNALS | JSON,
        "audio_length": st.lists(LENGTHS, max_size=5) | LENGTHS | JSON,
    },
)
WAV_BYTES = (
    st.one_of(
        st.binary(max_size=200),
        st.integers(0, 100).map(lambda cut: wav(SPEECH_LIKE)[: cut * 40]),  # truncated
        st.sampled_from([8000, 22050, 48000]).map(lambda rate: wav(SPEECH_LIKE, rate)),
        st.just(wav(np.stack([SPEECH_LIKE] * 2, axis=1), 16000, "PCM_24")),  # stereo 24-bit
        st.just(wav(SPEECH_LIKE[:0])),  # no samples
        st.just(b"RIFF\xff\xff\xff\x7fWAVEfmt "),  # a header that claims 2 GB
    ).map(lambda raw: {"b64": base64.b64encode(raw).decode("ascii")})
    | JSON
)
WAV_REQUESTS = st.one_of(
    st.builds(lambda rows: {"instances": rows}, st.lists(WAV_BYTES, max_size=4)),
    st.builds(lambda rows: {"inputs": {"wav_bytes": rows}}, st.lists(WAV_BYTES, max_size=4)),
    st.builds(lambda row: {"inputs": row}, WAV_BYTES),
).map(lambda body: {**body, "signature_name": "transcribe_wav"})
AUDIO_REQUESTS = st.builds(
    lambda body, signature: {**body, **signature},
    st.builds(lambda rows: {"instances": rows}, st.lists(AUDIO_ROWS, max_size=4))
    | st.builds(lambda columns: {"inputs": columns}, AUDIO_COLUMNS),
    st.fixed_dictionaries({}, optional={"signature_name": st.sampled_from(SIGNATURES) | JSON}),
)


@settings(FUZZ, max_examples=150)
@given(request=AUDIO_REQUESTS | WAV_REQUESTS)
@example(request={"inputs": {"audio": [SPEECH_LIKE.tolist()], "audio_length": [8000]}})
@example(request={"instances": [{"audio": [math.nan] * 400, "audio_length": 400}]})
@example(request={"instances": [{"audio": [0.1] * 400, "audio_length": -3}]})
@example(request={"inputs": {"audio": [[0.1] * 400], "audio_length": [2**31 - 1]}})
def test_any_audio_request_gets_json_2xx_or_4xx(server, request):
    body = json.dumps(request).encode("utf-8")
    status, data = send(server, "POST", f"/v1/models/{NAME}:predict", body)
    answer = check_answer(status, data, f"POST {body[:300]!r}")
    if status == 200:
        (key,) = answer
        rows = answer[key] if key == "predictions" else answer[key]["text"]
        assert all(isinstance(row["text"] if key == "predictions" else row, str) for row in rows)


def test_the_server_survived(server):
    """Run last: the process lives, logged no traceback, and still transcribes."""
    assert server.process.poll() is None, server.log_text()[-3000:]
    good = {"inputs": {"audio": [SPEECH_LIKE.tolist()], "audio_length": [len(SPEECH_LIKE)]}}
    status, data = send(server, "POST", f"/v1/models/{NAME}:predict", json.dumps(good).encode())
    assert status == 200 and isinstance(json.loads(data)["outputs"]["text"][0], str), data
    assert "Traceback" not in server.log_text()
