"""Transcribing audio with an exported SavedModel or a TF Serving endpoint, from Python or
`seq2seq transcribe` (the speech twin of `seq2seq.inference`).

    transcriber = SavedModelTranscriber.load("saved_models/asr-en")
    transcriber = ServerTranscriber.connect("grpc://localhost:8500/asr-en")
    transcriber.transcribe([load_audio("hello.flac")], beam_size=1)

A path is a SavedModel directory or a TF Serving model base directory, whose highest
numeric version is used. Signals are 16 kHz mono float32 (`audio.io.load_audio` makes
them from any file). Audio longer than the model's `max_piece_seconds` is split at its
quietest points (`audio.io.split_at_silences`) and the pieces' transcripts are joined
with a space. Pieces of similar length share a model call: zero-padded into one
`[batch, samples]` array with their lengths, the `serving_default` inputs.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from audio.io import split_at_silences, split_stream
from seq2seq.data.speech_pipeline import length_batches, pad_audio
from seq2seq.export import SearchSignatures, export_info, resolve_model_dir

SAMPLE_RATE = 16000
"""What the models take (DESIGN.md: 16 kHz mono)."""

MAX_PIECE_SECONDS = 20.0
"""Longest piece sent to a model when it does not say (`export.json`)."""

MAX_BATCH_SECONDS = 160.0
"""Padded audio seconds per model call."""

MAX_BATCH_ROWS = 32
"""Pieces per model call."""

STREAM_GROUP_BATCHES = 4
"""`transcribe_stream` sorts pieces into model calls this many calls' audio at a time."""


@dataclasses.dataclass
class Transcript:
    """What a signal said.

    Attributes:
        text: the transcript (pieces joined with a space); "" for silence or no audio.
        score: the model's score, summed over the pieces (0 without pieces).
        pieces: how many pieces the signal was transcribed in.
    """

    text: str
    score: float
    pieces: int


class Transcriber(SearchSignatures, abc.ABC):
    """Turns signals into model calls: splits long audio at silences, batches pieces of
    similar length, picks the signature of a beam size, and joins the transcripts back
    into one per signal. Subclasses run the calls.

    Args:
        source: what the model is, for messages (a directory or a URL).
        signature_names: the model's signatures.
        sample_rate: the model's sample rate.
        max_piece_seconds: longest piece of audio per transcription.
    """

    def __init__(
        self,
        source: str | Path,
        signature_names: list[str],
        sample_rate: int = SAMPLE_RATE,
        max_piece_seconds: float = MAX_PIECE_SECONDS,
    ):
        super().__init__(source, signature_names)
        self.sample_rate = sample_rate
        self.max_piece_seconds = max_piece_seconds

    @abc.abstractmethod
    def _run(
        self, signature_name: str, audio: np.ndarray, lengths: np.ndarray
    ) -> tuple[list[bytes], np.ndarray]:
        """Transcribes one padded batch: `(texts, scores)`."""

    def warm_up(self, beam_size: int | None = None) -> None:
        """Runs the signature of `beam_size` once on half a second of silence, so that the
        first real call does not pay the graph's one-time optimization."""
        samples = self.sample_rate // 2
        self._run(
            self.signature_name(beam_size),
            np.zeros((1, samples), np.float32),
            np.array([samples], np.int32),
        )

    def pieces(self, signal: np.ndarray) -> list[np.ndarray]:
        """The pieces `signal` is transcribed in: itself, or its parts cut at silences when
        it is longer than `max_piece_seconds`; none when it is empty."""
        if len(signal) == 0:
            return []
        return split_at_silences(signal, self.max_piece_seconds, self.sample_rate)

    def transcribe(
        self, signals: list[np.ndarray], beam_size: int | None = None
    ) -> list[Transcript]:
        """Transcribes signals (float32 mono at `sample_rate`), one `Transcript` each.

        Raises:
            ValueError: when the model has no signature for `beam_size`.
        """
        signature_name = self.signature_name(beam_size)
        pieces = [self.pieces(np.asarray(signal, np.float32)) for signal in signals]
        texts, scores = self._transcribe_pieces(
            signature_name, [piece for parts in pieces for piece in parts]
        )
        transcripts, start = [], 0
        for parts in pieces:
            end = start + len(parts)
            transcripts.append(_joined(texts[start:end], scores[start:end]))
            start = end
        return transcripts

    def transcribe_stream(
        self, blocks: Iterable[np.ndarray], beam_size: int | None = None
    ) -> Transcript:
        """Transcribes one signal given as consecutive blocks (`audio.io.stream_audio`'s),
        holding only the audio not yet transcribed: a recording of hours takes the memory
        of a few minutes. The pieces are those `transcribe` cuts the joined blocks into
        (`audio.io.split_stream`), so the transcript is the same up to float rounding
        (pieces share model calls with other pieces).

        Raises:
            ValueError: when the model has no signature for `beam_size`.
        """
        signature_name = self.signature_name(beam_size)
        group_samples = int(STREAM_GROUP_BATCHES * MAX_BATCH_SECONDS * self.sample_rate)
        texts: list[str] = []
        scores: list[np.ndarray] = []
        for group in _groups(
            split_stream(blocks, self.max_piece_seconds, self.sample_rate), group_samples
        ):
            group_texts, group_scores = self._transcribe_pieces(signature_name, group)
            texts += group_texts
            scores.append(group_scores)
        return _joined(texts, np.concatenate(scores) if scores else np.zeros(0))

    def _transcribe_pieces(
        self, signature_name: str, pieces: list[np.ndarray]
    ) -> tuple[list[str], np.ndarray]:
        """The text and score of each piece, in model calls of pieces of similar length."""
        texts, scores = [""] * len(pieces), np.zeros(len(pieces))
        max_samples = int(MAX_BATCH_SECONDS * self.sample_rate)
        for rows in length_batches([len(p) for p in pieces], max_samples, MAX_BATCH_ROWS):
            audio, lengths = pad_audio([pieces[row] for row in rows])
            outputs, row_scores = self._run(signature_name, audio, lengths)
            for row, text, score in zip(rows, outputs, row_scores, strict=True):
                texts[row] = text.decode("utf-8", errors="replace")
                scores[row] = float(score)
        return texts, scores


def _groups(pieces: Iterable[np.ndarray], samples: int) -> Iterator[list[np.ndarray]]:
    """Consecutive pieces in lists of about `samples` samples (the last may be short):
    enough for full model calls of pieces of similar length."""
    group: list[np.ndarray] = []
    held = 0
    for piece in pieces:
        group.append(piece)
        held += len(piece)
        if held >= samples:
            yield group
            group, held = [], 0
    if group:
        yield group


def _joined(texts: list[str], scores: np.ndarray) -> Transcript:
    """The transcript of a signal from those of its pieces."""
    return Transcript(" ".join(t for t in texts if t), float(scores.sum()), len(texts))


def _is_speech_signature(inputs: Any) -> bool:
    return isinstance(inputs, Mapping) and {"audio", "audio_length"} <= set(inputs)


def is_speech_model(model_dir: str | Path) -> bool:
    """Whether the SavedModel in `model_dir` is a speech recognizer: its `serving_default`
    takes `audio` and `audio_length`. Reads the signature from `saved_model.pb` without
    loading the model.

    Returns:
        False also when the file cannot be read or parsed (loading the model says why).
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((Path(model_dir) / "saved_model.pb").read_bytes())
    except (OSError, DecodeError):
        return False
    for meta_graph in saved_model.meta_graphs:
        if "serving_default" in meta_graph.signature_def:
            return _is_speech_signature(meta_graph.signature_def["serving_default"].inputs)
    return False


class SavedModelTranscriber(Transcriber):
    """A speech-recognizer SavedModel loaded with `tf.saved_model.load`.

    Args:
        model_dir: the SavedModel directory.
        loaded: the object `tf.saved_model.load` returned for it.
    """

    def __init__(self, model_dir: Path, loaded: Any):
        info = export_info(model_dir)
        super().__init__(
            model_dir,
            list(loaded.signatures),
            int(info.get("sample_rate", SAMPLE_RATE)),
            float(info.get("max_piece_seconds", MAX_PIECE_SECONDS)),
        )
        _, inputs = loaded.signatures["serving_default"].structured_input_signature
        if not _is_speech_signature(inputs):
            raise ValueError(
                f"{model_dir}: not a speech recognizer (serving_default takes "
                f"{', '.join(sorted(inputs))}, not audio and audio_length)"
            )
        self.model_dir = model_dir
        # The signatures need the variables that the loaded object owns: keep it alive.
        self.loaded = loaded
        self.signatures = loaded.signatures

    @classmethod
    def load(cls, path: str | Path) -> SavedModelTranscriber:
        """Loads the SavedModel that `path` names (see `seq2seq.export.resolve_model_dir`).

        Raises:
            ValueError: naming the path when it holds no loadable speech recognizer.
        """
        model_dir = resolve_model_dir(path)
        import tensorflow as tf  # only here: transcribing through a server does not need it

        try:
            loaded = tf.saved_model.load(str(model_dir))
        except Exception as error:  # TensorFlow raises many kinds; all mean "cannot load".
            reason = next(iter(str(error).strip().splitlines()), "")
            raise ValueError(
                f"{model_dir}: cannot load the SavedModel ({type(error).__name__}: {reason})"
            ) from error
        return cls(model_dir, loaded)

    def _run(self, signature_name, audio, lengths):
        outputs = self.signatures[signature_name](audio=audio, audio_length=lengths)
        return list(outputs["text"].numpy()), outputs["score"].numpy()


class ServerTranscriber(Transcriber):
    """A speech recognizer behind a TF Serving endpoint (`seq2seq serve` or TF Serving).

    Args:
        client: a `seq2seq.client` REST or gRPC client for the model.
    """

    def __init__(self, client: Any):
        super().__init__(client.url, client.signature_names())
        inputs = client._signature_defs()["serving_default"].get("inputs", {})
        if not _is_speech_signature(inputs):
            raise ValueError(f"{client.url}: not a speech recognizer (no audio input)")
        self.client = client

    @classmethod
    def connect(cls, url: str) -> ServerTranscriber:
        """Connects to a model URL (see `seq2seq.client.connect`).

        Raises:
            ValueError: naming the URL when it is malformed or the server cannot answer.
        """
        from seq2seq.client import ServingClientError, connect

        try:
            return cls(connect(url))
        except ServingClientError as error:
            raise ValueError(str(error)) from None

    def _run(self, signature_name, audio, lengths):
        from seq2seq.client import answer_rows

        outputs = self.client.predict({"audio": audio, "audio_length": lengths}, signature_name)
        return answer_rows(outputs, len(lengths), self.client.url, score="score")
