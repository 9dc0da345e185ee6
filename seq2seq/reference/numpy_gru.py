"""A GRU in NumPy: forward pass and hand-written backpropagation through time.

Written to be read, not to be fast. It computes exactly what
`keras.layers.GRU` (and `seq2seq.layers.GRU`) computes, with the same weights.

From the textbook form to Keras's weights
-----------------------------------------
Tutorials usually write each gate g in (z, r, h) with one matrix acting on the
concatenation of the previous state and the input::

    z_t = sigmoid(W_z · [h_{t-1}, x_t] + b_z)            update gate
    r_t = sigmoid(W_r · [h_{t-1}, x_t] + b_r)            reset gate
    c_t = tanh(W_h · [r_t * h_{t-1}, x_t] + b_h)         candidate state
    h_t = z_t * h_{t-1} + (1 - z_t) * c_t                new state

`W_g` has shape `[units, units + features]`. Split its columns into the part
that multiplies `h_{t-1}` and the part that multiplies `x_t`,
`W_g = [U_g | X_g]`, so `W_g · [h, x] = U_g · h + X_g · x`. Keras multiplies
row vectors from the left (`x @ kernel`), so it stores the transposes, and
stacks the three gates side by side along the last axis in the order z, r, h:

* `kernel`, `[features, 3 * units]`: `[X_z^T | X_r^T | X_h^T]`, the x part;
* `recurrent_kernel`, `[units, 3 * units]`: `[U_z^T | U_r^T | U_h^T]`, the h part;
* `bias`: with `reset_after=False`, `[3 * units]` = `[b_z | b_r | b_h]`. With
  `reset_after=True`, `[2, 3 * units]`: row 0 is added to `x @ kernel` (the
  input bias), row 1 to `h @ recurrent_kernel` (the recurrent bias). For z and
  r only their sum matters; for the candidate they differ, see below.

Columns `[0, units)` of each weight belong to z, `[units, 2 * units)` to r and
`[2 * units, 3 * units)` to the candidate h.

Which way the update gate points
--------------------------------
Keras keeps the old state where z is 1: `h_t = z * h_{t-1} + (1 - z) * c_t`.
Some articles write `h_t = (1 - z) * h_{t-1} + z * c_t`; that is the same
model with z replaced by `1 - z` (negate the z weights and bias).

The two reset-gate conventions
------------------------------
* `reset_after=False` (Cho et al., 2014, the textbook form above): the reset
  gate scales the state *before* the recurrent matmul,
  `c_t = tanh(x_t @ X_h + b_h + (r_t * h_{t-1}) @ U_h)`.
* `reset_after=True` (cuDNN's form, Keras's default): the reset gate scales
  the result *after* the matmul, recurrent bias included,
  `c_t = tanh(x_t @ X_h + b_xh + r_t * (h_{t-1} @ U_h + b_hh))`.
  The matmul then no longer waits for r, so all three gates' recurrent
  matmuls are one `h_{t-1} @ recurrent_kernel`.

The two are different functions: weights trained with one do not carry over
to the other.

Shapes follow Keras: inputs `[batch, time, features]`, states
`[batch, time, units]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GRUCache:
    """What the forward pass keeps for the backward pass.

    Every per-step array is `[batch, time, units]`, indexed by the step t
    that computed it.

    Attributes:
        inputs: `[batch, time, features]`, the sequence x.
        previous_states: h_{t-1} for each step (the initial state first).
        update_gate: z_t.
        reset_gate: r_t.
        candidate: c_t, the candidate state.
        recurrent_candidate: what the reset gate multiplies:
            `h_{t-1} @ U_h + b_hh` with `reset_after=True`; with
            `reset_after=False` the product `r_t * h_{t-1}` that goes into
            the matmul.
        kernel: the `kernel` weight used.
        recurrent_kernel: the `recurrent_kernel` weight used.
        bias: the `bias` weight used.
        reset_after: the reset-gate convention used.
    """

    inputs: np.ndarray
    previous_states: np.ndarray
    update_gate: np.ndarray
    reset_gate: np.ndarray
    candidate: np.ndarray
    recurrent_candidate: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    reset_after: bool


@dataclass(frozen=True)
class GRUGradients:
    """Gradients of a scalar loss, each shaped like what it is the gradient of."""

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    inputs: np.ndarray
    initial_state: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-x))


def gate_slices(units: int) -> tuple[slice, slice, slice]:
    """The columns of the z, r and h gates in `kernel`, `recurrent_kernel` and `bias`."""
    return slice(0, units), slice(units, 2 * units), slice(2 * units, 3 * units)


def split_bias(bias: np.ndarray, reset_after: bool) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(input_bias, recurrent_bias)`, each `[3 * units]`.

    With `reset_after=False` there is one bias, added with the input; the
    recurrent bias is then zero.
    """
    if reset_after:
        return bias[0], bias[1]
    return bias, np.zeros_like(bias)


def gru_forward(
    inputs: np.ndarray,
    initial_state: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    reset_after: bool = True,
) -> tuple[np.ndarray, GRUCache]:
    """Runs the GRU over a batch of sequences.

    Args:
        inputs: `[batch, time, features]`.
        initial_state: `[batch, units]`, h_0.
        kernel: `[features, 3 * units]`, gates ordered z, r, h.
        recurrent_kernel: `[units, 3 * units]`.
        bias: `[2, 3 * units]` with `reset_after=True`, else `[3 * units]`.
        reset_after: the reset-gate convention (see the module docstring).

    Returns:
        `(states, cache)`: the new state of every step, `[batch, time, units]`
        (what Keras returns with `return_sequences=True`; the last one is the
        final state), and what `gru_backward` needs.
    """
    units = recurrent_kernel.shape[0]
    z_cols, r_cols, h_cols = gate_slices(units)
    input_bias, recurrent_bias = split_bias(bias, reset_after)
    batch, steps, _ = inputs.shape
    step_fields = (
        "previous_states",
        "update_gate",
        "reset_gate",
        "candidate",
        "recurrent_candidate",
    )
    per_step = {name: np.zeros((batch, steps, units), inputs.dtype) for name in step_fields}
    states = np.zeros((batch, steps, units), inputs.dtype)

    h = initial_state
    for t in range(steps):
        # The x part of W · [h, x] + b for all three gates in one matmul.
        x_part = inputs[:, t] @ kernel + input_bias
        z = sigmoid(x_part[:, z_cols] + h @ recurrent_kernel[:, z_cols] + recurrent_bias[z_cols])
        r = sigmoid(x_part[:, r_cols] + h @ recurrent_kernel[:, r_cols] + recurrent_bias[r_cols])
        if reset_after:
            recurrent_candidate = h @ recurrent_kernel[:, h_cols] + recurrent_bias[h_cols]
            candidate = np.tanh(x_part[:, h_cols] + r * recurrent_candidate)
        else:
            recurrent_candidate = r * h
            candidate = np.tanh(
                x_part[:, h_cols] + recurrent_candidate @ recurrent_kernel[:, h_cols]
            )

        per_step["previous_states"][:, t] = h
        per_step["update_gate"][:, t] = z
        per_step["reset_gate"][:, t] = r
        per_step["candidate"][:, t] = candidate
        per_step["recurrent_candidate"][:, t] = recurrent_candidate
        h = z * h + (1.0 - z) * candidate
        states[:, t] = h

    cache = GRUCache(
        inputs=inputs,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        bias=bias,
        reset_after=reset_after,
        **per_step,
    )
    return states, cache


def gru_backward(d_states: np.ndarray, cache: GRUCache) -> GRUGradients:
    """Backpropagation through time: the gradients of a scalar loss L.

    Args:
        d_states: `[batch, time, units]`, dL/dh_t for each step as the loss
            sees it directly (zeros where a step's state is not used). The
            gradient that flows back from later steps is added here.
        cache: from `gru_forward`.

    Returns:
        The gradients w.r.t. the weights, the inputs and the initial state.
    """
    kernel, recurrent_kernel = cache.kernel, cache.recurrent_kernel
    reset_after = cache.reset_after
    units = recurrent_kernel.shape[0]
    z_cols, r_cols, h_cols = gate_slices(units)

    d_kernel = np.zeros_like(kernel)
    d_recurrent_kernel = np.zeros_like(recurrent_kernel)
    d_input_bias = np.zeros(3 * units, dtype=kernel.dtype)
    d_recurrent_bias = np.zeros(3 * units, dtype=kernel.dtype)
    d_inputs = np.zeros_like(cache.inputs)
    d_h_next = np.zeros_like(d_states[:, 0])  # dL/dh_t through steps after t

    for t in reversed(range(d_states.shape[1])):
        x = cache.inputs[:, t]
        h_previous = cache.previous_states[:, t]
        z = cache.update_gate[:, t]
        r = cache.reset_gate[:, t]
        candidate = cache.candidate[:, t]
        recurrent_candidate = cache.recurrent_candidate[:, t]

        d_h = d_states[:, t] + d_h_next
        # h_t = z * h_{t-1} + (1 - z) * c_t
        d_z = d_h * (h_previous - candidate)
        d_candidate = d_h * (1.0 - z)
        d_h_previous = d_h * z
        # Gradients w.r.t. the pre-activations ("a"): through tanh and sigmoid.
        d_a_candidate = d_candidate * (1.0 - candidate**2)
        d_a_z = d_z * z * (1.0 - z)

        if reset_after:
            # a_h = x @ X_h + b_xh + r * (h_{t-1} @ U_h + b_hh)
            d_r = d_a_candidate * recurrent_candidate
            d_recurrent_h = d_a_candidate * r
            d_recurrent_kernel[:, h_cols] += h_previous.T @ d_recurrent_h
            d_recurrent_bias[h_cols] += d_recurrent_h.sum(axis=0)
            d_h_previous += d_recurrent_h @ recurrent_kernel[:, h_cols].T
        else:
            # a_h = x @ X_h + b_h + (r * h_{t-1}) @ U_h
            d_reset_state = d_a_candidate @ recurrent_kernel[:, h_cols].T
            d_r = d_reset_state * h_previous
            d_recurrent_kernel[:, h_cols] += recurrent_candidate.T @ d_a_candidate
            d_h_previous += d_reset_state * r
        d_a_r = d_r * r * (1.0 - r)

        # z and r see h_{t-1} through the same matmul in both conventions.
        for cols, d_a in ((z_cols, d_a_z), (r_cols, d_a_r)):
            d_recurrent_kernel[:, cols] += h_previous.T @ d_a
            d_recurrent_bias[cols] += d_a.sum(axis=0)
            d_h_previous += d_a @ recurrent_kernel[:, cols].T

        # All three gates see x_t through one matmul: x @ kernel + input_bias.
        d_a_x = np.concatenate([d_a_z, d_a_r, d_a_candidate], axis=-1)
        d_kernel += x.T @ d_a_x
        d_input_bias += d_a_x.sum(axis=0)
        d_inputs[:, t] = d_a_x @ kernel.T

        d_h_next = d_h_previous

    # Without reset_after there is no recurrent bias, so its gradient is dropped.
    d_bias = np.stack([d_input_bias, d_recurrent_bias]) if reset_after else d_input_bias
    return GRUGradients(
        kernel=d_kernel,
        recurrent_kernel=d_recurrent_kernel,
        bias=d_bias,
        inputs=d_inputs,
        initial_state=d_h_next,
    )
