"""Checks of the reference NumPy GRU (`seq2seq.reference`).

Its hand-written BPTT against central finite differences, its forward pass and
gradients against TensorFlow's gradients through our Keras layer
`seq2seq.layers.GRU`, and the walkthrough script end to end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seq2seq.reference import walkthrough
from seq2seq.reference.numpy_gru import gru_backward, gru_forward

# Read when keras is first imported, which only the Keras tests below do.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH, TIME, FEATURES, UNITS = 2, 5, 4, 3
GRADIENT_NAMES = ("kernel", "recurrent_kernel", "bias", "inputs", "initial_state")


def random_problem(reset_after: bool, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs, a non-zero initial state, weights, and dL/dstates of L = sum(states * d_states).

    Every step's state enters the loss, so the gradient flowing back in time
    is mixed with a direct one at each step.
    """
    rng = np.random.default_rng(seed)
    bias_shape = (2, 3 * UNITS) if reset_after else (3 * UNITS,)
    arrays = {
        "inputs": rng.normal(size=(BATCH, TIME, FEATURES)),
        "initial_state": rng.uniform(-0.8, 0.8, size=(BATCH, UNITS)),
        "kernel": rng.normal(scale=0.6, size=(FEATURES, 3 * UNITS)),
        "recurrent_kernel": rng.normal(scale=0.6, size=(UNITS, 3 * UNITS)),
        "bias": rng.normal(scale=0.3, size=bias_shape),
        "d_states": rng.normal(size=(BATCH, TIME, UNITS)),
    }
    return {name: value.astype(dtype) for name, value in arrays.items()}


def run_forward(arrays: dict[str, np.ndarray], reset_after: bool):
    return gru_forward(
        arrays["inputs"],
        arrays["initial_state"],
        arrays["kernel"],
        arrays["recurrent_kernel"],
        arrays["bias"],
        reset_after=reset_after,
    )


def central_differences(loss, arrays: dict[str, np.ndarray], name: str, eps: float = 1e-6):
    """dL/d arrays[name], entry by entry, as (L(w + eps) - L(w - eps)) / (2 eps)."""
    gradient = np.zeros_like(arrays[name])
    for index in np.ndindex(gradient.shape):
        shifted = {key: value.copy() for key, value in arrays.items()}
        shifted[name][index] += eps
        loss_plus = loss(shifted)
        shifted[name][index] -= 2 * eps
        gradient[index] = (loss_plus - loss(shifted)) / (2 * eps)
    return gradient


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    """Every entry within rtol of the largest entry: entries near 0 get no free pass."""
    assert actual.shape == expected.shape, what
    tolerance = rtol * np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance, err_msg=what)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_bptt_matches_finite_differences(reset_after):
    arrays = random_problem(reset_after, "float64")

    def loss(values):
        states, _ = run_forward(values, reset_after)
        return float(np.sum(states * values["d_states"]))

    _, cache = run_forward(arrays, reset_after)
    gradients = gru_backward(arrays["d_states"], cache)
    for name in GRADIENT_NAMES:
        expected = central_differences(loss, arrays, name)
        assert_close(getattr(gradients, name), expected, rtol=1e-7, what=name)


def test_walkthrough_gradients_match_finite_differences():
    """Every gradient the walkthrough prints, output layer included."""
    params = walkthrough.initial_parameters()
    inputs = walkthrough.one_hot(walkthrough.TOKENS)

    def loss(values):
        return walkthrough.forward(values, inputs, walkthrough.TARGET).loss

    forward_pass = walkthrough.forward(params, inputs, walkthrough.TARGET)
    gradients = walkthrough.backward(params, forward_pass, walkthrough.TARGET)
    assert gradients.keys() == params.keys()
    for name in params:
        expected = central_differences(loss, params, name)
        assert_close(gradients[name], expected, rtol=1e-7, what=name)


def keras_states_and_gradients(arrays, reset_after: bool, training: bool):
    """States and gradients of L = sum(states * d_states) through `seq2seq.layers.GRU`."""
    tf = pytest.importorskip("tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("needs Keras on the TensorFlow backend")
    from seq2seq.layers import GRU

    layer = GRU(UNITS, return_sequences=True, reset_after=reset_after)
    layer.build((BATCH, TIME, FEATURES))
    for name in ("kernel", "recurrent_kernel", "bias"):
        getattr(layer.cell, name).assign(arrays[name])

    inputs = tf.constant(arrays["inputs"])
    initial_state = tf.constant(arrays["initial_state"])
    with tf.GradientTape() as tape:
        tape.watch([inputs, initial_state])
        states = layer(inputs, initial_state=initial_state, training=training)
        loss = tf.reduce_sum(states * arrays["d_states"])
    sources = {
        "kernel": layer.cell.kernel,
        "recurrent_kernel": layer.cell.recurrent_kernel,
        "bias": layer.cell.bias,
        "inputs": inputs,
        "initial_state": initial_state,
    }
    gradients = tape.gradient(loss, sources)
    return states.numpy(), {name: value.numpy() for name, value in gradients.items()}


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_matches_keras_layer(reset_after, training):
    """Same weights, same numbers: forward states and every gradient.

    `training=True` also covers the layer's own fused backward pass, which it
    uses in training for `reset_after=True`.
    """
    arrays = random_problem(reset_after, "float32", seed=1)
    keras_states, keras_gradients = keras_states_and_gradients(arrays, reset_after, training)

    # The reference runs in float64 on the very same float32 values.
    arrays64 = {name: value.astype("float64") for name, value in arrays.items()}
    states, cache = run_forward(arrays64, reset_after)
    gradients = gru_backward(arrays64["d_states"], cache)

    assert_close(keras_states, states, rtol=1e-5, what="states")
    for name in GRADIENT_NAMES:
        assert_close(keras_gradients[name], getattr(gradients, name), rtol=1e-5, what=name)


def run_walkthrough(*args: str) -> str:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.reference.walkthrough", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def printed_number(pattern: str, output: str) -> float:
    match = re.search(pattern + r"\s*(-?\d+\.\d+)", output)
    assert match, f"{pattern!r} not in the output:\n{output}"
    return float(match.group(1))


def test_walkthrough_loss_falls_after_one_step():
    output = run_walkthrough()
    before = printed_number("loss before update:", output)
    after = printed_number("loss after update:", output)
    assert after < before
    # What it printed is what the code computes.
    params = walkthrough.initial_parameters()
    inputs = walkthrough.one_hot(walkthrough.TOKENS)
    loss = walkthrough.forward(params, inputs, walkthrough.TARGET).loss
    assert before == pytest.approx(loss, abs=5e-5)
    for section in ("update gate", "reset gate", "candidate", "new state", "d loss / d"):
        assert section in output


def test_walkthrough_steps_show_the_loss_falling():
    output = run_walkthrough("--steps", "5")
    losses = [float(loss) for loss in re.findall(r"step\s+\d+\s+loss\s+(\d+\.\d+)", output)]
    assert len(losses) == 5
    assert losses[0] == printed_number("loss after update:", output)
    assert np.all(np.diff(losses) < 0), losses


def test_walkthrough_help():
    assert "--steps" in run_walkthrough("--help")
