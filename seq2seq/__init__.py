"""seq2seq: GRU encoder-decoders for text and speech, built on Keras 3.

The GRU layer is `seq2seq.layers.GRU`; the command line is `seq2seq --help`.
"""

__version__ = "0.1.0"
