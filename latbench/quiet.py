"""Silence TensorFlow's C++ and Python logging in the command-line tools and the API.

TensorFlow prints start-up banners, XLA and converter notes and ``tf.function``
warnings on stderr; in a CLI they bury the output that matters. :func:`quiet_tensorflow`
runs before TensorFlow is imported (the C++ level is read once, at import) and again
after it (absl's handler exists only then). ``--verbose`` skips it. A level the user
set in ``TF_CPP_MIN_LOG_LEVEL`` is kept. Library code that imports TensorFlow for a
Python API user (the GCN predictor) does so inside :func:`native_stderr_filtered`,
which drops the absl and oneDNN banners of the import and nothing else.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

__all__ = ["filter_native_stderr", "native_stderr_filtered", "quiet_tensorflow"]

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


# --- native stderr ------------------------------------------------------------------------
# TensorFlow >= 2.20 logs through absl before absl::InitializeLog(), which ignores
# TF_CPP_MIN_LOG_LEVEL (abseil-cpp#1718), and LiteRT's C++ logger prints its delegate
# banner unconditionally. Neither can be configured from Python, so the CLIs filter
# file descriptor 2 itself: every byte passes except whole lines of those two loggers.
_NATIVE_LINE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+:\d+\] .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)$"
)
# A partial line that may still become one of those: held until it ends, all else flows.
_NATIVE_PREFIX = re.compile(
    rb"^(?:[IW][\d :.]*(?:\s+\d+ [^\]\s]*(?::\d*\]?)?.*)?|WARNING: All[^\n]*|INFO: Created[^\n]*|)$"
)
_filter: _StderrFilter | None = None


class _TtyAware(io.TextIOWrapper):
    """``sys.stderr`` over the filtered descriptor that still answers ``isatty`` as before."""

    _tty = False

    def isatty(self) -> bool:
        return self._tty


class _StderrFilter:
    """Route fd 2 through a pipe and drop native log lines on the way to the real stderr."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        self.read_end = read_end
        sys.stderr.flush()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, name="latbench-stderr", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending = self._forward(pending + chunk, final=False)
        self._forward(pending, final=True)
        os.close(self.read_end)

    def _forward(self, data: bytes, *, final: bool) -> bytes:
        out, start = [], 0
        for m in re.finditer(rb"[\r\n]", data):
            segment = data[start : m.end()]
            if not _NATIVE_LINE.match(segment[:-1]):
                out.append(segment)
            start = m.end()
        tail = data[start:]
        if tail and (final or not _NATIVE_PREFIX.match(tail)):
            if not (final and _NATIVE_LINE.match(tail)):
                out.append(tail)
            tail = b""
        if out:
            with contextlib.suppress(OSError):
                os.write(self.real, b"".join(out))
        return tail

    def close(self, release: bool = False) -> None:
        if os.getpid() != self.pid:  # a forked child exiting: the parent owns the pump
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self.real, 2)  # closes our write end: the pump sees EOF unless a child holds it
        self.thread.join(timeout=2.0)
        if release:  # fd 2 is the real stderr again; our saved copy is no longer needed
            os.close(self.real)


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Drop TensorFlow/absl and LiteRT native log lines written to stderr inside the block.

    For library code that imports TensorFlow on a Python API user's behalf: absl prints
    its "All log messages before absl::InitializeLog()" line and the oneDNN banner at
    import whatever ``TF_CPP_MIN_LOG_LEVEL`` says. Everything else passes, and stderr
    is the process's own again when the block ends. Does nothing under a CLI's filter,
    with ``LATBENCH_NATIVE_STDERR=1`` or ``TF_CPP_MIN_LOG_LEVEL=0`` (the user asked for
    the logs), or where file descriptor 2 cannot be redirected.
    """
    wanted = os.environ.get("LATBENCH_NATIVE_STDERR") == "1"
    if _filter is not None or wanted or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        block = _StderrFilter()
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        block.close(release=True)


def filter_native_stderr(verbose: bool = False) -> None:
    """Drop TensorFlow/absl and LiteRT native log lines from this process's stderr.

    For command-line entry points only (it replaces file descriptor 2 for the life of
    the process, children included); idempotent; does nothing when ``verbose`` or
    ``LATBENCH_NATIVE_STDERR=1`` is set, or on platforms without ``os.pipe``/``dup2``.
    """
    global _filter
    if verbose or _filter is not None or os.environ.get("LATBENCH_NATIVE_STDERR") == "1":
        return
    try:
        tty = sys.stderr.isatty()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by something fd-less
        return
    try:
        _filter = _StderrFilter()
    except OSError:
        return
    old = sys.stderr
    stream = _TtyAware(
        io.FileIO(2, "w", closefd=False),
        encoding=old.encoding, errors=old.errors, line_buffering=True, write_through=True,
    )  # fmt: skip
    stream._tty = tty
    sys.stderr = stream
    atexit.register(_filter.close)
