"""Training configs: one YAML file per model, read into typed dataclasses.

Every field has a default, so a config only states what differs; unknown keys
are errors (a typo must not silently train the wrong model). `task` picks the
kind of the `data`, `model` and `decoding` sections: `translate` (the default)
or `asr` (speech recognition: `SpeechDataConfig`, `SpeechModelConfig`,
`SpeechDecodingConfig`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """Where the prepared corpus is and how it is batched."""

    dir: str = "data/translate-en-fr"
    # Translation directions trained into one model, e.g. ["en-fr", "fr-en"];
    # the TSV columns are in the order of the corpus pair (data dir name).
    directions: list[str] = field(default_factory=lambda: ["en-fr"])
    max_length: int = 128  # subword tokens; longer training pairs are skipped
    batch_tokens: int = 4096  # padded tokens per batch (source or target, the larger)
    dev_sentences: int = 400  # dev sentences decoded for BLEU during training
    shuffle_buffer: int = 20000


@dataclass
class ModelConfig:
    """Embeddings -> bidirectional GRU encoder -> attention GRU decoder."""

    gru: str = "ours"  # "ours" (seq2seq.layers.GRU) or "stock" (keras.layers.GRU)
    embedding_dim: int = 256
    encoder_units: int = 256  # per direction
    encoder_layers: int = 2
    decoder_units: int = 512
    attention: str = "luong"  # "luong" (multiplicative) or "bahdanau" (additive)
    attention_units: int = 256  # bahdanau only
    tie_embeddings: bool = True
    dropout: float = 0.2


@dataclass
class TrainingConfig:
    output_dir: str = "runs/translate-en-fr"
    epochs: int = 50
    learning_rate: float = 1e-3
    warmup_steps: int = 400
    decay_steps: int = 20000  # cosine decay after warm-up
    label_smoothing: float = 0.1
    clipnorm: float = 1.0
    early_stopping_patience: int = 6  # epochs without a better dev BLEU
    backup_every_steps: int = 100
    seed: int = 1234
    # Weights (a `best.weights.h5` of a run with the same model section) that a fresh
    # run starts from instead of random ones; a resumed run ignores it.
    init_from: str = ""
    # Wall-clock minutes after which this process stops training (0: no limit). The
    # epoch under way ends at that step; running the command again continues.
    max_minutes: float = 0.0
    # The weights at the end of each of the last N epochs, kept in the run's
    # `checkpoints/` for checkpoint averaging (`seq2seq export --weights FILE...`); 0: none.
    keep_checkpoints: int = 0
    # Keras dtype policy of the layers in training: "float32", or "mixed_bfloat16"
    # (float32 weights, bfloat16 compute: the translator's steps 1.57x faster on a CPU
    # with AMX, the small speech model's 2%; emulated, so slower, on CPUs without
    # bfloat16 units). Dev scoring uses it too; an export computes under
    # `decoding.dtype_policy` whatever the run trained under.
    dtype_policy: str = "float32"


@dataclass
class DecodingConfig:
    beam_size: int = 5
    length_penalty: float = 0.6
    max_length_ratio: float = 2.0  # maximum output length = ratio * source + offset
    max_length_offset: int = 10
    # Keras dtype policy of an export (`seq2seq export --dtype-policy`): "float32", or
    # "bfloat16": weights stored and computed in bfloat16 (the speech front-end, the output
    # heads' results and the search's scores stay float32), half the variables' bytes and
    # a faster batched search on CPUs with AMX; emulated, so slower, on CPUs without
    # bfloat16 units.
    dtype_policy: str = "float32"


@dataclass
class TranslationDecodingConfig(DecodingConfig):
    # Beam and greedy search: no hypothesis holds an n-gram of this many subwords twice
    # (0: off); it breaks the loops of a weak model ("and his two sons, and his two sons").
    no_repeat_ngram_size: int = 0


@dataclass
class WaveAugmentConfig:
    """Waveform augmentation of training utterances (`audio.augment.augment_waveform`)."""

    enabled: bool = True
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    noise_probability: float = 0.5
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])  # uniform in [low, high]
    # Fraction of training utterances replaced by noise alone with an empty transcript
    # (`audio.augment.background_noise`), so that the model learns to write nothing where
    # nobody speaks: without them it transcribes a noise-only recording as words.
    noise_only_probability: float = 0.0


@dataclass
class SpeechDataConfig:
    """Where the prepared speech corpus is (`seq2seq prepare asr`) and how it is batched."""

    dir: str = "data/asr-en"
    # `path<TAB>transcript<TAB>seconds<TAB>voice` file(s), relative to dir; several (a list)
    # are trained on together, e.g. a second `seq2seq prepare asr` of more sentences.
    train: str | list[str] = "train.tsv"
    dev: str = "dev.tsv"
    batch_seconds: float = 240.0  # padded audio seconds per batch (after augmentation)
    max_seconds: float = 16.0  # longer training utterances are skipped
    bucket_seconds: list[float] = field(
        default_factory=lambda: [1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0]
    )
    dev_utterances: int = 200  # dev utterances decoded for WER during training
    normalization_utterances: int = 400  # training utterances that fit the feature scale
    shuffle_buffer: int = 5000
    augment: WaveAugmentConfig = field(default_factory=WaveAugmentConfig)

    @property
    def train_files(self) -> list:
        """`train` as a list of names, whether the config gave one or a list."""
        return [self.train] if isinstance(self.train, str) else self.train


@dataclass
class FrontEndSection:
    """The log-mel front-end (`audio.features.FrontEndConfig`) and its normalization."""

    sample_rate: int = 16000
    n_fft: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    normalization: str = "utterance_mean"  # audio.layers.FeatureNormalization's mode


@dataclass
class SpecAugmentSection:
    """SpecAugment masks (`audio.layers.SpecAugment`), training only."""

    enabled: bool = True
    freq_masks: int = 2
    freq_width: int = 15  # mel bands
    time_masks: int = 2
    time_width: int = 40  # frames of 10 ms
    time_ratio: float = 0.2


@dataclass
class VTLPSection:
    """Vocal tract length perturbation (`audio.layers.VTLP`), training only: each
    utterance's frequencies warped by a factor uniform in [1 - max_warp, 1 + max_warp]."""

    enabled: bool = False
    max_warp: float = 0.1


@dataclass
class SpeechModelConfig:
    """Log-mel -> normalization -> VTLP -> SpecAugment -> strided convolutions -> bidirectional
    GRU encoder (+ CTC head) -> attention GRU decoder over characters."""

    gru: str = "ours"  # "ours" (seq2seq.layers.GRU) or "stock" (keras.layers.GRU)
    front_end: FrontEndSection = field(default_factory=FrontEndSection)
    spec_augment: SpecAugmentSection = field(default_factory=SpecAugmentSection)
    vtlp: VTLPSection = field(default_factory=VTLPSection)
    conv_channels: list[int] = field(default_factory=lambda: [32, 32])  # one 2x stride each
    conv_kernel: int = 3
    encoder_units: int = 256  # per direction
    encoder_layers: int = 3
    decoder_units: int = 256
    embedding_dim: int = 64
    attention: str = "luong"
    attention_units: int = 128  # bahdanau only
    dropout: float = 0.1
    ctc_weight: float = 0.3  # loss = ctc_weight * CTC + (1 - ctc_weight) * smoothed CE
    # CTC outputs per encoder frame: 2 lets 25 encoder frames/s emit 50 characters/s,
    # so that fast speech (and doubled letters, which need a blank between) still fits.
    ctc_upsampling: int = 1


@dataclass
class SpeechDecodingConfig(DecodingConfig):
    beam_size: int = 4  # 1: greedy; 0: CTC greedy (the CTC head alone, no decoder)
    length_penalty: float = 0.6
    # Maximum characters = ratio * CTC frames (40 ms each, or 40 / model.ctc_upsampling)
    # + offset.
    max_length_ratio: float = 1.0
    max_length_offset: int = 10
    ctc_weight: float = 0.3  # beam search: weight of the CTC prefix score (joint decoding)
    # Beam search: a character n-gram model of the corpus' lm.txt (order; 0: none) whose
    # log-prob, times lm_weight, is added to each character's score (shallow fusion).
    lm_order: int = 7
    lm_weight: float = 0.0
    max_piece_seconds: float = 10.0  # clients split longer audio at silences


DTYPE_POLICIES = ("float32", "mixed_bfloat16")
"""The Keras dtype policies a model can train under (`training.dtype_policy`)."""

EXPORT_DTYPE_POLICIES = ("float32", "bfloat16")
"""The Keras dtype policies an export can compute under (`decoding.dtype_policy`). Not
`mixed_bfloat16`: its layers cast their float32 weights at every step of a search, which
made a translator's one-sentence calls a quarter slower than float32's."""

MAX_LM_ORDER = 10
"""The highest n-gram order whose context keys fit in int64 (`seq2seq.utils.ngram`)."""

TASKS = {
    "translate": {
        "data": DataConfig,
        "model": ModelConfig,
        "decoding": TranslationDecodingConfig,
    },
    "asr": {
        "data": SpeechDataConfig,
        "model": SpeechModelConfig,
        "decoding": SpeechDecodingConfig,
    },
}
"""The section types of each task."""


@dataclass
class Config:
    name: str = "translate-en-fr"
    task: str = "translate"
    data: DataConfig | SpeechDataConfig = field(default_factory=DataConfig)
    model: ModelConfig | SpeechModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: TranslationDecodingConfig | SpeechDecodingConfig = field(
        default_factory=TranslationDecodingConfig
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, values: dict[str, Any], where: str, sections: dict[str, type] | None = None):
    types = {**typing.get_type_hints(cls), **(sections or {})}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in values.items():
        if dataclasses.is_dataclass(types[name]):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: {name} must be a mapping")
            value = _build(types[name], value, f"{where}: {name}")
        kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any], where: str = "config") -> Config:
    values = values or {}
    task = values.get("task", "translate")
    if task not in TASKS:
        raise ValueError(f"{where}: task must be one of {', '.join(TASKS)}, got {task!r}")
    config = _build(Config, values, where, TASKS[task])
    for name, section in TASKS[task].items():
        if name not in values:
            setattr(config, name, section())
    if task == "asr":
        # The translation defaults must never name a speech run's files.
        if "name" not in values:
            config.name = "asr-en"
        if "output_dir" not in values.get("training", {}):
            config.training.output_dir = f"runs/{config.name}"
    return config


def load_config(path: str | Path) -> Config:
    """Reads a YAML config; raises ValueError naming the file on any problem."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read config ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{path}: a config is a mapping of sections")
    config = config_from_dict(values, str(path))
    validate(config, path)
    return config


def validate(config: Config, path: str | Path) -> None:
    """Checks the values of a built config; raises ValueError naming `path` (the file,
    or whatever else set them) and the offending key."""
    if config.training.max_minutes < 0:
        raise ValueError(
            f"{path}: training.max_minutes must not be negative, got {config.training.max_minutes}"
        )
    if config.training.keep_checkpoints < 0:
        raise ValueError(
            f"{path}: training.keep_checkpoints must not be negative, "
            f"got {config.training.keep_checkpoints}"
        )
    if config.training.dtype_policy not in DTYPE_POLICIES:
        raise ValueError(
            f"{path}: training.dtype_policy must be one of {', '.join(DTYPE_POLICIES)}, "
            f"got {config.training.dtype_policy!r}"
        )
    if config.decoding.dtype_policy not in EXPORT_DTYPE_POLICIES:
        raise ValueError(
            f"{path}: decoding.dtype_policy must be one of {', '.join(EXPORT_DTYPE_POLICIES)}, "
            f"got {config.decoding.dtype_policy!r}"
        )
    if config.task == "asr":
        _validate_asr(config, path)
        return
    if config.model.gru not in ("ours", "stock"):
        raise ValueError(f"{path}: model.gru must be 'ours' or 'stock', got {config.model.gru!r}")
    if config.model.attention not in ("luong", "bahdanau"):
        raise ValueError(
            f"{path}: model.attention must be 'luong' or 'bahdanau', got {config.model.attention!r}"
        )
    for key in ("length_penalty", "no_repeat_ngram_size"):
        if getattr(config.decoding, key) < 0:
            raise ValueError(
                f"{path}: decoding.{key} must not be negative, got {getattr(config.decoding, key)}"
            )
    for direction in config.data.directions:
        if direction.count("-") != 1:
            raise ValueError(
                f"{path}: data.directions entries look like 'en-fr', got {direction!r}"
            )


def _validate_asr(config: Config, path: str | Path) -> None:
    model, data, decoding = config.model, config.data, config.decoding
    if model.gru not in ("ours", "stock"):
        raise ValueError(f"{path}: model.gru must be 'ours' or 'stock', got {model.gru!r}")
    if model.attention not in ("luong", "bahdanau"):
        raise ValueError(
            f"{path}: model.attention must be 'luong' or 'bahdanau', got {model.attention!r}"
        )
    modes = ("utterance_mean", "utterance", "global")
    if model.front_end.normalization not in modes:
        raise ValueError(
            f"{path}: model.front_end.normalization must be one of {', '.join(modes)}, "
            f"got {model.front_end.normalization!r}"
        )
    if not model.conv_channels or min(model.conv_channels) < 1:
        raise ValueError(f"{path}: model.conv_channels must list positive channel counts")
    if model.ctc_upsampling < 1:
        raise ValueError(
            f"{path}: model.ctc_upsampling must be at least 1, got {model.ctc_upsampling}"
        )
    for name, weight in (("model", model.ctc_weight), ("decoding", decoding.ctc_weight)):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"{path}: {name}.ctc_weight must be in [0, 1], got {weight}")
    if not 0 <= decoding.lm_order <= MAX_LM_ORDER or decoding.lm_weight < 0.0:
        raise ValueError(
            f"{path}: decoding.lm_order must be in [0, {MAX_LM_ORDER}] and decoding.lm_weight"
            f" not negative, got {decoding.lm_order} and {decoding.lm_weight}"
        )
    if decoding.lm_weight > 0.0 and not decoding.lm_order:
        raise ValueError(f"{path}: decoding.lm_weight needs a language model (decoding.lm_order)")
    train = data.train_files
    if (
        not isinstance(train, list)
        or not train
        or not all(isinstance(name, str) and name for name in train)
    ):
        raise ValueError(f"{path}: data.train must name a TSV file or list some, not {train!r}")
    if len(data.augment.snr_db) != 2 or not data.augment.speeds:
        raise ValueError(f"{path}: data.augment needs snr_db [low, high] and some speeds")
    if not 0.0 <= data.augment.noise_only_probability < 1.0:
        raise ValueError(
            f"{path}: data.augment.noise_only_probability must be in [0, 1), got "
            f"{data.augment.noise_only_probability}"
        )
    if data.batch_seconds < data.max_seconds:
        raise ValueError(
            f"{path}: data.batch_seconds ({data.batch_seconds}) must hold one utterance of "
            f"data.max_seconds ({data.max_seconds})"
        )
