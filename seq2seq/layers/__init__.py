"""Layers of seq2seq: our GRU and its cell."""

from seq2seq.layers.gru import GRU, GRUCell

__all__ = ["GRU", "GRUCell"]
