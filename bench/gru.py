"""Benchmark: our GRU against keras.layers.GRU in one process.

Both layers get the same weights, run interleaved (ours, stock, ours, ...),
and each timing is the median of `--repeats` runs after warm-up. Prints one
JSON object: per shape, forward (inference, `predict_on_batch`) and training
step (`train_on_batch`) times, the speed-up of ours over stock, and the
achieved GFLOP/s.

    .venv/bin/python bench/gru.py [--repeats 20] [--dtype-policy mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seq2seq.config import DTYPE_POLICIES  # noqa: E402
from seq2seq.layers import GRU  # noqa: E402

SHAPES = (
    {"batch": 64, "time": 50, "input": 80, "units": 256},
    {"batch": 32, "time": 200, "input": 80, "units": 512},
)


def build(layer_cls, shape: dict, dtype_policy: str, weights=None) -> keras.Model:
    inputs = keras.Input((shape["time"], shape["input"]), batch_size=shape["batch"])
    kwargs = {"use_cudnn": False} if layer_cls is keras.layers.GRU else {}
    layer = layer_cls(shape["units"], return_sequences=True, dtype=dtype_policy, **kwargs)
    outputs = keras.layers.Activation("linear", dtype="float32")(layer(inputs))
    model = keras.Model(inputs, outputs)
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def forward_flops(shape: dict) -> float:
    """Multiply-adds of the input and recurrent projections, times two."""
    b, t, i, u = shape["batch"], shape["time"], shape["input"], shape["units"]
    return 2.0 * b * t * (i * 3 * u + u * 3 * u)


def time_interleaved(calls: dict, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in samples.items()}


def bench_shape(shape: dict, repeats: int, dtype_policy: str) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(shape["batch"], shape["time"], shape["input"])).astype("float32")
    y = rng.normal(size=(shape["batch"], shape["time"], shape["units"])).astype("float32")
    stock = build(keras.layers.GRU, shape, dtype_policy)
    ours = build(GRU, shape, dtype_policy, stock.get_weights())
    difference = float(np.abs(stock.predict_on_batch(x) - ours.predict_on_batch(x)).max())
    seconds = time_interleaved(
        {
            "ours_forward": lambda: ours.predict_on_batch(x),
            "stock_forward": lambda: stock.predict_on_batch(x),
            "ours_train": lambda: ours.train_on_batch(x, y),
            "stock_train": lambda: stock.train_on_batch(x, y),
        },
        repeats,
    )
    flops = forward_flops(shape)
    result = {"shape": shape, "max_abs_output_difference": difference}
    for kind, kind_flops in (("forward", flops), ("train", 3 * flops)):
        ours_s, stock_s = seconds[f"ours_{kind}"], seconds[f"stock_{kind}"]
        result[kind] = {
            "ours_ms": round(1e3 * ours_s, 2),
            "stock_ms": round(1e3 * stock_s, 2),
            "speedup": round(stock_s / ours_s, 3),
            "ours_gflops": round(kind_flops / ours_s / 1e9, 1),
            "stock_gflops": round(kind_flops / stock_s / 1e9, 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (default 20)")
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        choices=DTYPE_POLICIES,
        help="Keras dtype policy of both layers (default float32)",
    )
    args = parser.parse_args()
    report = {
        "benchmark": "gru",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "dtype_policy": args.dtype_policy,
        "results": [bench_shape(shape, args.repeats, args.dtype_policy) for shape in SHAPES],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
