"""Model-agnostic utilities of seq2seq: greedy and beam search decoding."""
