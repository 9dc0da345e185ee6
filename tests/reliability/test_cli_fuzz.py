"""`seq2seq translate --model` under hypothesis-made stdin: random bytes, invalid UTF-8,
empty and whitespace-only lines, lines of thousands of characters, CR, NUL, Unicode line
separators, CRLF files, no newline at the end.

A line is what `seq2seq translate` reads as one (`read_blocks`): the bytes up to a b"\\n",
or up to the end of the input; a CR, NUL, U+2028 or NEL inside it is part of the line.
Property: exit status 0, one output line per input line (an empty one for a blank line),
each a UTF-8 line without line breaks of any kind, and no traceback.

Most examples run `seq2seq.cli.main` in this process, with stdin and stdout replaced and
the SavedModel loaded once; one run in a subprocess checks the real streams.
"""

from __future__ import annotations

import io
import sys
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_seq2seq
from seq2seq.cli import main
from seq2seq.inference import SavedModelTranslator

SENTENCE = b"the red cat sees three dogs . "
ODD_LINES = [
    b"",
    b"\r",
    b"\r\r",
    b" ",
    b"\t \x0b\x0c",
    "\u00a0\u2028\u3000\u0085".encode(),  # Unicode whitespace and line separators
    b"\x00",
    b"a\x00b",
    b"\xff\xfe",  # not UTF-8
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\xc3",  # a truncated sequence
    b"\xef\xbb\xbfthe cat .",  # a byte-order mark
    b"le chat\rthe dog .",  # CR inside a line
    SENTENCE,
]
PIECES = [SENTENCE, b"\r", b"\x00", b"le chat ", b"\xff", "é".encode(), b"\x85", "\u2028".encode()]
LONG_LINES = st.builds(
    lambda unit, size: (unit * (size // len(unit) + 1))[:size],
    st.sampled_from([SENTENCE, b"a", b"x\r", b"\x00 ", "\u2028".encode(), b"\xff", b"cat"]),
    st.integers(1000, 6000),
)
LINES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(lambda text: text.encode("utf-8")),
    st.sampled_from(ODD_LINES),
    st.lists(st.sampled_from(PIECES), max_size=20).map(b"".join),
    LONG_LINES,
).map(lambda line: line.replace(b"\n", b""))
STDIN = st.builds(
    lambda lines, separator, end: separator.join(lines) + (end if lines else b""),
    st.lists(LINES, max_size=40),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([b"", b"\n", b"\r\n"]),
)


def input_lines(data: bytes) -> list[str]:
    """The lines of `data` as `seq2seq translate` reads them: split on b"\\n" only,
    decoded as UTF-8 with bad bytes replaced, without the line ending (LF or CRLF)."""
    if not data:
        return []
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()  # the end of the last line, not a line
    return [part.decode("utf-8", errors="replace").rstrip("\r") for part in parts]


def check_output(data: bytes, stdout: bytes, stderr: str) -> None:
    """One output line per input line, empty for blank ones, no line breaks inside."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = input_lines(data)
    outputs = stdout.split(b"\n")
    assert outputs.pop() == b"", "the output does not end with a newline"
    assert len(outputs) == len(lines), (len(outputs), len(lines), stderr[-2000:])
    for line, raw in zip(lines, outputs, strict=True):
        output = raw.decode("utf-8")  # strict: the output is UTF-8
        assert output.splitlines() in ([], [output]), f"a line break in {output!r}"
        if not line.strip():
            assert output == "", f"{line!r} is blank, but got {output!r}"


@pytest.fixture(scope="module")
def translator(tiny_export):
    """The tiny export, loaded once for the in-process runs."""
    return SavedModelTranslator.load(tiny_export)


def translate_in_process(translator, model, data: bytes, flags: list[str]):
    """`main(["translate", "--model", model, *flags])` with `data` as stdin:
    `(status, stdout bytes, stderr text)`."""
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    with (
        mock.patch.object(SavedModelTranslator, "load", return_value=translator),
        mock.patch.object(sys, "stdin", stdin),
        mock.patch.object(sys, "stdout", stdout),
        mock.patch.object(sys, "stderr", stderr),
    ):
        status = main(["translate", "--model", str(model), *flags])
        stdout.flush()
    return status, stdout.buffer.getvalue(), stderr.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=STDIN, flags=st.sampled_from([[], ["--beam-size", "1"], ["--beam-size", "2"]]))
def test_any_stdin_gives_one_line_per_line(translator, tiny_export, data, flags):
    status, stdout, stderr = translate_in_process(translator, tiny_export, data, flags)
    assert status == 0, stderr[-3000:]
    check_output(data, stdout, stderr)


def test_odd_stdin_in_a_subprocess(tiny_export):
    """The real stdin and stdout: over 256 lines (two blocks) of every odd kind, CRLF
    endings, no newline at the end; the warnings for lines over the token limit name
    the right lines, in the second block too."""
    unsplittable = b" ".join([b"the red cat sees three dogs"] * 20)
    lines = (ODD_LINES + [SENTENCE * 40, b"\x00" * 3000, b"\xff" * 3000]) * 16
    lines.insert(270, unsplittable)
    data = b"\r\n".join(lines)
    result = run_seq2seq("translate", "--model", str(tiny_export), input=data, text=False)
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode == 0, stderr[-3000:]
    check_output(data, result.stdout, stderr)
    warned = [
        int(line.split(":")[1].split()[-1])
        for line in stderr.splitlines()
        if line.startswith("seq2seq translate: line ")
    ]
    assert 271 in warned
    assert all(len(lines[number - 1]) >= 500 for number in warned), warned
