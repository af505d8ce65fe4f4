"""Checks of a few-shot prior file: bounded before it is read, sound after.

A prior's SHA-256 sits in its own header and anyone who edits the arrays can
recompute it, so it proves the file undamaged, not usable. :func:`check_member` bounds
each member of the ``.npz`` from its declared size and ``.npy`` header before its data
is read; :func:`check_prior` refuses values that would give NaN predictions or bands
(non-finite arrays, a covariance that is not positive definite, a noise variance that
is not positive) whatever the checksum says. Encoder layers (``enc_p0``.., ``enc_out``)
and their feature sets (``enc_*``, ``encfull_*``) are bounded the same way.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from latbench.predictors.base import PredictorError
from latbench.space import N_ARCHS

__all__ = [
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "VIEWS",
    "check_features",
    "check_member",
    "check_prior",
]

MAX_MEMBER_BYTES = 64 << 20
"""Largest decoded member (real priors: the factors, ~0.5 MB)."""
MAX_MEMBERS = 32
"""Most members (11 without an encoder; with one, 7 sets' arrays and 2 per layer pair)."""
VIEWS = ("pruned", "timed")
"""How a prior sees its sources (:func:`latbench.predictors.fewshot.prior.source_view`):
``pruned`` (a source that timed unpruned cells stands for each architecture with the
least latency it measured among the cells of the architecture's pruned graph), or
``timed`` (as each source timed it)."""
_MAX_META_BYTES = 1 << 20
_MAX_COLUMNS = 256  # factors k, features p and weight dimensions are far smaller
_MAX_SOURCES = 4096
_ENCODER = re.compile(r"enc_(?:[pc]\d|out)")  # as encoder.is_encoder_array (no import cycle)


def _fail(path: str | os.PathLike[str], what: str) -> PredictorError:
    from latbench.terminal import safe

    return PredictorError(f"{safe(path)}: {what}")


def _shape_ok(name: str, shape: tuple[int, ...]) -> bool:
    """Whether a member's declared shape is one a prior can have (before reading it)."""
    if name == "meta":
        return shape == ()
    if name in ("factors", "features"):
        return len(shape) == 2 and shape[0] == N_ARCHS and 0 < shape[1] <= _MAX_COLUMNS
    if name == "graph":
        return shape == (N_ARCHS,)
    if name in ("feature_mean", "feature_std", "mean", "additive_mean"):
        return len(shape) == 1 and 0 < shape[0] <= 1 + 2 * _MAX_COLUMNS
    if name in ("cov", "additive_cov"):
        return len(shape) == 2 and shape[0] == shape[1] and 0 < shape[0] <= 1 + 2 * _MAX_COLUMNS
    if _ENCODER.fullmatch(name):  # encoder layers (in + 1, out); the chain is checked on load
        return (
            len(shape) == 2
            and 1 < shape[0] <= 1 + 2 * _MAX_COLUMNS
            and 0 < shape[1] <= _MAX_COLUMNS
        )
    for prefix in ("enc", "encfull"):
        if name.startswith(prefix + "_"):
            rest = name[len(prefix) :]
            if rest == "_mean":
                return len(shape) == 1 and 0 < shape[0] <= 1 + 3 * _MAX_COLUMNS
            if rest == "_cov":
                return (
                    len(shape) == 2
                    and shape[0] == shape[1]
                    and 0 < shape[0] <= 1 + 3 * _MAX_COLUMNS
                )
            if rest == "_source_weights":
                return (
                    len(shape) == 2
                    and 0 < shape[0] <= _MAX_SOURCES
                    and shape[1] <= 1 + 3 * _MAX_COLUMNS
                )
            return False
    if name == "source_weights":
        return len(shape) == 2 and 0 < shape[0] <= _MAX_SOURCES and shape[1] <= 1 + 2 * _MAX_COLUMNS
    return False


def check_member(info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """What is wrong with a prior's member, from its zip entry and ``.npy`` header alone.

    A known name, at most :data:`MAX_MEMBER_BYTES` decoded (the header, ``meta``, far
    less) and a shape a prior can have.
    :func:`~latbench.predictors.npzfile.read_npz` calls it on every member before
    reading its data, bounds the members to :data:`MAX_MEMBERS` and refuses, as for
    any file, data longer than the member holds.
    """
    name = info.filename[: -len(".npy")] if info.filename.endswith(".npy") else ""
    cap = _MAX_META_BYTES if name == "meta" else MAX_MEMBER_BYTES
    if info.file_size > cap:
        return f"member {info.filename[:40]!r} declares {info.file_size} bytes"
    if dtype.hasobject or not _shape_ok(name, shape):
        return (
            f"member {info.filename[:40]!r} declares shape {shape!r:.60} of {dtype},"
            " which no prior has"
        )
    return None


def check_features(path: str | os.PathLike[str], meta: Mapping[str, Any], columns: int) -> int:
    """Refuse a header whose ``view``, ``features`` and ``additive_features`` do not
    describe the prior's ``columns`` feature columns; return the number of additive terms.

    The header is outside the checksum, so the lists must be exactly those
    :func:`~latbench.predictors.fewshot.features.feature_names` gives the view (version
    7 on), or version 6's 11 features when no additive terms are recorded.
    """
    from latbench.predictors.fewshot.features import (
        FEATURE_NAMES,
        LEGACY_ADDITIVE_NAMES,
        feature_names,
    )

    view = meta.get("view", "timed")
    if view not in VIEWS:
        raise _fail(path, f"header view {str(view)[:40]!r} is not pruned or timed")
    add = meta.get("additive_features")
    want = (FEATURE_NAMES[:11], None) if add is None else feature_names(view)
    have = (meta.get("features", list(FEATURE_NAMES[:11])), add)
    if [list(x) if x is not None else None for x in want] != list(have) or len(have[0]) != columns:
        raise _fail(path, "header 'features' does not describe the feature columns")
    return len(add if add is not None else LEGACY_ADDITIVE_NAMES)


def check_prior(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> None:
    """Refuse a prior whose values cannot give finite predictions and bands.

    Every array finite; ``graph`` ids in -1..15624; ``feature_std`` positive; ``cov``
    (and ``additive_cov``) symmetric positive definite; ``noise_var`` (and
    ``additive_noise_var``) positive and finite (``load_prior`` checks ``sources``
    before the checksum, and the header's view and features with :func:`check_features`).
    """
    for name, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise _fail(path, f"array {name!r} has dtype {a.dtype}, not numbers")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _fail(path, f"array {name!r} holds NaN or infinite values")
    graph = arrays["graph"]
    if graph.dtype.kind not in "iu" or graph.min() < -1 or graph.max() >= N_ARCHS:
        raise _fail(path, "array 'graph' holds ids outside -1..15624")
    if (arrays["feature_std"] <= 0).any():
        raise _fail(path, "array 'feature_std' holds a value that is not positive")
    for name in ("cov", "additive_cov", "enc_cov", "encfull_cov"):
        c = arrays.get(name)
        if c is None:
            continue
        if not np.allclose(c, c.T, rtol=1e-9, atol=1e-12):
            raise _fail(path, f"covariance {name!r} is not symmetric")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise _fail(path, f"covariance {name!r} is not positive definite") from None
    for name in ("noise_var", "additive_noise_var", "enc_noise_var", "encfull_noise_var"):
        v = meta.get(name)
        if v is None and name != "noise_var":
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf"):
            raise _fail(path, f"header {name} is not a positive finite number")
