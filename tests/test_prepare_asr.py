"""`seq2seq prepare asr` on small sources made here, with espeak-ng only: offline and fast.

The end-to-end tests run the command in a subprocess (two synthesis workers) on a
text file of a few hundred made-up sentences and a fake Asterisk set of WAV prompts.
They skip where espeak-ng is missing, and the pitch tests where flite or festival's
kal voice is (`scripts/setup` installs them as root).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile

from audio.io import to_wav_bytes
from audio.synthesis import Voice, engine_problem, list_voices, prosody_ranges, synthesize
from seq2seq.data.asterisk import decode_prompt, evaluation_transcripts, read_asterisk_transcripts
from seq2seq.data.speech import plan_split
from seq2seq.data.speech_text import Sentence, select_sentences
from seq2seq.data.spoken import (
    normalize_transcript,
    number_words,
    spell_numbers,
    spoken_form,
    transcript_of,
)

HELD_OUT = ("espeak-ng:en-us+f2", "espeak-ng:en-gb-scotland+m3")
ASTERISK = {  # key: transcript, as in core-sounds-en.txt
    "auth-thankyou": "Thank you for calling the support line.",
    "followme/options": "press 1 to accept this call, or 2 to reject it",
    "cannot-complete": "Your call cannot be completed as dialed.  Please check the number"
    " and dial again.",
    "beep": "[this is a simple beep tone]",
    "digits/20": "20",
    "vm-intro": "Please leave your message after the tone. (simple tone sound plays)",
    "no-audio-for-this": "This prompt has no recording.",
}
# Sentences of the text that equal an evaluation transcript (or one of its sentences)
# once normalized: they must never be synthesized.
EVALUATION_LIKE = [
    "Thank you for calling the Support Line!",
    "Press 1 to accept this call - or 2 to reject it.",
    "Please check the number, and dial again.",
]
NUMBERS = "two three four five six seven eight nine".split()
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy"
    " eighty ninety first second third fourth fifth sixth seventh eighth ninth tenth"
    " eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth"
    " nineteenth twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth"
    " ninetieth hundredth"
).split()
THINGS = "cats dogs horses birds knights elves dwarves wizards".split()
PLACES = "the river|the hills|the old castle|the dark forest|the village".split("|")


def made_up_sentences(count: int) -> list[str]:
    rng = random.Random(5)
    sentences = set()
    while len(sentences) < count:
        number = rng.choice([rng.choice(NUMBERS), str(rng.randrange(10, 2000))])
        sentences.add(
            f"{number.capitalize()} {rng.choice(THINGS)} went to {rng.choice(PLACES)}"
            f" and saw {rng.choice(NUMBERS)} {rng.choice(THINGS)}."
        )
    return sorted(sentences)


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as rows:
        return list(csv.reader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))


# --- normalization ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1000, "one thousand"),
        (21_000_042, "twenty one million forty two"),
        (-7, "minus seven"),
    ],
)
def test_number_words(number, words):
    assert number_words(number) == words


def test_numbers_in_text():
    assert spell_numbers("1st of 2,500 men in 1492") == (
        "first of two thousand five hundred men in fourteen ninety two"
    )
    assert spell_numbers("call 007 or 911.5") == (
        "call zero zero seven or nine hundred eleven point five"
    )
    assert (
        normalize_transcript("Dial 8500, then 3.") == "dial eight thousand five hundred then three"
    )


@pytest.mark.parametrize(
    ("text", "transcript"),
    [
        ("Hello, World!", "hello world"),
        ("Don't stop -- it's 'fine'.", "don't stop it's fine"),
        (
            "\u201cThe king\u2019s men\u201d\u2014all 12 of them\u2026",
            "the king's men all twelve of them",
        ),
        ("Mr. Jones & Dr. Who: 50% done?", "mister jones and doctor who fifty percent done"),
        ("Daughters-in-law; (quietly) again", "daughters in law quietly again"),
    ],
)
def test_spoken_form_and_transcript(text, transcript):
    spoken = spoken_form(text)
    assert spoken is not None
    assert transcript_of(spoken) == transcript
    assert set(transcript) <= set("abcdefghijklmnopqrstuvwxyz' ")


@pytest.mark.parametrize(
    "text", ["The HP bar", "J. R. R. Tolkien", "Meet at 10:30", "Pages 3-4", "Café", "x = y", ""]
)
def test_unspeakable_text_is_rejected(text):
    assert spoken_form(text) is None


def test_asterisk_transcripts_are_normalized(tmp_path):
    path = tmp_path / "core-sounds-en.txt.gz"
    lines = ["; Core Asterisk Sounds in English", ""]
    lines += [f"{key}: {text}" for key, text in ASTERISK.items()]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    transcripts = read_asterisk_transcripts(path)
    assert transcripts == ASTERISK
    normalized = {key: normalize_transcript(text) for key, text in transcripts.items()}
    assert normalized["followme/options"] == "press one to accept this call or two to reject it"
    assert normalized["beep"] == ""
    assert normalized["digits/20"] == "twenty"
    assert normalized["vm-intro"] == "please leave your message after the tone"
    assert normalize_transcript("Press * or # for the PBX") == "press star or pound for the p b x"


def test_evaluation_transcripts_are_never_selected():

    excluded = evaluation_transcripts(ASTERISK)
    texts = [*EVALUATION_LIKE, *made_up_sentences(50)]
    stats = Counter()
    selected = select_sentences({"text": texts}, excluded, stats)
    chosen = {s.transcript for split in selected.values() for s in split}
    assert stats["text: equals an evaluation transcript"] == len(EVALUATION_LIKE)
    assert not chosen & excluded
    assert len(chosen) == 50


# --- voices ------------------------------------------------------------------------------


def test_voice_names_and_prosody():
    voice = Voice.from_name("flite:slt").with_prosody(1.1, 0.9)
    assert (voice.engine, voice.voice, voice.accent, voice.variant) == ("flite", "slt", "en-US", "")
    assert voice.name == "flite:slt" and voice.label == "flite:slt@1.10x0.90"
    assert prosody_ranges(Voice.from_name("espeak-ng:en-us+m1")) == ((0.8, 190 / 175), (0.6, 1.4))
    assert prosody_ranges(Voice.from_name("flite:rms"))[1] is None
    assert prosody_ranges(Voice.from_name("festival:kal_diphone"))[1] == (0.75, 1.35)
    assert prosody_ranges(Voice.from_name("festival:cmu_us_slt_arctic_hts"))[1] is None
    with pytest.raises(ValueError, match="unknown engine"):
        Voice("say", "alex")


@pytest.mark.parametrize("name", ["flite:slt", "flite:kal16", "festival:kal_diphone"])
def test_pitch_scales_the_voice_f0(name):
    voice = Voice.from_name(name)
    if voice.name not in {installed.name for installed in list_voices([voice.engine])}:
        pytest.skip(f"{name} is not installed")
    text = "The quick brown fox jumps over the lazy dog and runs away."
    low, high = prosody_ranges(voice)[1]
    f0 = {}
    for pitch in (low, 1.0, high):
        audio = synthesize(text, voice.with_prosody(1.0, pitch))
        frames, _, _ = librosa.pyin(audio, fmin=50, fmax=500, sr=16000)
        f0[pitch] = np.nanmedian(frames)
    assert f0[low] / f0[1.0] == pytest.approx(low, rel=0.1)
    assert f0[high] / f0[1.0] == pytest.approx(high, rel=0.1)


def test_plan_keeps_held_out_voices_apart():
    voices = [Voice.from_name(f"espeak-ng:en-us+{v}") for v in ("m1", "m2", "f1")]
    voices.append(Voice.from_name("flite:slt"))

    sentences = [Sentence(f"word {i}", f"word {i}", "t") for i in range(30)]
    jobs = plan_split("train", sentences, voices[:3], 50, None, random.Random(1))
    assert len(jobs) == 50 and len({job.path for job in jobs}) == 50
    assert {job.voice.name for job in jobs} <= {voice.name for voice in voices[:3]}
    again = plan_split("train", sentences, voices[:3], 50, None, random.Random(1))
    assert [job.path for job in jobs] == [job.path for job in again]  # the plan is a function


# --- end to end --------------------------------------------------------------------------

needs_espeak = pytest.mark.skipif(
    engine_problem("espeak-ng") is not None, reason="espeak-ng is not installed"
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """A text file, and an Asterisk-like set: transcripts and WAV prompts at 8 kHz."""
    root = tmp_path_factory.mktemp("asr-sources")
    text = root / "sentences.txt"
    text.write_text("\n".join([*EVALUATION_LIKE, *made_up_sentences(400)]) + "\n")
    transcripts = root / "core-sounds-en.txt.gz"
    lines = "".join(f"{key}: {value}\n" for key, value in ASTERISK.items())
    transcripts.write_bytes(gzip.compress(lines.encode()))
    sounds = root / "sounds"
    time = np.arange(8000 * 2) / 8000
    for index, key in enumerate(k for k in ASTERISK if k != "no-audio-for-this"):
        path = sounds / f"{key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_wav_bytes(0.3 * np.sin(2 * np.pi * (200 + 50 * index) * time), 8000))
    return {"text": text, "transcripts": transcripts, "sounds": sounds, "root": root}


def run_prepare(data_dir: Path, sources: dict[str, Path], *extra: str):
    command = [sys.executable, "-m", "seq2seq", "prepare", "asr", "--data-dir", str(data_dir)]
    command += ["--engines", "espeak-ng", "--held-out", ",".join(HELD_OUT), "--no-install"]
    command += ["--text", str(sources["text"]), "--asterisk-transcripts"]
    command += [str(sources["transcripts"]), "--asterisk-sounds", str(sources["sounds"])]
    command += ["--utterances", "8", "--dev-utterances", "2", "--test-utterances", "4"]
    command += ["--workers", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prepared(sources, tmp_path_factory) -> Path:
    if engine_problem("espeak-ng") is not None:
        pytest.skip("espeak-ng is not installed")
    data_dir = tmp_path_factory.mktemp("data")
    result = run_prepare(data_dir, sources)
    assert result.returncode == 0, result.stderr[-3000:]
    return data_dir / "asr-en"


@needs_espeak
def test_prepare_writes_splits_audio_and_manifest(prepared):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["files"] == ["train.tsv", "dev.tsv", "test-synthetic.tsv", "test-real.tsv"]
    counts = {name: len(read_rows(prepared / name)) for name in manifest["files"]}
    assert counts == {"train.tsv": 8, "dev.tsv": 2, "test-synthetic.tsv": 4, "test-real.tsv": 5}
    assert manifest["splits"]["train.tsv"]["utterances"] == 8
    assert manifest["engines"]["espeak-ng"]["available"]
    assert manifest["synthesis"]["failed"] == 0
    for name in manifest["files"]:
        for path, transcript, seconds, voice in read_rows(prepared / name):
            info = soundfile.info(str(prepared / path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert abs(info.frames / 16000 - float(seconds)) < 1e-3
            assert transcript and set(transcript) <= set("abcdefghijklmnopqrstuvwxyz' ")
            if name != "test-real.tsv":
                assert 1.0 <= float(seconds) <= 20.0
                assert voice.startswith("espeak-ng:") and "@" in voice


@needs_espeak
def test_held_out_voices_are_never_trained_on(prepared):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert sorted(manifest["held_out_voices"]) == sorted(HELD_OUT)
    trained = {
        row[3].split("@")[0]
        for name in ("train.tsv", "dev.tsv")
        for row in read_rows(prepared / name)
    }
    tested = {row[3].split("@")[0] for row in read_rows(prepared / "test-synthetic.tsv")}
    assert tested == set(HELD_OUT)
    assert not trained & set(HELD_OUT)
    listed = manifest["splits"]["train.tsv"]["voices"] + manifest["splits"]["dev.tsv"]["voices"]
    assert set(listed) == trained
    # Different sentences too: the test set's are held out by hash.
    train_text = {row[1] for row in read_rows(prepared / "train.tsv")}
    assert not train_text & {row[1] for row in read_rows(prepared / "test-synthetic.tsv")}


@needs_espeak
def test_evaluation_transcripts_are_never_synthesized(prepared):

    excluded = evaluation_transcripts(ASTERISK)
    for name in ("train.tsv", "dev.tsv", "test-synthetic.tsv"):
        assert not {row[1] for row in read_rows(prepared / name)} & excluded
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["text"]["counts"]["text-file: equals an evaluation transcript"] == 3


@needs_espeak
def test_phrases_are_short_spans_and_numbers_never_an_evaluation_transcript(sources, tmp_path):

    result = run_prepare(tmp_path, sources, "--phrases", "--no-real", "--utterances", "24")
    assert result.returncode == 0, result.stderr[-3000:]
    corpus = tmp_path / "asr-en"
    rows = read_rows(corpus / "train.tsv")
    assert len(rows) == 24
    sentence_words = {w for line in made_up_sentences(400) for w in line.lower().split()}
    number_words = {*NUMBER_WORDS, "hundred", "thousand", "nineteen", "twenty"}
    for _, transcript, _, _ in rows:
        words = transcript.split()
        # a span of 1-3 of the text's words, or a number said in words
        assert len(words) <= 3 or set(words) <= number_words | {"oh"}, transcript
    assert sum(set(row[1].split()) <= sentence_words for row in rows) >= 12
    assert min(float(row[2]) for row in rows) < 1.0  # shorter than any sentence kept
    assert not {row[1] for row in rows} & evaluation_transcripts(ASTERISK)
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["options"]["phrases"] is True
    assert manifest["synthesis"]["seconds_range"] == [0.3, 20.0]
    assert manifest["text"]["sources"]["phrases"]["from"] == ["text-file"]


@needs_espeak
def test_language_model_text_is_every_training_sentence_and_nothing_held_out(prepared):

    lines = (prepared / "lm.txt").read_text().splitlines()
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert len(lines) == manifest["lm_text"]["sentences"] == manifest["text"]["sentences"]["train"]
    assert len(lines) > 8  # every training sentence, not only the synthesized ones
    assert {row[1] for row in read_rows(prepared / "train.tsv")} <= set(lines)
    held_out = {row[1] for name in ("dev.tsv", "test-synthetic.tsv", "test-real.tsv")
                for row in read_rows(prepared / name)}  # fmt: skip
    assert not set(lines) & (held_out | evaluation_transcripts(ASTERISK))


@needs_espeak
def test_real_set_is_decoded_with_normalized_transcripts(prepared):
    rows = {row[0]: row for row in read_rows(prepared / "test-real.tsv")}
    assert set(rows) == {
        f"real/{key}.wav" for key in ASTERISK if key not in ("beep", "no-audio-for-this")
    }
    assert rows["real/digits/20.wav"][1:] == ["twenty", "2.000", "asterisk:allison"]
    assert rows["real/followme/options.wav"][1] == (
        "press one to accept this call or two to reject it"
    )
    real = json.loads((prepared / "manifest.json").read_text())["real"]
    assert real["no_speech"] == ["beep"] and real["no_audio"] == ["no-audio-for-this"]


@needs_espeak
def test_second_run_does_nothing(prepared, sources):
    files = sorted(p for p in prepared.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    result = run_prepare(prepared.parent, sources)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is up to date" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert sorted(p for p in prepared.rglob("*") if p.is_file()) == files


@needs_espeak
def test_interrupted_run_completes(prepared, sources, tmp_path):
    copy = tmp_path / "asr-en"
    shutil.copytree(prepared, copy)
    tables = {name: (copy / name).read_text() for name in ("train.tsv", "test-synthetic.tsv")}
    lost = copy / read_rows(copy / "train.tsv")[3][0]
    kept = copy / read_rows(copy / "train.tsv")[0][0]
    kept_time = kept.stat().st_mtime_ns
    (copy / "manifest.json").unlink()  # as if killed before the end
    (copy / "lm.txt").unlink()
    lost.unlink()
    (lost.parent / f".{lost.name}.123.tmp").write_bytes(b"RIFF half")  # a killed write
    result = run_prepare(tmp_path, sources)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(13 already there)" in result.stderr  # only the lost one is synthesized
    assert lost.is_file() and kept.stat().st_mtime_ns == kept_time
    assert not list(copy.rglob(".*.tmp"))
    assert {name: (copy / name).read_text() for name in tables} == tables
    assert (copy / "lm.txt").read_text() == (prepared / "lm.txt").read_text()
    assert (copy / "manifest.json").is_file()


def test_bad_options_fail_with_one_line(tmp_path):
    for extra in (["--utterances", "0"], ["--engines", "say"]):
        command = [sys.executable, "-m", "seq2seq", "prepare", "asr", "--no-install"]
        command += ["--data-dir", str(tmp_path), *extra]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.startswith("seq2seq prepare asr: error:")
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_g722_prompts_decode_to_16_khz(tmp_path):

    source = tmp_path / "prompt.g722"
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"]
    command += ["sine=frequency=440:duration=1.5:sample_rate=16000", "-c:a", "g722", str(source)]
    subprocess.run(command, check=True)
    target, seconds, error = decode_prompt((str(source), str(tmp_path / "out" / "p.wav")))
    assert error is None and abs(seconds - 1.5) < 0.05
    info = soundfile.info(target)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


@needs_espeak
def test_espeak_voices_are_listed():
    voices = list_voices(["espeak-ng"])
    accents = {voice.voice for voice in voices}
    assert {"en-us", "en-gb-scotland", "en-029"} <= accents
    assert {voice.name for voice in voices} >= set(HELD_OUT)
