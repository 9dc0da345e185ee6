"""Encoders: turn an embedded source sequence into a memory for attention."""

from seq2seq.encoders.rnn_encoder import RNNEncoder

__all__ = ["RNNEncoder"]
