"""Our GRU: the same function and weights as `keras.layers.GRU`, faster on CPU.

`GRUCell` is one step, written with `keras.ops` only. `GRU` runs it over a
sequence; for the standard configuration it runs the fused sequence kernel of
`seq2seq.layers.fused_gru` instead (hoisted input projection and hand-written
backward pass), and never a cuDNN op, so an exported model runs on any CPU.
"""

from __future__ import annotations

import keras
from keras import activations, constraints, initializers, ops, regularizers
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from seq2seq.layers.fused_gru import gru_sequence


@keras.saving.register_keras_serializable(package="seq2seq")
class GRUCell(keras.layers.Layer, DropoutRNNCell):
    """One step of a gated recurrent unit (Cho et al., 2014).

    Weights and gate order (z, r, h) are those of `keras.layers.GRUCell`, so
    weights move between the two with `set_weights`.

    Args:
        units: Positive integer, dimensionality of the state.
        activation: Activation of the candidate state. Default: `"tanh"`.
        recurrent_activation: Activation of the update and reset gates.
            Default: `"sigmoid"`.
        use_bias: Whether the layer has biases. Default: `True`.
        kernel_initializer: Initializer of `kernel`. Default: `"glorot_uniform"`.
        recurrent_initializer: Initializer of `recurrent_kernel`.
            Default: `"orthogonal"`.
        bias_initializer: Initializer of `bias`. Default: `"zeros"`.
        kernel_regularizer: Regularizer of `kernel`. Default: `None`.
        recurrent_regularizer: Regularizer of `recurrent_kernel`. Default: `None`.
        bias_regularizer: Regularizer of `bias`. Default: `None`.
        kernel_constraint: Constraint of `kernel`. Default: `None`.
        recurrent_constraint: Constraint of `recurrent_kernel`. Default: `None`.
        bias_constraint: Constraint of `bias`. Default: `None`.
        dropout: Fraction in [0, 1) of the inputs dropped in training.
            Default: `0.0`.
        recurrent_dropout: Fraction in [0, 1) of the state dropped in training.
            Default: `0.0`.
        reset_after: Apply the reset gate after the recurrent matmul (`True`,
            cuDNN convention, separate input and recurrent biases) or before
            it (`False`). Default: `True`.
        seed: Seed of the dropout masks. Default: `None`.

    Call arguments:
        inputs: `[batch, features]`.
        states: `[batch, units]` or a list holding it.
        training: Whether dropout is active. Default: `False`.

    Example:

    >>> cell = GRUCell(4)
    >>> h, [state] = cell(np.ones((2, 3), "float32"), [np.zeros((2, 4), "float32")])
    >>> tuple(h.shape)
    (2, 4)
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer, got {units!r}.")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {rate!r}.")
        kwargs.pop("implementation", None)  # stock configs carry it; one implementation here
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.reset_after = reset_after
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 3 * self.units),
            name="kernel",
            initializer=_in_float32(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 3 * self.units),
            name="recurrent_kernel",
            initializer=_in_float32(self.recurrent_initializer),
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            # reset_after keeps separate input and recurrent biases.
            shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
            self.bias = self.add_weight(
                shape=shape,
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def call(self, inputs, states, training: bool = False):
        h_previous = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            h_recurrent = h_previous * self.get_recurrent_dropout_mask(h_previous)
        else:
            h_recurrent = h_previous

        input_bias, recurrent_bias = 0.0, 0.0
        if self.use_bias:
            if self.reset_after:
                input_bias, recurrent_bias = self.bias[0], self.bias[1]
            else:
                input_bias = self.bias
        x_z, x_r, x_h = ops.split(ops.matmul(inputs, self.kernel) + input_bias, 3, axis=-1)
        if self.reset_after:
            # One matmul for the three gates: splitting the kernel instead would copy it
            # at every step (a third of a search step's GRU time at 512 units).
            h_z, h_r, h_h = ops.split(
                ops.matmul(h_recurrent, self.recurrent_kernel) + recurrent_bias, 3, axis=-1
            )
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + r * h_h)
        else:
            u_z, u_r, u_h = ops.split(self.recurrent_kernel, 3, axis=-1)
            z = self.recurrent_activation(x_z + ops.matmul(h_recurrent, u_z))
            r = self.recurrent_activation(x_r + ops.matmul(h_recurrent, u_r))
            candidate = self.activation(x_h + ops.matmul(r * h_recurrent, u_h))
        h = z * h_previous + (1.0 - z) * candidate
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "reset_after": self.reset_after,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def _in_float32(initializer):
    """`initializer`, drawing its values in float32 and rounding them to the variable's
    dtype: Keras's default `orthogonal` takes a QR decomposition, which TensorFlow has no
    bfloat16 kernel for (the stock GRU cannot be built under the `bfloat16` policy, an
    export's `decoding.dtype_policy`)."""

    def initialize(shape, dtype=None):
        return ops.cast(initializer(shape, dtype="float32"), dtype or "float32")

    return initialize


_CELL_ARGUMENTS = (
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "reset_after",
    "seed",
)


@keras.saving.register_keras_serializable(package="seq2seq")
class GRU(keras.layers.RNN):
    """Gated recurrent unit layer, a drop-in for `keras.layers.GRU`.

    Same arguments, weights and results as `keras.layers.GRU` (masks,
    `initial_state`, `go_backwards`, `stateful`, `Bidirectional`, both
    `reset_after` conventions). With `tanh`, `sigmoid`, `reset_after=True`,
    no `unroll` and no recurrent dropout in training, the whole sequence runs
    in the fused kernel of `seq2seq.layers.fused_gru`; otherwise `GRUCell`
    runs step by step. It never uses cuDNN.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Default: `"tanh"`.
        recurrent_activation: Default: `"sigmoid"`.
        use_bias: Default: `True`.
        kernel_initializer: Default: `"glorot_uniform"`.
        recurrent_initializer: Default: `"orthogonal"`.
        bias_initializer: Default: `"zeros"`.
        kernel_regularizer: Default: `None`.
        recurrent_regularizer: Default: `None`.
        bias_regularizer: Default: `None`.
        activity_regularizer: Default: `None`.
        kernel_constraint: Default: `None`.
        recurrent_constraint: Default: `None`.
        bias_constraint: Default: `None`.
        dropout: Fraction of the inputs dropped in training. Default: `0.0`.
        recurrent_dropout: Fraction of the state dropped in training.
            Default: `0.0`.
        seed: Seed of the dropout masks. Default: `None`.
        return_sequences: Return every output, not only the last.
            Default: `False`.
        return_state: Also return the final state. Default: `False`.
        go_backwards: Process the sequence from its end and return the
            reversed sequence. Default: `False`.
        stateful: Carry the final state of batch `i` into batch `i + 1`, so a
            sequence fed in chunks gives what it gives fed whole.
            Default: `False`.
        unroll: Unroll the step loop (step-by-step path). Default: `False`.
        reset_after: Reset gate after the recurrent matmul. Default: `True`.
        zero_output_for_mask: Output zeros at masked steps instead of the
            previous output. Default: `False`.

    Call arguments:
        inputs: `[batch, time, features]`.
        mask: optional boolean `[batch, time]`, `False` at padding.
        training: whether dropout is active.
        initial_state: optional `[batch, units]` (or a list holding it).

    Example:

    >>> layer = GRU(4, return_sequences=True, return_state=True)
    >>> outputs, state = layer(np.ones((2, 5, 3), "float32"))
    >>> tuple(outputs.shape), tuple(state.shape)
    ((2, 5, 4), (2, 4))
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        reset_after: bool = True,
        **kwargs,
    ):
        kwargs.pop("use_cudnn", None)  # accepted for stock configs; never used
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def _fused(self, training: bool) -> bool:
        cell = self.cell
        return (
            cell.reset_after
            and not self.unroll
            and cell.activation is activations.tanh
            and cell.recurrent_activation is activations.sigmoid
            and not (training and cell.recurrent_dropout > 0)
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self._fused(training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        if training and self.cell.dropout > 0:
            # One mask for every step, as the cell applies it.
            dropout_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dropout_mask, 1)
        outputs, state = gru_sequence(
            sequences,
            initial_state,
            self.cell.kernel,
            self.cell.recurrent_kernel,
            self.cell.bias,
            mask=mask,
            go_backwards=self.go_backwards,
            with_gradient=bool(training),
        )
        if mask is None:
            return state, outputs, [state]
        outputs = self._masked_outputs(outputs, mask)
        return outputs[:, -1], outputs, [state]

    def _masked_outputs(self, outputs, mask):
        """What Keras outputs at masked steps, given that ours hold the state.

        Keras repeats the previous output there, or outputs zeros with
        `zero_output_for_mask`. Before the first unmasked step, "previous"
        is the initial state under JAX (as ours) but zeros under TensorFlow.
        """
        if not self.zero_output_for_mask and keras.backend.backend() != "tensorflow":
            return outputs
        mask = ops.cast(mask, "bool")
        if self.go_backwards:
            mask = ops.flip(mask, axis=1)
        if not self.zero_output_for_mask:
            mask = ops.cumsum(ops.cast(mask, "int32"), axis=1) > 0
        return ops.where(ops.expand_dims(mask, -1), outputs, ops.zeros_like(outputs))

    def get_config(self):
        config = {"units": self.cell.units}
        cell_config = self.cell.get_config()
        config.update({name: cell_config[name] for name in _CELL_ARGUMENTS})
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        base_config = super().get_config()
        base_config.pop("cell", None)
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# The cell's arguments read as the layer's (`layer.units`, `layer.dropout`, ...),
# as on keras.layers.GRU.
for _name in ("units",) + _CELL_ARGUMENTS:
    setattr(GRU, _name, property(lambda self, name=_name: getattr(self.cell, name)))
