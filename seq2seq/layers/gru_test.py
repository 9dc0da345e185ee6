"""Our GRU against keras.layers.GRU: same weights must give the same function.

Runs under whatever Keras backend is active; `test_parity_under_jax` reruns
this file under JAX in a subprocess when JAX is installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from seq2seq.layers import GRU, GRUCell

BATCH, TIME, FEATURES, UNITS = 3, 6, 4, 5
TOLERANCE = 1e-5
TENSORFLOW = keras.backend.backend() == "tensorflow"


def random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    # Non-zero biases so that every bias gradient is exercised.
    return [0.5 * rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]


def paired_layers(**kwargs):
    """A stock and an own GRU with identical random weights."""
    stock = keras.layers.GRU(UNITS, use_cudnn=False, **kwargs)
    ours = GRU(UNITS, **kwargs)
    stock.build((BATCH, TIME, FEATURES))
    ours.build((BATCH, TIME, FEATURES))
    weights = random_weights(stock)
    stock.set_weights(weights)
    ours.set_weights(weights)
    return stock, ours


def inputs_and_mask(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    mask = np.ones((BATCH, TIME), dtype=bool)
    mask[1, 4:] = False  # right padding of different lengths
    mask[2, 2:] = False
    return x, mask


def values_and_gradients(layer, x, mask, initial_state, training):
    """Outputs of `layer` and gradients of a non-linear loss of all of them
    with respect to the inputs, the initial state and every weight."""
    import tensorflow as tf  # the gradient tape; JAX runs use jax_values_and_gradients

    x = tf.constant(x)
    h0 = None if initial_state is None else tf.constant(initial_state)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if h0 is not None:
            tape.watch(h0)
        outputs = layer(x, mask=mask, initial_state=h0, training=training)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = sum(tf.reduce_sum(tf.sin(3.0 * o)) for o in outputs)
    sources = [x] + ([h0] if h0 is not None else []) + layer.trainable_weights
    return [np.asarray(o) for o in outputs], [np.asarray(g) for g in tape.gradient(loss, sources)]


def jax_values_and_gradients(layer, x, mask, initial_state, training):
    import jax
    import jax.numpy as jnp

    weights = [v.value for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]

    def loss_fn(x, h0, weights):
        outputs, _ = layer.stateless_call(
            weights, others, x, mask=mask, initial_state=h0, training=training
        )
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(jnp.sum(jnp.sin(3.0 * o)) for o in outputs), outputs

    h0 = None if initial_state is None else jnp.asarray(initial_state)
    argnums = (0, 1, 2) if h0 is not None else (0, 2)
    (_, outputs), grads = jax.value_and_grad(loss_fn, argnums=argnums, has_aux=True)(
        jnp.asarray(x), h0, weights
    )
    flat = [grads[0]] + ([grads[1]] if h0 is not None else []) + list(grads[-1])
    return [np.asarray(o) for o in outputs], [np.asarray(g) for g in flat]


compute = values_and_gradients if TENSORFLOW else jax_values_and_gradients


def assert_close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_outputs_states_and_gradients_equal_stock(
    reset_after, return_sequences, go_backwards, masked, training
):
    options = (reset_after, return_sequences, go_backwards, masked, training)
    if keras.backend.backend() == "jax" and sum(options) % 2:
        # The half of the grid with an even number of True options still pairs every
        # value of every option with every value of any two others (a 2^(5-1) design).
        pytest.skip("the JAX run checks the even half of the grid")
    stock, ours = paired_layers(
        reset_after=reset_after,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
    )
    x, mask = inputs_and_mask()
    mask = mask if masked else None
    initial_state = np.random.default_rng(2).normal(size=(BATCH, UNITS)).astype("float32")
    stock_values, stock_grads = compute(stock, x, mask, initial_state, training)
    our_values, our_grads = compute(ours, x, mask, initial_state, training)
    assert_close(our_values, stock_values)
    assert_close(our_grads, stock_grads)


@pytest.mark.parametrize("training", [False, True])
def test_bidirectional_with_mask_equals_stock(training):
    stock_layer, our_layer = paired_layers(return_sequences=True)
    stock = keras.layers.Bidirectional(stock_layer)
    ours = keras.layers.Bidirectional(our_layer)
    stock.build((BATCH, TIME, FEATURES))
    ours.build((BATCH, TIME, FEATURES))
    weights = random_weights(stock, seed=3)
    stock.set_weights(weights)
    ours.set_weights(weights)
    x, mask = inputs_and_mask()
    stock_values, stock_grads = compute(stock, x, mask, None, training)
    our_values, our_grads = compute(ours, x, mask, None, training)
    assert_close(our_values, stock_values)
    assert_close(our_grads, stock_grads)


def test_step_by_step_fallback_equals_stock():
    # A non-default activation takes the per-step cell path.
    stock, ours = paired_layers(activation="relu", return_sequences=True)
    assert not ours._fused(training=True)
    x, mask = inputs_and_mask()
    stock_values, stock_grads = compute(stock, x, mask, None, True)
    our_values, our_grads = compute(ours, x, mask, None, True)
    assert_close(our_values, stock_values)
    assert_close(our_grads, stock_grads)


@pytest.mark.parametrize("training", [False, True])
def test_mixed_bfloat16_policy_keeps_float32_weights_and_tracks_the_float32_layer(training):
    # training.dtype_policy: mixed_bfloat16 builds every layer so; in training the fused
    # path runs with its hand-written backward pass.
    reference = GRU(UNITS, return_sequences=True, return_state=True)
    mixed = GRU(UNITS, return_sequences=True, return_state=True, dtype="mixed_bfloat16")
    for layer in (reference, mixed):
        layer.build((BATCH, TIME, FEATURES))
    weights = random_weights(reference, seed=4)
    reference.set_weights(weights)
    mixed.set_weights(weights)
    assert [w.dtype for w in mixed.weights] == ["float32"] * 3
    x, mask = inputs_and_mask()
    initial_state = np.random.default_rng(2).normal(size=(BATCH, UNITS)).astype("float32")
    expected_values, expected_grads = compute(reference, x, mask, initial_state, training)
    values, grads = compute(mixed, x, mask, initial_state, training)
    assert {str(v.dtype) for v in values} == {"bfloat16"}
    for actual, expected in zip(values, expected_values, strict=True):
        # bfloat16 keeps 8 significant bits: about 0.4% of each value, over 6 steps.
        np.testing.assert_allclose(actual.astype("float32"), expected, atol=0.05)
    for actual, expected in zip(grads, expected_grads, strict=True):
        assert actual.dtype == "float32"
        # Rounding of the weights and of each step's state: 1-5% here; a wrong term of
        # the backward pass would be off by the size of the gradient itself.
        error = np.linalg.norm(actual - expected) / np.linalg.norm(expected)
        assert error < 0.1, error


def test_bfloat16_policy_builds_with_its_default_initializers_and_tracks_float32():
    # An export's decoding.dtype_policy bfloat16: weights stored and computed in bfloat16.
    # The orthogonal recurrent kernel is drawn in float32 (TensorFlow's QR has no bfloat16
    # kernel, so the stock layer cannot be built so) and rounded.
    layer = GRU(UNITS, return_sequences=True, return_state=True, dtype="bfloat16")
    layer.build((BATCH, TIME, FEATURES))
    assert [w.dtype for w in layer.weights] == ["bfloat16"] * 3
    recurrent = keras.ops.convert_to_numpy(keras.ops.cast(layer.cell.recurrent_kernel, "float32"))
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(UNITS), atol=0.02)
    reference = GRU(UNITS, return_sequences=True, return_state=True)
    reference.build((BATCH, TIME, FEATURES))
    weights = random_weights(reference, seed=5)
    reference.set_weights(weights)
    layer.set_weights(weights)
    x, mask = inputs_and_mask()
    for actual, expected in zip(layer(x, mask=mask), reference(x, mask=mask), strict=True):
        assert actual.dtype == "bfloat16"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(keras.ops.cast(actual, "float32")),
            keras.ops.convert_to_numpy(expected),
            atol=0.05,
        )


@pytest.mark.parametrize("fused_path", [True, False])
def test_dropout_inactive_at_inference_active_and_reproducible_in_training(fused_path):
    # recurrent_dropout forces the per-step path in training.
    kwargs = {"dropout": 0.4} if fused_path else {"dropout": 0.4, "recurrent_dropout": 0.3}
    x, _ = inputs_and_mask()
    plain = GRU(UNITS, return_sequences=True)
    plain.build(x.shape)
    weights = random_weights(plain)
    plain.set_weights(weights)
    runs = []
    for _ in range(2):
        layer = GRU(UNITS, return_sequences=True, seed=7, **kwargs)
        layer.build(x.shape)
        layer.set_weights(weights)
        assert layer._fused(training=True) == fused_path
        np.testing.assert_allclose(layer(x, training=False), plain(x), rtol=1e-6, atol=1e-6)
        runs.append(np.asarray(layer(x, training=True)))
    assert np.abs(runs[0] - np.asarray(plain(x))).max() > 1e-3
    np.testing.assert_array_equal(runs[0], runs[1])


def test_dropout_mask_is_the_stock_layers():
    stock, ours = paired_layers(dropout=0.4, seed=11, return_sequences=True)
    x, mask = inputs_and_mask()
    np.testing.assert_allclose(
        ours(x, mask=mask, training=True),
        stock(x, mask=mask, training=True),
        rtol=TOLERANCE,
        atol=TOLERANCE,
    )


def test_stateful_chunks_equal_whole_sequence():
    x, _ = inputs_and_mask()
    whole = GRU(UNITS, return_sequences=True)
    whole.build(x.shape)
    streaming = GRU(UNITS, return_sequences=True, stateful=True)
    streaming.build(x.shape)
    streaming.set_weights(random_weights(whole))
    whole.set_weights(streaming.get_weights())
    chunks = [streaming(x[:, :2]), streaming(x[:, 2:3]), streaming(x[:, 3:])]
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole(x), rtol=1e-6, atol=1e-6)
    streaming.reset_state()
    np.testing.assert_allclose(streaming(x[:, :2]), whole(x[:, :2]), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not TENSORFLOW, reason="dynamic shapes are a TensorFlow-graph matter")
def test_empty_batch_and_empty_sequence_under_dynamic_shapes():
    import tensorflow as tf

    layer = GRU(UNITS, return_sequences=True, return_state=True)
    run = tf.function(
        lambda x: layer(x, training=True), input_signature=[tf.TensorSpec([None, None, FEATURES])]
    )
    outputs, state = run(tf.zeros((0, TIME, FEATURES)))
    assert tuple(outputs.shape) == (0, TIME, UNITS) and tuple(state.shape) == (0, UNITS)
    outputs, state = run(tf.zeros((BATCH, 0, FEATURES)))
    assert tuple(outputs.shape) == (BATCH, 0, UNITS)
    np.testing.assert_array_equal(state, np.zeros((BATCH, UNITS)))  # the initial state


def test_weights_have_stock_shapes_names_and_order():
    for reset_after in (True, False):
        stock, ours = paired_layers(reset_after=reset_after)
        assert [w.shape for w in ours.weights] == [w.shape for w in stock.weights]
        assert [w.name for w in ours.weights] == [w.name for w in stock.weights]


def test_config_round_trip_and_stock_config_accepted():
    layer = GRU(
        7,
        dropout=0.1,
        recurrent_dropout=0.2,
        reset_after=False,
        go_backwards=True,
        return_sequences=True,
        kernel_regularizer="l2",
        seed=3,
        name="encoder",
    )
    config = layer.get_config()
    clone = GRU.from_config(config)
    assert clone.get_config() == config
    assert clone.units == 7 and clone.recurrent_dropout == 0.2 and clone.go_backwards
    stock_config = keras.layers.GRU(7, reset_after=False).get_config()
    assert GRU.from_config(stock_config).reset_after is False


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units"),
        ({"units": 4, "dropout": 1.5}, "dropout"),
        ({"units": 4, "recurrent_dropout": -0.1}, "recurrent_dropout"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRU(**kwargs)


def test_cell_is_usable_in_keras_rnn():
    x, _ = inputs_and_mask()
    stock = keras.layers.RNN(keras.layers.GRUCell(UNITS))
    ours = keras.layers.RNN(GRUCell(UNITS))
    stock.build(x.shape)
    ours.build(x.shape)
    ours.set_weights(random_weights(stock))
    stock.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), stock(x), rtol=TOLERANCE, atol=TOLERANCE)


def small_model():
    inputs = keras.Input((None, FEATURES))
    hidden = keras.layers.Masking()(inputs)
    hidden = keras.layers.Bidirectional(GRU(UNITS, return_sequences=True))(hidden)
    outputs = GRU(UNITS)(hidden)
    model = keras.Model(inputs, outputs)
    model.set_weights(random_weights(model, seed=5))
    return model


def test_keras_file_round_trip(tmp_path):
    model = small_model()
    x, _ = inputs_and_mask()
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.layers[-1], GRU)
    np.testing.assert_allclose(restored(x), model(x), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not TENSORFLOW, reason="SavedModel export needs the TensorFlow backend")
def test_export_loads_in_a_fresh_process_without_forbidden_ops(tmp_path):
    model = small_model()
    x, _ = inputs_and_mask()
    export_dir = tmp_path / "exported"
    model.export(str(export_dir), verbose=False)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", np.asarray(model(x)))
    # A process with TensorFlow only: no Keras model code, no seq2seq.
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(export_dir)!r})
        got = loaded.serve(tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        np.testing.assert_allclose(got.numpy(), np.load({str(tmp_path / "expected.npy")!r}),
                                   rtol=1e-5, atol=1e-5)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
    from seq2seq.export.saved_model import saved_model_ops

    op_types = saved_model_ops(export_dir)
    assert "While" in op_types or "StatelessWhile" in op_types  # the graph really holds the loop
    forbidden = {op for op in op_types if op.startswith("Cudnn") or op in ("PyFunc", "EagerPyFunc")}
    assert not forbidden


@pytest.mark.skipif(
    not TENSORFLOW or importlib.util.find_spec("jax") is None,
    reason="JAX is not installed (or this run is already the JAX one)",
)
def test_parity_under_jax():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            "equal_stock or fallback or reproducible or stateful",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
