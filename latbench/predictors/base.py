"""What every latency predictor shares: architecture inputs, the fit/predict/save
interface, and the portable file format (one ``.npz``, no pickle).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np

from latbench.safepickle import short_repr
from latbench.space import N_ARCHS, Arch

__all__ = [
    "ArchLike",
    "Archs",
    "Predictor",
    "PredictorError",
    "arch_ids",
    "load_predictor",
]

ArchLike: TypeAlias = "str | int | tuple[int, ...] | Arch"
"""One architecture: NAS-Bench-201 string, ``arch_id``, 6-op vector (a tuple) or
:class:`Arch`."""
Archs: TypeAlias = "ArchLike | Iterable[ArchLike] | np.ndarray | None"
"""One architecture, many, or ``None`` for all 15,625 in ``arch_id`` order."""

_FORMAT = "latbench-predictor"
_FORMAT_VERSION = 1


class PredictorError(ValueError):
    """Bad input to a predictor or the protocol (data, split sizes, files)."""


def arch_ids(archs: Archs) -> np.ndarray:
    """``arch_id`` array (int64) for ``archs``; ``None`` gives all 15,625 in order.

    A single string, id, vector or :class:`Arch` gives a length-1 array. A 6-op vector
    is a *tuple* of six ints; a list (or array) of ints is that many ``arch_id`` values,
    six included.
    """
    if archs is None:
        return np.arange(N_ARCHS, dtype=np.int64)
    if isinstance(archs, np.ndarray) and np.issubdtype(archs.dtype, np.integer):
        ids = archs.astype(np.int64).ravel()
        bad = ids[(ids < 0) | (ids >= N_ARCHS)]
        if bad.size:
            raise PredictorError(f"arch_id {int(bad[0])} is outside 0..{N_ARCHS - 1}")
        return ids
    if isinstance(archs, str | int | np.integer | Arch) or _is_vector(archs):
        return np.array([Arch.parse(archs).id], dtype=np.int64)
    # len first: lists of thousands of ids pass here, and must not be copied to be checked
    if (
        isinstance(archs, list)
        and len(archs) == 6
        and _is_vector(tuple(archs))
        and all(0 <= x < 5 for x in archs)
    ):
        import warnings

        warnings.warn(  # `latbench arch --json` prints vectors as lists: say which reading
            f"{archs} is read as six arch_ids; for one 6-op vector pass a tuple",
            stacklevel=3,
        )
    return np.array([Arch.parse(a).id for a in archs], dtype=np.int64)


def _is_vector(value: Any) -> bool:
    # A 6-op vector is a flat tuple of ints (as Arch.vector is). A list of six ints is six
    # arch_ids: N = 6 measurements passed as a list must not become one architecture.
    return (
        isinstance(value, tuple)
        and len(value) == 6
        and all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in value)
    )


class Predictor(ABC):
    """A latency predictor for NAS-Bench-201 architectures.

    ``fit`` learns from measured latencies (ms), ``predict`` returns ms for any
    architectures (``NaN`` for invalid ones, whose output is disconnected), ``save``
    writes one ``.npz`` file that :func:`load_predictor` reads back.
    """

    name: ClassVar[str]
    """Short name used by the protocol and the command line."""

    @abstractmethod
    def fit(
        self,
        archs: Archs,
        latency_ms: Sequence[float] | np.ndarray,
        *,
        val_archs: Archs = None,
        val_latency_ms: Sequence[float] | np.ndarray | None = None,
    ) -> Predictor:
        """Fit on measured latencies; validation data is used where the method has a use for it."""

    @abstractmethod
    def predict(self, archs: Archs = None) -> np.ndarray:
        """Predicted latency in ms (float64), one per architecture; ``None`` = whole space."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able config and named arrays that fully describe the fitted predictor."""

    @classmethod
    @abstractmethod
    def _from_state(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Predictor:
        """Inverse of :meth:`_state`."""

    @property
    def fitted(self) -> bool:
        """True once :meth:`fit` has run (or the predictor was loaded)."""
        return getattr(self, "_fitted", False)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise PredictorError(f"{type(self).__name__} is not fitted: call fit() or load one")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted predictor to ``path`` (a ``.npz`` file); returns the path."""
        from latbench.dataset import atomic_path

        self._check_fitted()
        config, arrays = self._state()
        header = {"format": _FORMAT, "version": _FORMAT_VERSION, "kind": self.name, **config}
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            # np.savez on a file object: a path would get ".npz" appended to the temp name
            np.savez(fh, __header__=np.array(json.dumps(header)), **arrays)
        return path


def load_predictor(path: str | os.PathLike[str]) -> Predictor:
    """Read a predictor written by :meth:`Predictor.save` (any kind)."""
    from latbench.predictors.npzfile import NpzError, json_header, read_npz
    from latbench.predictors.registry import predictor_class

    path = Path(path)
    if not path.exists():
        raise PredictorError(f"{path}: no such file")
    try:
        arrays = read_npz(path, "predictor file")
        if "__header__" not in arrays:
            raise NpzError(f"{path}: not a LatBench predictor file (no header)")
        header = json_header(arrays.pop("__header__"), path, "predictor file")
    except NpzError as exc:
        raise PredictorError(str(exc)) from None
    if header.get("format") != _FORMAT or header.get("version") != _FORMAT_VERSION:
        raise PredictorError(
            f"{path}: format {short_repr(header.get('format'))} version"
            f" {short_repr(header.get('version'))}, this LatBench reads {_FORMAT!r} version"
            f" {_FORMAT_VERSION}"
        )
    kind = header.pop("kind", "")
    if not isinstance(kind, str):
        raise PredictorError(f"{path}: predictor kind {short_repr(kind)} is not a name")
    cls = predictor_class(kind)
    for k in ("format", "version"):
        header.pop(k)
    try:
        pred = cls._from_state(header, arrays)
    except PredictorError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise PredictorError(
            f"{path}: header or arrays do not fit a {kind} predictor ({short_repr(what)[1:-1]})"
        ) from None
    pred._fitted = True
    return pred


def check_targets(
    ids: np.ndarray, latency_ms: Sequence[float] | np.ndarray, what: str = "training"
) -> np.ndarray:
    """Validate latencies against their architectures; returns float64 ms."""
    from latbench.predictors.encoding import valid_mask

    y = np.asarray(latency_ms, dtype=np.float64).ravel()
    if y.shape != ids.shape:
        raise PredictorError(f"{what}: {len(ids)} architectures but {len(y)} latencies")
    if len(y) == 0:
        raise PredictorError(f"{what}: no data")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise PredictorError(f"{what}: latencies must be finite and > 0 ms")
    invalid = ids[~valid_mask()[ids]]
    if invalid.size:
        raise PredictorError(
            f"{what}: arch_id {int(invalid[0])} is invalid (output disconnected); "
            "train on valid architectures only"
        )
    return y
