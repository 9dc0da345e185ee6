"""Translating with an exported SavedModel or a TF Serving endpoint, from Python or
`seq2seq translate`.

    translator = SavedModelTranslator.load("saved_models/translate-en-fr")
    translator = ServerTranslator.connect("grpc://localhost:8500/translate-en-fr")
    translator.translate(["The cat sees a dog.", ""], beam_size=1)

    translator.n_best(["The cat sees a dog."], 3)  # [[(text, score), ...]], best first

A path is a SavedModel directory or a TF Serving model base directory, whose highest
numeric version is used. Lines are translated in batches sorted by length; a blank line
gives an empty translation; a line longer than the model takes is split into sentences
translated one by one and joined with a space.
"""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece

from seq2seq.export import SearchSignatures, export_info, resolve_model_dir

Hypothesis = tuple[str, float]
"""A translation and its score (see `seq2seq.export.saved_model`)."""

MAX_LINE_CHARS = 400
"""Lines longer than this are split into sentences even when the model would take them."""

BATCH_SIZE = 64
"""Sentences per call of the model. Beam-5 search of the Bible test set (1,023 sentences,
2 cores) ran 1.18x faster in batches of 64 than of 32, and 128 added only 2% more."""

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def split_sentences(text: str) -> list[str]:
    """Splits text after each `.`, `!`, `?` or `;` that whitespace follows.

    Args:
        text: the text to split.

    Returns:
        Its sentences, without the whitespace between them.

    >>> split_sentences("One. Two!  Three; four")
    ['One.', 'Two!', 'Three;', 'four']
    """
    return [piece for piece in _SENTENCE_END.split(text.strip()) if piece]


class Translator(SearchSignatures, abc.ABC):
    """Turns lines into model calls: splits long lines into sentences, batches
    sentences of similar length, picks the signature of a beam size, and joins the
    translations back into one line per input. Subclasses run the calls.

    Args:
        source: what the model is, for messages (a directory or a URL).
        signature_names: the model's signatures.
        batch_size: sentences per call of the model.
        max_source_tokens: the most tokens the model takes from a source, when known.
        tokenizer: the model's SentencePiece model, when known (with `max_source_tokens`,
            it lets lines over the limit be split rather than cut).
    """

    def __init__(
        self,
        source: str | Path,
        signature_names: list[str],
        batch_size: int = BATCH_SIZE,
        max_source_tokens: int | None = None,
        tokenizer: sentencepiece.SentencePieceProcessor | None = None,
    ):
        super().__init__(source, signature_names)
        self.batch_size = batch_size
        self.max_source_tokens = max_source_tokens
        self.tokenizer = tokenizer

    @abc.abstractmethod
    def _run(self, signature_name: str, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        """Translates one batch of texts with a signature: its `text` and `score` outputs,
        a row per text (bytes and a float, or for `n_best` a list and an array of them)."""

    def warm_up(self, beam_size: int | None = None) -> None:
        """Runs the signature of `beam_size` once on a short sentence, so that the first
        real call does not pay the graph's one-time optimization."""
        self._run(self.signature_name(beam_size), ["Warm-up."])

    def is_truncated(self, text: str) -> bool:
        """Whether the model cuts some piece of `text` (see `pieces`) to its token limit.

        Args:
            text: one input line.
        """
        return any(self._too_long(piece) for piece in self.pieces(text))

    def pieces(self, text: str) -> list[str]:
        """The parts `text` is translated in: itself, or its sentences when it is longer
        than `MAX_LINE_CHARS` or than the model's token limit; none when it is blank.

        Args:
            text: one input line.
        """
        if not text.strip():
            return []
        if len(text) <= MAX_LINE_CHARS and not self._too_long(text):
            return [text]
        return split_sentences(text)

    def _too_long(self, text: str) -> bool:
        """Whether `text` has more tokens than the model takes (False when the export does
        not say how many it takes).

        Args:
            text: a source text.
        """
        if self.tokenizer is None:
            return False
        return len(self.tokenizer.encode(text)) + 2 > self.max_source_tokens  # tag and EOS

    def translate(self, texts: list[str], beam_size: int | None = None) -> list[str]:
        """Translates texts, one output line each.

        Args:
            texts: the texts; blank ones give "".
            beam_size: 1 for greedy search, N for the `beam_N` signature, None for the
                export's default (`serving_default`).

        Returns:
            One translation per text, in order, without line breaks.

        Raises:
            ValueError: when the model has no signature for `beam_size`.
        """
        results = self._search(self.signature_name(beam_size), texts)
        return [hypotheses[0][0] for hypotheses in results]

    def n_best(self, texts: list[str], n: int) -> list[list[Hypothesis]]:
        """The `n` best translations of each text by the export's default beam search
        (the `n_best` signature), best first, with their scores.

        A text translated in several sentences (see `pieces`) gets the sentences' first
        hypotheses joined, then their second ones, and so on, each scored by the sum of
        its sentences' scores. A blank text gets one hypothesis, ("", 0.0).

        Args:
            texts: the texts.
            n: hypotheses per text at most (the search's beam size bounds it).

        Returns:
            Per text, between 1 and `n` `(translation, score)` pairs.

        Raises:
            ValueError: when the model has no `n_best` signature.
        """
        signature_name = self.n_best_signature_name()
        return [hypotheses[:n] for hypotheses in self._search(signature_name, texts)]

    def n_best_signature_name(self) -> str:
        """The signature that `n_best` calls.

        Raises:
            ValueError: when the model has no `n_best` signature.
        """
        if "n_best" not in self.signature_names:
            raise ValueError(
                f"{self.source}: the model has no n_best signature (exported without beam "
                "search, or before it existed: export it again)"
            )
        return "n_best"

    def _search(self, signature_name: str, texts: list[str]) -> list[list[Hypothesis]]:
        """The hypotheses of each text that a signature gives, best first."""
        pieces = [self.pieces(text) for text in texts]
        flat = [piece for parts in pieces for piece in parts]
        # Sentences of similar length share a batch, so that little of it is padding.
        order = sorted(range(len(flat)), key=lambda index: len(flat[index]))
        found: list[list[Hypothesis]] = [[] for _ in flat]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            outputs, scores = self._run(signature_name, [flat[row] for row in rows])
            for row, output, score in zip(rows, outputs, scores, strict=True):
                found[row] = _hypotheses(output, score)
        results, start = [], 0
        for parts in pieces:
            sentences = found[start : start + len(parts)]
            start += len(parts)
            if not sentences:
                results.append([("", 0.0)])
                continue
            results.append(
                [
                    # One output line per input, whatever the model writes.
                    (
                        " ".join(" ".join(text for text, _ in ranked).splitlines()),
                        sum(score for _, score in ranked),
                    )
                    # The k-th hypothesis of every sentence, while each sentence has one.
                    for ranked in zip(*sentences, strict=False)
                ]
            )
        return results


def _hypotheses(texts: Any, scores: Any) -> list[Hypothesis]:
    """One row of a signature's outputs as `(text, score)` pairs: the first, and the others
    with a finite score (a beam may finish fewer hypotheses than it holds).

    >>> _hypotheses(b"un chat", np.float32(-1.5))
    [('un chat', -1.5)]
    >>> _hypotheses([b"un chat", b""], np.array([-1.5, -np.inf]))
    [('un chat', -1.5)]
    """
    if isinstance(texts, bytes):
        texts, scores = [texts], [scores]
    return [
        (text.decode("utf-8", errors="replace"), float(score))
        for rank, (text, score) in enumerate(zip(texts, scores, strict=True))
        if rank == 0 or np.isfinite(score)
    ]


class SavedModelTranslator(Translator):
    """A translator SavedModel loaded with `tf.saved_model.load`.

    Args:
        model_dir: the SavedModel directory (see `seq2seq.export.resolve_model_dir`).
        loaded: the object `tf.saved_model.load` returned for it.
        batch_size: sentences per call of the model.
    """

    def __init__(self, model_dir: Path, loaded: Any, batch_size: int = BATCH_SIZE):
        # Exports by `seq2seq export` say how long a source may be; others are taken as
        # they are, without sentence splitting by tokens.
        info = export_info(model_dir)
        spm_path = model_dir / "assets" / "spm.model"
        max_source_tokens = tokenizer = None
        self.direction = None
        if info and spm_path.is_file():
            max_source_tokens = int(info["max_source_tokens"])
            self.direction = info.get("direction")
            tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
        super().__init__(
            model_dir, list(loaded.signatures), batch_size, max_source_tokens, tokenizer
        )
        self.model_dir = model_dir
        # The signatures need the variables that the loaded object owns: keep it alive.
        self.loaded = loaded
        self.signatures = loaded.signatures

    @classmethod
    def load(cls, path: str | Path, batch_size: int = BATCH_SIZE) -> SavedModelTranslator:
        """Loads the SavedModel that `path` names (see `seq2seq.export.resolve_model_dir`).

        Args:
            path: a SavedModel directory or a model base directory.
            batch_size: sentences per call of the model.

        Raises:
            ValueError: naming the path when it holds no loadable translator.
        """
        model_dir = resolve_model_dir(path)
        # TensorFlow only here: translating through a server does not need it.
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the graphs use)

        try:
            loaded = tf.saved_model.load(str(model_dir))
        except Exception as error:  # TensorFlow raises many kinds; all mean "cannot load".
            reason = next(iter(str(error).strip().splitlines()), "")  # one line of many
            raise ValueError(
                f"{model_dir}: cannot load the SavedModel ({type(error).__name__}: {reason})"
            ) from error
        return cls(model_dir, loaded, batch_size)

    def _run(self, signature_name: str, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        outputs = self.signatures[signature_name](text=np.array(texts, dtype=object))
        return outputs["text"].numpy().tolist(), outputs["score"].numpy()

    def align(self, text: str) -> tuple[list[str], list[str], np.ndarray]:
        """Greedy translation of one text with its attention (the `align` signature).

        Args:
            text: the source text.

        Returns:
            `(source_tokens, target_tokens, attention [target, source])`: subword pieces
            (the target-language tag and EOS included on the source side).
        """
        outputs = self.signatures["align"](text=np.array([text], dtype=object))
        source = [t.decode("utf-8", errors="replace") for t in outputs["source_tokens"][0].numpy()]
        target = [t.decode("utf-8", errors="replace") for t in outputs["target_tokens"][0].numpy()]
        source = [token for token in source if token]
        target = [token for token in target if token]
        attention = outputs["attention"][0].numpy()[: len(target), : len(source)]
        return source, target, attention


class ServerTranslator(Translator):
    """A translator behind a TF Serving endpoint (`seq2seq serve` or TF Serving itself).

    Args:
        client: a `seq2seq.client` REST or gRPC client for the model.
        batch_size: sentences per request.
    """

    def __init__(self, client: Any, batch_size: int = BATCH_SIZE):
        super().__init__(client.url, client.signature_names(), batch_size)
        self.client = client

    @classmethod
    def connect(cls, url: str, batch_size: int = BATCH_SIZE) -> ServerTranslator:
        """Connects to a model URL (see `seq2seq.client.connect`).

        Raises:
            ValueError: naming the URL when it is malformed or the server cannot answer.
        """
        from seq2seq.client import ServingClientError, connect

        try:
            return cls(connect(url), batch_size)
        except ServingClientError as error:
            raise ValueError(str(error)) from None

    def _run(self, signature_name: str, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        from seq2seq.client import answer_rows

        outputs = self.client.predict({"text": texts}, signature_name)
        ndim = 2 if signature_name == "n_best" else 1
        return answer_rows(outputs, len(texts), self.client.url, score="score", ndim=ndim)
