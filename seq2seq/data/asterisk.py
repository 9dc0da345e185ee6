"""The real-speech evaluation set of `seq2seq prepare asr`: Asterisk's recorded prompts.

Debian's `asterisk-core-sounds-en-g722` holds the prompts of one speaker (Allison) as
16 kHz G.722, decoded here with ffmpeg to 16 kHz mono 16-bit WAV; their transcripts
are `asterisk-core-sounds-en`'s `key: text` file. The transcripts are also what the
synthetic corpus must never say (`evaluation_transcripts`).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

from seq2seq.data import DataError, parallel_map, wav_seconds
from seq2seq.data.spoken import normalize_transcript, split_sentences

SAMPLE_RATE = 16000
REAL_APT = ("ffmpeg", "asterisk-core-sounds-en-g722", "asterisk-core-sounds-en")
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_VOICE = "asterisk:allison"


def read_asterisk_transcripts(path: Path) -> dict[str, str]:
    """`{key: text}` of Asterisk's `key: text` transcript file (plain or gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    transcripts = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(";") or ":" not in line:
                continue
            key, _, text = line.partition(":")
            if key.strip() and " " not in key.strip():
                transcripts[key.strip()] = text.strip()
    if not transcripts:
        raise DataError(f"no `key: text` transcripts in {path}")
    return transcripts


def evaluation_transcripts(transcripts: dict[str, str]) -> set[str]:
    """The normalized transcripts never to synthesize: every prompt and each sentence of it."""
    excluded = set()
    for text in transcripts.values():
        excluded.add(normalize_transcript(text))
        excluded.update(normalize_transcript(sentence) for sentence in split_sentences(text))
    excluded.discard("")
    return excluded


def decode_prompt(job: tuple[str, str]) -> tuple[str, float | None, str | None]:
    """Decode one prompt to 16 kHz mono 16-bit WAV at `target` unless it is there."""
    source, target = map(Path, job)
    try:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp.wav")
            try:
                if shutil.which("ffmpeg"):
                    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
                    command += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le"]
                    result = subprocess.run([*command, str(temporary)], capture_output=True)
                    if result.returncode != 0:
                        reason = result.stderr.decode(errors="replace").strip()
                        return str(target), None, f"{source}: ffmpeg failed: {reason[-200:]}"
                else:  # what libsndfile can read (the tests' WAV prompts)
                    from audio.io import load_audio, to_wav_bytes

                    temporary.write_bytes(to_wav_bytes(load_audio(source, SAMPLE_RATE)))
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
        return str(target), wav_seconds(target), None
    except Exception as error:  # one bad prompt must not stop the others
        return str(target), None, f"{source}: {error}"


def prepare_real(
    out_dir: Path,
    transcripts: dict[str, str],
    sounds_dir: Path,
    workers: int,
    stats: dict,
) -> list[tuple[str, str, float, str]]:
    """Decode the prompts that have a transcript with speech; their TSV rows by key."""
    jobs, rows_by_target = [], {}
    audio = {path.with_suffix("").relative_to(sounds_dir).as_posix(): path
             for path in sounds_dir.rglob("*") if path.is_file()}  # fmt: skip
    for key, text in sorted(transcripts.items()):
        transcript = normalize_transcript(text)
        if key not in audio:
            stats["no audio"].append(key)
        elif not transcript:
            stats["no speech"].append(key)
        else:
            target = out_dir / "real" / f"{key}.wav"
            jobs.append((str(audio[key]), str(target)))
            rows_by_target[str(target)] = (f"real/{key}.wav", transcript)
    stats["no transcript"] = sorted(set(audio) - set(transcripts))
    rows = []
    for target, seconds, error in parallel_map(decode_prompt, jobs, workers, "decode asterisk"):
        if error:
            stats["failed"].append(error)
            continue
        path, transcript = rows_by_target[target]
        rows.append((path, transcript, seconds, ASTERISK_VOICE))
    return sorted(rows)
