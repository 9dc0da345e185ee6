"""Keras dtype policies: building a model under one (training's `training.dtype_policy`,
an export's `decoding.dtype_policy`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers created (and built) inside take the Keras dtype policy `name`; the
    global policy is restored on exit. Keras gives a layer's sublayers the global
    policy, not their parent's, so a whole model is built under this.

    >>> with dtype_policy("bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.dtype_policy.name, keras.config.dtype_policy().name
    ('bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
