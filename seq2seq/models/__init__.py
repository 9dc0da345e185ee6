"""Models: complete encoder-decoders built from encoders, decoders and layers."""

from seq2seq.models.translator import Translator

__all__ = ["Translator"]
