"""A whole GRU sequence in one call: hoisted input projection, lean recurrent
step, and a hand-written backward pass (BPTT) whose weight gradients are single
matmuls over all time steps, as cuDNN does it.

On a CPU the cost of a recurrent layer is the sequential chain of small ops
inside its loop, so this module does as little as possible per step:

* forward: `x @ kernel` for every step in matmuls before the loop; inside it,
  the recurrent matmul(s), two sigmoids, one tanh and five element-wise ops;
* backward: every factor that does not depend on the incoming gradient is
  computed for all steps before the loop (with TensorFlow's fused sigmoid and
  tanh derivative kernels), so each step is one matmul per gate and eight
  element-wise ops; the weight gradients are then large matmuls over all steps
  after it (and the input gradients come from autodiff of the hoisted
  projection, also one matmul per gate);
* the batch runs as independent lanes, each with its own loop, so that the
  loops of different lanes fill different cores.

Masking costs nothing per step: a masked step gets a huge pre-activation on
the update gate, so `z == 1` exactly and `h_t == h_{t-1}`, which is what
Keras does for masked steps; the gradient through such a step is the identity
for the same reason (`z * (1 - z) == 0`).

Only the standard cell is fused: `reset_after=True`, `tanh` and `sigmoid`.
The layer falls back to the per-step cell for anything else.
"""

from __future__ import annotations

import keras
from keras import ops

from seq2seq.layers.scan import scan

# Large enough that sigmoid(MASKED_GATE + anything finite) == 1.0 in float32.
MASKED_GATE = 1e9
# Per-gate recurrent matmuls up to this many units, one fused matmul above.
SEPARATE_GATE_MATMULS_UP_TO = 256
# A recurrence is a chain of small dependent ops, each of which leaves most of
# a CPU idle. Splitting the batch into independent lanes, each with its own
# loop, lets TensorFlow's executor run the loops side by side on different
# cores (15-20% faster with two lanes on two cores).
TENSORFLOW_LANES = 2


def gru_sequence(
    inputs,
    initial_state,
    kernel,
    recurrent_kernel,
    bias,
    mask=None,
    go_backwards: bool = False,
    with_gradient: bool = False,
    lanes: int | None = None,
):
    """Runs a `reset_after=True` GRU over a batch of sequences.

    Args:
        inputs: `[batch, time, features]`.
        initial_state: `[batch, units]`.
        kernel: `[features, 3 * units]`, gates ordered z, r, h as in Keras.
        recurrent_kernel: `[units, 3 * units]`.
        bias: `[2, 3 * units]` (input bias, recurrent bias) or `None`.
        mask: optional boolean `[batch, time]`; masked steps keep the state.
        go_backwards: process the sequence from its end; outputs are then in
            processing order (reversed), as Keras returns them.
        with_gradient: use the hand-written backward pass (training). Without
            it the forward pass saves nothing and autodiff still works.
        lanes: how many parts to split the batch into, each run by its own
            loop; by default `TENSORFLOW_LANES` under TensorFlow, else 1.

    Returns:
        `(outputs, final_state)`: `[batch, time, units]` and `[batch, units]`.
    """
    if lanes is None:
        lanes = TENSORFLOW_LANES if keras.backend.backend() == "tensorflow" else 1
    if lanes > 1:
        batch = ops.shape(inputs)[0]
        bounds = [batch * lane // lanes for lane in range(lanes + 1)]
        parts = [
            gru_sequence(
                inputs[start:stop],
                initial_state[start:stop],
                kernel,
                recurrent_kernel,
                bias,
                mask=None if mask is None else mask[start:stop],
                go_backwards=go_backwards,
                with_gradient=with_gradient,
                lanes=1,
            )
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return tuple(ops.concatenate(part, axis=0) for part in zip(*parts, strict=True))
    units = recurrent_kernel.shape[0]
    kernel, recurrent_kernel = (ops.cast(w, inputs.dtype) for w in (kernel, recurrent_kernel))
    if bias is None:
        bias = ops.zeros((2, 3 * units), dtype=inputs.dtype)
    bias = ops.cast(bias, inputs.dtype)
    time_major = ops.transpose(inputs, (1, 0, 2))
    if go_backwards:
        time_major = ops.flip(time_major, axis=0)
    x_z, x_r, x_h = _input_gates(time_major, kernel, bias)
    if mask is not None:
        keep = ops.transpose(ops.cast(mask, "bool"), (1, 0))
        if go_backwards:
            keep = ops.flip(keep, axis=0)
        x_z = ops.where(ops.expand_dims(keep, -1), x_z, MASKED_GATE)
    recurrence = _recurrence_with_bptt if with_gradient else _recurrence
    outputs, final_state = recurrence(
        x_z, x_r, x_h, initial_state, recurrent_kernel, bias[1, 2 * units :]
    )
    return ops.transpose(outputs, (1, 0, 2)), final_state


def _input_gates(x, kernel, bias):
    """Pre-activations of z, r and h from the inputs, for all steps at once.

    One matmul per gate rather than one split afterwards: a split copies the
    whole `[time, batch, 3 * units]` tensor. The recurrent biases of z and r
    are added here once instead of at every step; the one of h cannot be,
    since the reset gate multiplies it.
    """
    steps, batch = ops.shape(x)[0], ops.shape(x)[1]
    flat = ops.reshape(x, (-1, x.shape[-1]))
    kernels = ops.split(kernel, 3, axis=-1)
    input_biases = ops.split(bias[0], 3)
    recurrent_biases = ops.split(bias[1], 3)[:2] + [0.0]
    return [
        ops.reshape(ops.matmul(flat, k) + b_in + b_rec, (steps, batch, k.shape[-1]))
        for k, b_in, b_rec in zip(kernels, input_biases, recurrent_biases, strict=True)
    ]


def _forward_loop(x_z, x_r, x_h, h0, recurrent_kernel, bias_h, save: bool):
    units = recurrent_kernel.shape[0]
    # Three [units, units] matmuls run side by side on two cores and beat one
    # [units, 3 * units] matmul and a split while units are few; with more
    # units the single larger matmul wins (bench/gru.py, both shapes).
    per_gate = units <= SEPARATE_GATE_MATMULS_UP_TO
    u_z, u_r, u_h = ops.split(recurrent_kernel, 3, axis=1)
    recurrent_bias = ops.concatenate([ops.zeros((2 * units,), dtype=bias_h.dtype), bias_h])

    def step(h, gates):
        gate_z, gate_r, gate_h = gates
        if per_gate:
            m_z, m_r = ops.matmul(h, u_z), ops.matmul(h, u_r)
            recurrent_h = ops.matmul(h, u_h) + bias_h
        else:
            m_z, m_r, recurrent_h = ops.split(
                ops.matmul(h, recurrent_kernel) + recurrent_bias, 3, axis=1
            )
        z = ops.sigmoid(gate_z + m_z)
        r = ops.sigmoid(gate_r + m_r)
        candidate = ops.tanh(gate_h + r * recurrent_h)
        h = candidate + z * (h - candidate)
        return h, ([h, z, r, candidate, recurrent_h] if save else [h])

    final_state, saved = scan(step, h0, [x_z, x_r, x_h], num_outputs=5 if save else 1)
    return final_state, saved


def _recurrence(x_z, x_r, x_h, h0, recurrent_kernel, bias_h):
    """`(outputs [time, batch, units], final_state [batch, units])`."""
    final_state, (outputs,) = _forward_loop(x_z, x_r, x_h, h0, recurrent_kernel, bias_h, save=False)
    return outputs, final_state


@ops.custom_gradient
def _recurrence_with_bptt(x_z, x_r, x_h, h0, recurrent_kernel, bias_h):
    final_state, (outputs, z, r, candidate, recurrent_h) = _forward_loop(
        x_z, x_r, x_h, h0, recurrent_kernel, bias_h, save=True
    )

    def grad(*args, upstream=None):
        # TensorFlow passes one cotangent per output, JAX one tuple of them;
        # an output nothing depends on may come as None.
        if upstream is None:
            upstream = args[0] if len(args) == 1 else args
        upstream, d_final_state = (
            ops.zeros_like(value) if cotangent is None else cotangent
            for cotangent, value in zip(upstream, (outputs, final_state), strict=True)
        )
        previous = ops.concatenate([ops.expand_dims(h0, 0), outputs[:-1]], axis=0)
        # d h_t / d pre-activations, per unit, for every step at once.
        per_h = _tanh_grad(candidate, 1.0 - z)
        per_z = _sigmoid_grad(z, previous - candidate)
        per_r = _sigmoid_grad(r, per_h * recurrent_h)
        per_recurrent_h = per_h * r
        # One matmul per gate rather than one over the three gates: that one needs
        # the factors concatenated before the loop (a copy of three [time, batch,
        # units] tensors) and the gradient tiled at every step; per gate, the
        # training step of bench/gru.py is 0-4% faster at both of its shapes.
        transposed = [ops.transpose(u) for u in ops.split(recurrent_kernel, 3, axis=1)]

        def step(carry, slices):
            d_output, z_t, *per_gate = slices
            d = carry + d_output
            d_previous = d * z_t
            for factor, kernel_t in zip(per_gate, transposed, strict=True):
                d_previous += ops.matmul(d * factor, kernel_t)
            return d_previous, [d]

        # The final state's gradient enters where the backward pass starts.
        d_h0, (d_h,) = scan(
            step,
            d_final_state,
            [upstream, z, per_z, per_r, per_recurrent_h],
            num_outputs=1,
            reverse=True,
        )
        d_z, d_r, d_h_gate = d_h * per_z, d_h * per_r, d_h * per_h
        d_recurrent_h = d_h * per_recurrent_h
        flat_previous = ops.reshape(previous, (-1, previous.shape[-1]))
        d_recurrent_kernel = ops.concatenate(
            [
                ops.matmul(ops.transpose(flat_previous), ops.reshape(d, (-1, d.shape[-1])))
                for d in (d_z, d_r, d_recurrent_h)
            ],
            axis=-1,
        )
        d_bias_h = ops.sum(ops.reshape(d_recurrent_h, (-1, d_recurrent_h.shape[-1])), axis=0)
        return d_z, d_r, d_h_gate, d_h0, d_recurrent_kernel, d_bias_h

    return (outputs, final_state), grad


# Each element-wise op is a pass over `[time, batch, units]`, and these passes are much
# of what a training step's backward pass costs outside its loop: TensorFlow's fused
# kernels do in one pass what takes three ops here (2-4% of bench/gru.py's training
# step). Under JAX, XLA fuses the plain expressions itself.


def _sigmoid_grad(y, dy):
    """`dy * y * (1 - y)`: the sigmoid's derivative, from its output `y`."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.raw_ops.SigmoidGrad(y=y, dy=dy)
    return dy * y * (1.0 - y)


def _tanh_grad(y, dy):
    """`dy * (1 - y * y)`: the tanh's derivative, from its output `y`."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.raw_ops.TanhGrad(y=y, dy=dy)
    return dy * (1.0 - y * y)
