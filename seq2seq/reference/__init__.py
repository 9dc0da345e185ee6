"""The GRU, explained: executable documentation of a gated recurrent unit.

`numpy_gru` is a small NumPy GRU (forward pass and hand-written backpropagation
through time) with Keras's weight layout; `walkthrough` runs the tutorial's
worked example (`python -m seq2seq.reference.walkthrough`). Both are checked
against finite differences and against `seq2seq.layers.GRU` in
`tests/test_reference.py`.
"""
