"""TensorFlow runner: a ``.keras`` model under :func:`tf.function`, pinned to one device.

The model is loaded with ``keras.models.load_model(compile=False)`` and called in
inference mode inside a traced :func:`tf.function` placed on ``/CPU:0`` or ``/GPU:0``.
Every run converts all outputs with ``.numpy()``, which waits for (and on a GPU
copies back) the result, so asynchronous GPU work is inside the timed span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.profiles import Profile
from latbench.harness.runners.base import INSTALL_HINT, Runner, RunnerUnavailable, random_input

__all__ = ["TFRunner"]

_NO_GPU = (
    "no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty): "
    "install tensorflow[and-cuda] on a machine with an NVIDIA GPU and its driver"
)


def _import_tf() -> Any:
    import tensorflow as tf

    return tf


class TFRunner(Runner):
    """Times Keras models with TensorFlow on the CPU or the first GPU."""

    name = "tensorflow"
    formats = ("keras",)

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._fn: Any = None
        self._inputs: list[Any] = []
        self._model: Any = None

    @property
    def device(self) -> str:
        """The TensorFlow device string the model is pinned to."""
        return "/GPU:0" if self.profile.target == "gpu" else "/CPU:0"

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: TensorFlow missing, an unsupported target, or no GPU for a GPU profile."""
        try:
            tf = _import_tf()
        except ImportError:
            return [f"tensorflow is not installed: {INSTALL_HINT}"]
        if profile.target not in ("cpu", "gpu"):
            return [f"the tensorflow runner targets 'cpu' or 'gpu', not {profile.target!r}"]
        if profile.target == "gpu" and not tf.config.list_physical_devices("GPU"):
            return [_NO_GPU]
        return []

    @property
    def version(self) -> str:
        """``tf.__version__``."""
        return _import_tf().__version__

    def _set_threads(self, tf: Any) -> None:
        n = self.profile.threads
        if n <= 0 or tf.config.threading.get_intra_op_parallelism_threads() == n:
            return
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
        except RuntimeError as exc:
            raise RunnerUnavailable(
                f"TensorFlow is already initialized in this process, so its thread count "
                f"cannot be set to {n}: run profile {self.profile.name!r} in a fresh process"
            ) from exc

    def prepare(self, artifact: Path, seed: int) -> None:
        """Load the model, trace the forward pass on the pinned device, make seeded inputs."""
        self._ensure_available()
        self.close()
        tf = _import_tf()
        import keras

        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"Keras model not found: {artifact}")
        self._set_threads(tf)
        rng = np.random.default_rng(seed)
        with tf.device(self.device):
            model = keras.models.load_model(artifact, compile=False)
            arrays = {
                t.name: random_input(t.shape, keras.backend.standardize_dtype(t.dtype), rng)
                for t in model.inputs
            }
            inputs = [tf.constant(a) for a in arrays.values()]

        @tf.function(jit_compile=False, reduce_retracing=False)
        def forward(*xs: Any) -> Any:
            with tf.device(self.device):
                out = model(list(xs) if len(xs) > 1 else xs[0], training=False)
            return tuple(tf.nest.flatten(out))

        self._model, self._fn, self._inputs, self.inputs = model, forward, inputs, arrays
        self.artifact = artifact
        self.run_once()

    def run_once(self) -> None:
        """Call the traced forward pass and fetch every output with ``.numpy()``."""
        for out in self._fn(*self._inputs):
            out.numpy()

    def close(self) -> None:
        """Drop the model and its traced function."""
        self._model, self._fn, self._inputs, self.artifact = None, None, [], None
        self.inputs = {}

    def info(self) -> dict[str, Any]:
        """Runtime name, TF and Keras versions, device, threads, settings."""
        tf = _import_tf()
        import keras

        return {
            "name": self.name,
            "version": self.version,
            "keras_version": keras.__version__,
            "accelerator": self.device,
            "threads": self.profile.threads,
            "settings": {
                "intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "tf_function": True,
                "jit_compile": False,
            },
        }
