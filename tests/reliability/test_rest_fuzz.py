"""Property tests of every REST path of `seq2seq serve` under hypothesis-made requests.

Whatever the path, method or body (JSON of any shape, type and size, unicode with lone
surrogates, missing and extra fields, wrong dtypes, `{"b64": ...}` garbage, deep nesting,
bytes that are not JSON), the answer comes within the timeout, is a 2xx or a 4xx, and its
body is a JSON object; a 4xx body is exactly `{"error": str}`. At the end the server is
still running, its log has no traceback, and a good request still succeeds.

Requests go through `http.client`, which sends paths as they are (`requests` would
normalize `..` segments away).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from serving_helpers import serving

NAME = "translate-en-fr"
TIMEOUT = 60  # seconds: a request that takes longer counts as a hang
FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    """`seq2seq serve` of the tiny export as NAME, version 1 with the label `stable`, with
    batching on (test_security's server runs without it)."""
    root = tmp_path_factory.mktemp("fuzz-served")
    base = root / NAME
    shutil.copytree(tiny_export / "1", base / "1")
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "{NAME}" base_path: "{base}"\n'
        '           version_labels { key: "stable" value: 1 } }\n'
        "}\n",
        encoding="utf-8",
    )
    flags = ["--model_config_file", str(config), "--enable_batching"]
    with serving(*flags, log=root / "serve.log", ready_model=NAME) as running:
        yield running
    assert running.process.returncode == 0, running.log_text()[-3000:]  # a clean stop


def send(server, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection: `(status, body)`."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def check_answer(status: int, data: bytes, request: str) -> dict:
    """The property every answer has; returns the parsed body."""
    assert 200 <= status < 300 or 400 <= status < 500, f"{status} for {request}: {data[:300]!r}"
    event(f"HTTP {status}")  # the spread shows with --hypothesis-show-statistics
    body = json.loads(data)
    assert isinstance(body, dict), f"{status} for {request}: {data[:300]!r}"
    if status >= 400:
        assert list(body) == ["error"] and isinstance(body["error"], str), (request, body)
    return body


# --- strategies -------------------------------------------------------------------------

# Any code point, and often lone surrogates (JSON writes them as \ud800 escapes), which
# `st.characters()` alone would almost never draw.
CHARS = st.characters() | st.integers(0xD800, 0xDFFF).map(chr)
TEXTS = st.text(max_size=40) | st.lists(CHARS, max_size=40).map("".join)
KEYS = st.text(max_size=8) | st.lists(CHARS, max_size=8).map("".join)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # NaN and infinities too: Python's JSON writes and reads them
    | TEXTS
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=20,
)
B64 = st.builds(
    lambda value: {"b64": value},
    st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode("ascii"))
    | TEXTS  # mostly not base64
    | JSON,
)
ITEMS = TEXTS | B64 | JSON
NAMED = st.dictionaries(st.sampled_from(["text", "txt", "", "TEXT"]) | TEXTS, ITEMS, max_size=3)
INSTANCES = st.lists(ITEMS | NAMED, max_size=8) | JSON
INPUTS = (
    st.lists(ITEMS, max_size=8)
    | st.dictionaries(st.sampled_from(["text", "x"]) | TEXTS, st.lists(ITEMS, max_size=6) | ITEMS)
    | JSON
)
SIGNATURES = (
    st.sampled_from(
        ["", "serving_default", "greedy", "beam_2", "beam_8", "align", "nope", "GREEDY"]
    )
    | TEXTS
    | JSON
)
PREDICT_BODIES = st.builds(
    lambda fields, extra: {**extra, **fields},
    st.fixed_dictionaries(
        {}, optional={"instances": INSTANCES, "inputs": INPUTS, "signature_name": SIGNATURES}
    ),
    st.dictionaries(TEXTS, JSON, max_size=2),  # extra fields
)


def json_bytes(value) -> bytes:
    return json.dumps(value).encode("utf-8")  # ASCII: lone surrogates as escapes


# Sizes: hypothesis favours small ones, so the limits that matter are drawn on purpose.
DEPTHS = st.integers(1, 5000) | st.sampled_from([990, 1000, 5000])
BODIES = st.one_of(
    PREDICT_BODIES.map(json_bytes),
    JSON.map(json_bytes),
    # Deep nesting, closed or not, bare or as a tensor.
    DEPTHS.map(lambda depth: b"[" * depth + b"]" * depth),
    DEPTHS.map(lambda depth: b"[" * depth),
    DEPTHS.map(lambda depth: b'{"inputs": ' + b"[" * depth + b'"a"' + b"]" * depth + b"}"),
    DEPTHS.map(lambda depth: b'{"instances": [' + b'{"b64": ' * depth + b"1" + b"}" * depth),
    # Sizes: many values, one huge string, a huge number, padding.
    st.integers(0, 20000).map(lambda n: json_bytes({"instances": [1] * n})),
    st.integers(0, 200000).map(lambda n: json_bytes({"inputs": {"text": ["a " * n]}})),
    st.integers(1, 6000).map(lambda n: b'{"inputs": [' + b"9" * n + b"]}"),
    st.integers(0, 100000).map(lambda n: b" " * n + b'{"instances": ["the red cat ."]}'),
    # Not JSON at all, or JSON in another encoding.
    st.binary(max_size=300),
    PREDICT_BODIES.map(lambda body: json.dumps(body).encode("utf-16")),
)

SEGMENTS = (st.text(max_size=12) | st.lists(CHARS, max_size=12).map("".join)).map(
    lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
)
NAMES = st.sampled_from([NAME, NAME.upper(), "", ".", "..", "%2e%2e", "%2F", "nope"]) | SEGMENTS
VERSIONS = (
    st.sampled_from(
        ["", "/versions/1", "/versions/01", "/versions/2", "/versions/0", "/versions/-1"]
        + ["/versions/", "/labels/stable", "/labels/STABLE", "/labels/canary", "/labels/"]
        + ["/versions/%D9%A1", "/versions/1.0", "/versions/0x1"]
    )
    | st.integers(0, 2**70).map(lambda number: f"/versions/{number}")
    | (st.integers(1, 6000) | st.just(4301)).map(lambda digits: "/versions/" + "9" * digits)
    | SEGMENTS.map(lambda text: f"/labels/{text}")
    | SEGMENTS.map(lambda text: f"/versions/{text}")
)
SUFFIXES = st.sampled_from(
    ["", "/metadata", ":predict", ":classify", ":regress", ":PREDICT", "/METADATA"]
    + ["/metadata/x", ":", "/", "//", ":predict/x", "/:predict"]
) | SEGMENTS.map(lambda text: ":" + text)
QUERIES = st.just("") | SEGMENTS.map(lambda text: "?" + text)
MODEL_PATHS = st.builds(
    lambda name, version, suffix, query: f"/v1/models/{name}{version}{suffix}{query}",
    NAMES,
    VERSIONS,
    SUFFIXES,
    QUERIES,
)
OTHER_PATHS = st.sampled_from(
    ["/", "/v1", "/v1/", "/v1/models", "/v1/models/", "/v2/models/x", "//v1/models/x"]
) | SEGMENTS.map(lambda text: "/" + text)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
GOOD_BODY = json_bytes({"instances": ["the red cat sees three dogs ."]})


# --- properties ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=500)
@given(
    body=BODIES, path=st.sampled_from([":predict", "/versions/1:predict", "/labels/stable:predict"])
)
# Found by this test: an error message that echoed a lone surrogate was a 500.
@example(body=b'{"instances": [], "signature_name": "\\ud800"}', path=":predict")
def test_any_predict_body_gets_json_2xx_or_4xx(server, body, path):
    url = f"/v1/models/{NAME}{path}"
    status, data = send(server, "POST", url, body)
    answer = check_answer(status, data, f"POST {url} {body[:200]!r}")
    if status == 200:
        assert set(answer) <= {"predictions", "outputs"} and len(answer) == 1


@settings(FUZZ, max_examples=500)
@given(
    method=METHODS,
    path=MODEL_PATHS | OTHER_PATHS,
    body=st.none() | st.just(GOOD_BODY) | BODIES,
)
# Found by this test: a version of more than 4300 digits was a 500 (int() refuses it).
@example(method="GET", path=f"/v1/models/{NAME}/versions/{'9' * 4301}", body=None)
@example(method="GET", path=f"/v1/models/{NAME}/versions/%D9%A1", body=None)  # Arabic 1
# Found by this test: a path with an encoded line break was aiohttp's text/plain 404.
@example(method="GET", path=f"/v1/models/{NAME}%0A", body=None)
def test_any_path_and_method_gets_json_2xx_or_4xx(server, method, path, body):
    status, data = send(server, method, path, body)
    check_answer(status, data, f"{method} {path} {(body or b'')[:100]!r}")


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_good_paths_answer_200(server, data):
    """The paths that name the model answer 200, whatever the case of their fixed parts
    (not of the model name or label, which are matched exactly)."""

    def fixed(part: str) -> str:  # TF Serving matches these parts case-insensitively
        return "".join(char.upper() if data.draw(st.booleans()) else char for char in part)

    version = data.draw(st.sampled_from(["", "/versions/1", "/labels/stable"]))
    version = fixed(version[: version.rfind("/") + 1]) + version[version.rfind("/") + 1 :]
    suffix = data.draw(st.sampled_from(["", "/metadata", ":predict"]))
    method = "POST" if suffix == ":predict" else "GET"
    path = f"{fixed('/v1/models/')}{NAME}{version}{fixed(suffix)}"
    status, body = send(server, method, path, GOOD_BODY if method == "POST" else None)
    assert status == 200, (path, body[:300])
    check_answer(status, body, path)


def test_the_server_survived(server):
    """Run last: the process lives, logged no traceback, and still answers."""
    assert server.process.poll() is None, server.log_text()[-3000:]
    status, data = send(server, "POST", f"/v1/models/{NAME}:predict", GOOD_BODY)
    assert status == 200 and json.loads(data)["predictions"][0]["text"], data
    assert "Traceback" not in server.log_text()
