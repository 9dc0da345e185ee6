"""The loop primitive under the fused GRU: a `scan` that costs least per step.

`keras.ops.scan` is `jax.lax.scan` under JAX, which is what we want there. Under
TensorFlow it keeps the carry in a TensorArray and forces the per-step outputs
to have the carry's structure, which costs ops inside the loop and rules out
saving gate activations for the backward pass. So under TensorFlow we build the
`tf.while_loop` ourselves: each step slices its inputs straight from the
loop-invariant tensors (a slice along the first axis shares the buffer, where
unstacking into TensorArrays first would copy them all), writes one slice of
each output, and nothing else runs per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

StepFn = Callable[[object, Sequence[object]], tuple[object, Sequence[object]]]


def scan(step: StepFn, init, xs: Sequence, num_outputs: int, reverse: bool = False):
    """Runs `step` over the leading (time) axis of every tensor in `xs`.

    Args:
        step: `step(carry, xs_t) -> (carry, ys_t)`; `carry` is one tensor,
            `xs_t` and `ys_t` are lists of tensors, each `y_t` shaped like the
            carry (so that a scan over zero steps knows its output shapes).
        init: the initial carry (a tensor).
        xs: list of tensors of shape `[T, ...]`, all with the same `T`.
        num_outputs: how many tensors `step` returns in `ys_t`.
        reverse: whether to run from `t = T - 1` down to `0`. The outputs are
            still indexed by `t`.

    Returns:
        `(final_carry, ys)`, where `ys` is a list of tensors `[T, ...]`.
    """
    if keras.backend.backend() == "tensorflow":
        return _tf_scan(step, init, list(xs), num_outputs, reverse)

    def body(carry, xs_t):
        carry, ys_t = step(carry, list(xs_t))
        return carry, tuple(ys_t)

    carry, ys = ops.scan(body, init, tuple(xs), reverse=reverse)
    return carry, list(ys)


def _tf_scan(step: StepFn, init, xs: list, num_outputs: int, reverse: bool):
    import tensorflow as tf

    length = tf.shape(xs[0])[0]
    # Output arrays take their element shapes from the first write.
    outputs = [tf.TensorArray(init.dtype, size=length) for _ in range(num_outputs)]

    def body(t, carry, outputs):
        carry, ys_t = step(carry, [x[t] for x in xs])
        outputs = [ta.write(t, y) for ta, y in zip(outputs, ys_t, strict=True)]
        return (t - 1 if reverse else t + 1), carry, outputs

    start = length - 1 if reverse else 0
    _, carry, outputs = tf.while_loop(
        lambda t, *_: t >= 0 if reverse else t < length,
        body,
        (start, init, outputs),
        maximum_iterations=length,
    )
    return carry, [_stack(ta, init) for ta in outputs]


def _stack(array, like):
    import tensorflow as tf

    # An empty TensorArray cannot stack when the batch size is unknown.
    return tf.cond(
        array.size() > 0,
        array.stack,
        lambda: tf.zeros(tf.concat([[0], tf.shape(like)], 0), like.dtype),
    )
