"""The tutorial's worked example: one GRU training step, printed number by number.

A sequence of one-hot tokens (vocabulary of 5) goes through a GRU with 3
hidden units; one sigmoid unit on the last hidden state predicts a binary
target, scored by binary cross-entropy. The script prints the weights, every
gate of every step, the loss, the gradients from the hand-written
backpropagation through time of `seq2seq.reference.numpy_gru`, the weights
after one SGD step, and the (lower) loss after it.

Run it with::

    python -m seq2seq.reference.walkthrough            # one step, in detail
    python -m seq2seq.reference.walkthrough --steps 20  # then the loss falling
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from seq2seq.reference.numpy_gru import GRUCache, gru_backward, gru_forward, sigmoid

VOCABULARY_SIZE = 5
UNITS = 3
TOKENS = (0, 3, 1, 4)
TARGET = 1.0
LEARNING_RATE = 0.1
SEED = 7
# Keras's default convention; see the numpy_gru docstring for the other one.
RESET_AFTER = True

Parameters = dict[str, np.ndarray]
# The GRU's own weights, printed with their z | r | h column blocks.
GRU_WEIGHTS = ("kernel", "recurrent_kernel", "bias")


@dataclass(frozen=True)
class ForwardPass:
    """Everything the forward pass computed, for printing and for backprop.

    Attributes:
        states: `[1, time, units]`, the GRU state after every step.
        cache: what `gru_backward` needs.
        probability: `[1, 1]`, the sigmoid output on the last state.
        loss: the binary cross-entropy.
    """

    states: np.ndarray
    cache: GRUCache
    probability: np.ndarray
    loss: float


def initial_parameters(seed: int = SEED) -> Parameters:
    """Small random weights, rounded to 2 decimals so a reader can redo the sums."""
    rng = np.random.default_rng(seed)

    def small(*shape: int) -> np.ndarray:
        return np.round(rng.uniform(-0.5, 0.5, size=shape), 2) + 0.0  # + 0.0: no "-0.00"

    return {
        "kernel": small(VOCABULARY_SIZE, 3 * UNITS),
        "recurrent_kernel": small(UNITS, 3 * UNITS),
        "bias": small(2, 3 * UNITS) if RESET_AFTER else small(3 * UNITS),
        "output_kernel": small(UNITS, 1),
        "output_bias": small(1),
    }


def one_hot(tokens: tuple[int, ...], size: int = VOCABULARY_SIZE) -> np.ndarray:
    """`[1, time, size]`: a batch of one sequence of one-hot vectors."""
    return np.eye(size)[list(tokens)][np.newaxis]


def forward(params: Parameters, inputs: np.ndarray, target: float) -> ForwardPass:
    """GRU over the sequence, sigmoid unit on the last state, cross-entropy loss."""
    initial_state = np.zeros((inputs.shape[0], UNITS))
    states, cache = gru_forward(
        inputs,
        initial_state,
        params["kernel"],
        params["recurrent_kernel"],
        params["bias"],
        reset_after=RESET_AFTER,
    )
    probability = sigmoid(states[:, -1] @ params["output_kernel"] + params["output_bias"])
    loss = -(target * np.log(probability) + (1.0 - target) * np.log(1.0 - probability))
    return ForwardPass(states, cache, probability, float(loss.sum()))


def backward(params: Parameters, forward_pass: ForwardPass, target: float) -> Parameters:
    """The gradient of the loss w.r.t. every parameter, named as in `params`."""
    last_state = forward_pass.states[:, -1]
    # Sigmoid followed by binary cross-entropy: dL/dlogit = p - target.
    d_logit = forward_pass.probability - target
    # Only the last state feeds the output; BPTT carries its gradient back.
    d_states = np.zeros_like(forward_pass.states)
    d_states[:, -1] = d_logit @ params["output_kernel"].T
    gru = gru_backward(d_states, forward_pass.cache)
    return {
        "kernel": gru.kernel,
        "recurrent_kernel": gru.recurrent_kernel,
        "bias": gru.bias,
        "output_kernel": last_state.T @ d_logit,
        "output_bias": d_logit.sum(axis=0),
    }


def sgd_step(params: Parameters, gradients: Parameters, learning_rate: float) -> Parameters:
    """One step of plain gradient descent: w <- w - learning_rate * dL/dw."""
    return {name: value - learning_rate * gradients[name] for name, value in params.items()}


def format_vector(vector: np.ndarray) -> str:
    """A vector on one line, 4 decimals."""
    return "[" + " ".join(f"{value:8.4f}" for value in vector) + " ]"


def format_matrix(matrix: np.ndarray, gate_blocks: bool, indent: str = "    ") -> str:
    """One row per line, 4 decimals; `gate_blocks` puts a `|` between z, r and h."""
    lines = []
    for row in np.atleast_2d(matrix):
        cells = [f"{value:8.4f}" for value in row]
        width = UNITS if gate_blocks else len(cells)
        blocks = [" ".join(cells[i : i + width]) for i in range(0, len(cells), width)]
        lines.append(indent + " |".join(blocks))
    return "\n".join(lines)


def print_parameters(params: Parameters, prefix: str = "") -> None:
    """Every parameter (or gradient, with `prefix`), with its shape."""
    for name, value in params.items():
        print(f"  {prefix}{name} {list(value.shape)}")
        print(format_matrix(value, gate_blocks=name in GRU_WEIGHTS))


def print_steps(inputs: np.ndarray, forward_pass: ForwardPass) -> None:
    """The gates, candidate and new state of every time step."""
    cache = forward_pass.cache
    for t, token in enumerate(TOKENS):
        print(f"  t={t + 1}  x = one_hot({token}) = {inputs[0, t].astype(int).tolist()}")
        print(f"    z  update gate     {format_vector(cache.update_gate[0, t])}")
        print(f"    r  reset gate      {format_vector(cache.reset_gate[0, t])}")
        print(f"    c  candidate       {format_vector(cache.candidate[0, t])}")
        print(f"    h  new state       {format_vector(forward_pass.states[0, t])}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.reference.walkthrough",
        description="One GRU training step on a tiny example, printed step by step.",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=1,
        help="number of SGD steps; after the first, print the loss of each (default: 1)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")

    params = initial_parameters()
    inputs = one_hot(TOKENS)
    print(
        f"GRU walkthrough: tokens {list(TOKENS)} (one-hot, size {VOCABULARY_SIZE}), "
        f"{UNITS} hidden units, target {TARGET:g}, learning rate {LEARNING_RATE:g}"
    )
    print("  h_t = z * h_(t-1) + (1 - z) * c,  p = sigmoid(h_T @ output_kernel + output_bias)")

    print(f"\n1. Weights (seed {SEED}, reset_after={RESET_AFTER})")
    print(f"  GRU columns: {UNITS} z | {UNITS} r | {UNITS} h;  bias rows: input, recurrent")
    print_parameters(params)

    print("\n2. Forward pass, h_0 = 0")
    forward_pass = forward(params, inputs, TARGET)
    print_steps(inputs, forward_pass)

    print("\n3. Output and loss")
    print(f"  p = {forward_pass.probability[0, 0]:.4f}")
    print(f"  loss = -(y log p + (1 - y) log(1 - p)) = {forward_pass.loss:.4f}")

    print("\n4. Gradients (backpropagation through time)")
    gradients = backward(params, forward_pass, TARGET)
    print_parameters(gradients, prefix="d loss / d ")

    print(f"\n5. Weights after one SGD step (w - {LEARNING_RATE:g} * dw)")
    params = sgd_step(params, gradients, LEARNING_RATE)
    print_parameters(params)

    print("\n6. Loss after the update")
    current = forward(params, inputs, TARGET)
    print(f"  loss before update: {forward_pass.loss:.4f}")
    print(f"  loss after update:  {current.loss:.4f}")

    if args.steps > 1:
        print(f"\n7. Training for {args.steps} steps (loss after each)")
        print(f"  step {1:4d}  loss {current.loss:.4f}")
        for step in range(2, args.steps + 1):
            params = sgd_step(params, backward(params, current, TARGET), LEARNING_RATE)
            current = forward(params, inputs, TARGET)
            print(f"  step {step:4d}  loss {current.loss:.4f}")


if __name__ == "__main__":
    main()
