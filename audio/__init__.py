"""Audio I/O, the librosa log-mel front-end and its in-graph twin (issue #5)."""
