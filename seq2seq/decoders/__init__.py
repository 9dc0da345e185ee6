"""Decoders: predict the target sequence from a memory."""

from seq2seq.decoders.attention_decoder import AttentionDecoder

__all__ = ["AttentionDecoder"]
