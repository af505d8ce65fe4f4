"""Keras model -> ``.tflite`` bytes with the TensorFlow Lite converter (docs/design.md §8).

fp32 converts as is. int8 is full-integer quantization (int8 kernels, int8 input and
output tensors) calibrated on seeded standard-normal inputs, the distribution the
harness feeds at timing time.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator

# Must precede TensorFlow's first import to hide its C++ INFO/WARNING logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

__all__ = ["CALIBRATION_SAMPLES", "convert_tflite", "representative_inputs"]

CALIBRATION_SAMPLES = 24
"""Number of random inputs used to calibrate int8 quantization."""


def representative_inputs(
    model: keras.Model, seed: int, n: int = CALIBRATION_SAMPLES
) -> list[list[np.ndarray]]:
    """``n`` seeded standard-normal samples, one array per model input."""
    rng = np.random.default_rng([int(seed), 0x1A7B])
    shapes = [tuple(t.shape) for t in model.inputs]
    return [[rng.standard_normal(s, dtype=np.float32) for s in shapes] for _ in range(n)]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # Keras export prints "Saved artifact at ..." and the converter warns about input
    # statistics it never needs here. Python-level only: redirecting fd 2 would also
    # swallow other threads' output. C++ logs obey TF_CPP_MIN_LOG_LEVEL.
    import absl.logging

    old_level = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        absl.logging.set_verbosity(old_level)


def convert_tflite(
    model: keras.Model, quantize: bool = False, seed: int = 0, io_dtype: str = "int8"
) -> bytes:
    """Convert ``model`` to a ``.tflite`` flatbuffer; full int8 when ``quantize``.

    A quantized model's input and output tensors are ``io_dtype`` (``"int8"``, or
    ``"uint8"`` as older Edge TPU tooling expects); its kernels are int8 either way.

    Raises ``RuntimeError`` with the converter's message when conversion fails.
    """
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        samples = representative_inputs(model, seed)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: iter(samples)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.as_dtype(io_dtype)
        conv.inference_output_type = tf.as_dtype(io_dtype)
    try:
        with _quiet():
            return bytes(conv.convert())
    except Exception as exc:  # the converter raises several unrelated types
        kind = "int8" if quantize else "fp32"
        raise RuntimeError(f"TFLite {kind} conversion of {model.name!r} failed: {exc}") from exc
