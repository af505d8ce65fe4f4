"""Silence TensorFlow's C++ and Python logging in the command-line tools.

TensorFlow prints start-up banners, XLA and converter notes and ``tf.function``
warnings on stderr; in a CLI they bury the output that matters. :func:`quiet_tensorflow`
runs before TensorFlow is imported (the C++ level is read once, at import) and again
after it (absl's handler exists only then). ``--verbose`` skips it. A level the user
set in ``TF_CPP_MIN_LOG_LEVEL`` is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

__all__ = ["quiet_tensorflow"]

_PY_LOGGERS = ("tensorflow", "keras", "h5py", "jax", "tflite_runtime", "ai_edge_litert")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Keep TensorFlow (C++ and Python), absl and Keras to errors unless ``verbose``.

    Safe to call any number of times, before or after TensorFlow is imported; it
    never imports TensorFlow itself.
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    # 2: C++ errors only ("I"/"W" lines: oneDNN banner, XLA notes, converter chatter).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    for name in _PY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:
        # absl's Python logger is created on import; touching it earlier would give it
        # the wrong class, so only adjust it once it exists.
        sys.modules["absl.logging"].set_verbosity("error")
    for module in ("tensorflow", "keras", "tf_keras", "absl"):
        warnings.filterwarnings("ignore", module=module)
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        getattr(tf, "get_logger", lambda: logging.getLogger("tensorflow"))().setLevel(logging.ERROR)
        with contextlib.suppress(AttributeError):  # a partially imported module
            tf.autograph.set_verbosity(0)
