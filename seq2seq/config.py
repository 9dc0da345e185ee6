"""Training configs: one YAML file per model, read into typed dataclasses.

Every field has a default, so a config only states what differs; unknown keys
are errors (a typo must not silently train the wrong model).
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


@dataclass
class DecodingConfig:
    beam_size: int = 5
    length_penalty: float = 0.6
    max_length_ratio: float = 2.0  # maximum output length = ratio * source + offset
    max_length_offset: int = 10


@dataclass
class Config:
    name: str = "translate-en-fr"
    task: str = "translate"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, values: dict[str, Any], where: str):
    types = typing.get_type_hints(cls)
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
    return _build(Config, values or {}, where)


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
    _validate(config, path)
    return config


def _validate(config: Config, path: Path) -> None:
    if config.model.gru not in ("ours", "stock"):
        raise ValueError(f"{path}: model.gru must be 'ours' or 'stock', got {config.model.gru!r}")
    if config.model.attention not in ("luong", "bahdanau"):
        raise ValueError(
            f"{path}: model.attention must be 'luong' or 'bahdanau', got {config.model.attention!r}"
        )
    for direction in config.data.directions:
        if direction.count("-") != 1:
            raise ValueError(
                f"{path}: data.directions entries look like 'en-fr', got {direction!r}"
            )
