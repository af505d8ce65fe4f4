"""A prior over devices: what the source datasets say a new device's latencies look like.

Model (docs/predictors.md, "Few-shot adaptation"). Let ``z_d(a)`` be the log-latency
of architecture ``a`` on device ``d``. The sources' matrix (valid architectures x
source devices, with holes where a source lacks an architecture) is completed by
iterative rank-``k`` SVD (soft-impute); its left factors ``U`` (unit-variance
columns) are per-architecture embeddings learnt from the sources. Every device is a
linear model over the design row ``phi(a) = [1, U(a), x(a)]`` with ``x`` the
standardised :func:`~latbench.predictors.fewshot.features.arch_features`. The weights
fitted to each source (ridge) give the prior ``w ~ N(mean, cov)`` (empirical mean and
covariance over sources, shrunk towards the diagonal) and ``noise_var`` (the median
residual variance); a new device is Bayesian linear regression under that prior.

Beside it, a prior for the additive cost model: latency (ms, not its log) linear in
the op counts of :func:`~latbench.predictors.fewshot.features.feature_names` (the
``additive_features`` the prior records), fitted to
each source by relative least squares on its latencies over their geometric mean, so
the weights of devices of any speed are comparable (``additive_mean``,
``additive_cov``, ``additive_noise_var``: variance of the relative residual).

Optionally (version 5, ``pretrain(..., encoder={...})``), a learned architecture
embedding ``e(a)`` (:mod:`~latbench.predictors.fewshot.encoder`, trained multi-task over
every source) with two more weight distributions of the same kind: over the design
``[1, e(a)]`` (set ``enc``) and over ``[1, U(a), x(a), e(a)]`` (set ``encfull``). The
encoder's weights are stored, and the embedding is computed with numpy on load.

A prior is saved as one ``.npz`` without pickles: arrays plus a JSON ``meta`` string
that names the sources, their citations and licenses, the settings, the command that
made it, and a SHA-256 of the arrays that :func:`load_prior` verifies.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.predictors.base import PredictorError
from latbench.predictors.fewshot.validate import (
    MAX_MEMBERS,
    VIEWS,
    check_features,
    check_member,
    check_prior,
)
from latbench.space import N_ARCHS

__all__ = [
    "ADAPTER_VERSION",
    "DEFAULT_PRIOR",
    "VIEWS",
    "DevicePrior",
    "LinearSet",
    "default_prior_path",
    "load_prior",
    "pretrain",
    "source_matrix",
    "source_view",
    "view_for",
]

ADAPTER_VERSION = "fewshot-blr-7"
"""Names the model and file layout; recorded in priors and predicted datasets."""
DEFAULT_PRIOR = "nb201-help-release-xeon2c.npz"
"""File name of the prior shipped in ``latbench.predictors.priors``."""
_FORMAT = "latbench-fewshot-prior"
_ARRAYS = ("factors", "features", "feature_mean", "feature_std", "mean", "cov", "graph")
_OPTIONAL = ("source_weights", "additive_mean", "additive_cov")
SETS = ("enc", "encfull")
"""Feature sets an encoder adds: ``[1, e]`` and ``[1, U, x, e]`` (module doc)."""
_SET_ARRAYS = tuple(f"{s}_{part}" for s in SETS for part in ("mean", "cov", "source_weights"))


@dataclass(frozen=True)
class LinearSet:
    """A weight distribution over one design: ``w ~ N(mean, cov)``, residual variance
    ``noise_var``, and each source's own weights (``sources x len(mean)``)."""

    mean: np.ndarray
    cov: np.ndarray
    source_weights: np.ndarray
    noise_var: float


@dataclass(frozen=True)
class DevicePrior:
    """Architecture factors and the distribution of device weights (see module doc).

    ``factors`` (15625 x k) and ``features`` (15625 x p, standardised) make the design
    matrix; ``mean`` (1 + k + p) and ``cov`` are the prior over a device's weights,
    ``noise_var`` the per-architecture residual variance of log-latency.
    """

    factors: np.ndarray
    features: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    graph: np.ndarray
    """Per ``arch_id``, its distinct pruned graph's number (-1: invalid), so that adapting
    needs no graph work."""
    noise_var: float
    sources: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    source_weights: np.ndarray | None = None
    """``(sources, 1 + k + p)``: each source's own weights, for a prior local to the
    sources a target resembles (:class:`~latbench.predictors.fewshot.adapter.FewShotAdapter`);
    ``None`` in priors written before adapter version 2."""
    additive_mean: np.ndarray | None = None
    """``(1 + len(additive_names),)`` mean weights of the additive cost model per unit of
    the device's geometric-mean latency; ``None`` in priors before adapter version 3."""
    additive_cov: np.ndarray | None = None
    """Covariance of those weights over the sources."""
    additive_noise_var: float | None = None
    """Median over sources of the additive model's relative residual variance."""
    encoder: Mapping[str, np.ndarray] | None = None
    """Encoder weights (:mod:`~latbench.predictors.fewshot.encoder`); ``None`` before
    version 5 or when pretrained without one."""
    sets: Mapping[str, LinearSet] = field(default_factory=dict)
    """Weight distributions over the encoder's designs, by :data:`SETS` name."""

    @cached_property
    def embedding(self) -> np.ndarray:
        """``(15625, dim)`` standardised encoder embedding (numpy inference; invalid rows 0)."""
        from latbench.predictors.fewshot.encoder import embed

        if self.encoder is None:
            raise PredictorError("this prior has no encoder (pretrain it with one)")
        with np.errstate(all="ignore"):
            e = embed(self.encoder)
        if not np.isfinite(e).all():  # finite weights can still overflow: refuse, no NaN bands
            raise PredictorError("this prior's encoder gives non-finite embeddings")
        v = self.valid
        sd = e[v].std(axis=0)
        e = (e - e[v].mean(axis=0)) / np.where(sd > 1e-9, sd, 1.0)
        e[~v] = 0.0
        return e

    def design_for(self, name: str = "base") -> np.ndarray:
        """The design matrix of feature set ``name``: ``base`` (:attr:`design`) or one of
        :data:`SETS`."""
        if name == "base":
            return self.design
        if name not in self.sets:
            raise PredictorError(f"this prior has no feature set {name!r}")
        cache = self.__dict__.setdefault("_designs", {})
        if name not in cache:
            ones = np.ones((N_ARCHS, 1))
            parts = [ones, self.embedding] if name == "enc" else [self.design, self.embedding]
            cache[name] = np.hstack(parts)
        return cache[name]

    @property
    def additive_names(self) -> tuple[str, ...]:
        """The additive model's terms; priors before version 7 record none (theirs are
        :data:`~latbench.predictors.fewshot.features.LEGACY_ADDITIVE_NAMES`)."""
        from latbench.predictors.fewshot.features import LEGACY_ADDITIVE_NAMES

        return tuple(self.meta.get("additive_features", LEGACY_ADDITIVE_NAMES))

    @cached_property
    def additive_design(self) -> np.ndarray:
        """``(15625, 1 + len(additive_names))`` float64 ``[1, op counts]`` (raw counts)."""
        cols = _columns(self.meta, self.additive_names)
        raw = self.features[:, cols] * self.feature_std[cols] + self.feature_mean[cols]
        return np.hstack([np.ones((N_ARCHS, 1)), np.round(raw)]).astype(np.float64)

    @cached_property
    def design(self) -> np.ndarray:
        """``(15625, 1 + k + p)`` float64 design matrix ``[1, U, x]``."""
        ones = np.ones((N_ARCHS, 1))
        return np.hstack([ones, self.factors, self.features]).astype(np.float64)

    @property
    def valid(self) -> np.ndarray:
        """Bool per ``arch_id``: the architecture is valid."""
        return self.graph >= 0

    @property
    def rank(self) -> int:
        """Number of architecture factors ``k``."""
        return int(self.factors.shape[1])

    @property
    def view(self) -> str:
        """How the sources were seen (:data:`VIEWS`); priors before it record none: ``timed``."""
        return str(self.meta.get("view", "timed"))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the prior atomically to ``path`` (``.npz``, no pickle); returns the path."""
        from latbench.dataset import atomic_path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in _ARRAYS}
        for name in _OPTIONAL:
            if getattr(self, name) is not None:
                arrays[name] = np.ascontiguousarray(getattr(self, name), np.float64)
        for name, w in (self.encoder or {}).items():
            arrays[name] = np.ascontiguousarray(w, np.float32)
        for name, st in self.sets.items():
            for part in ("mean", "cov", "source_weights"):
                arrays[f"{name}_{part}"] = np.ascontiguousarray(getattr(st, part), np.float64)
        arrays["factors"] = arrays["factors"].astype(np.float32)
        arrays["features"] = arrays["features"].astype(np.float32)
        meta = {
            **self.meta,
            "format": _FORMAT,
            "adapter_version": ADAPTER_VERSION,
            "sources": list(self.sources),
            "noise_var": float(self.noise_var),
            "additive_noise_var": self.additive_noise_var,
            **{f"{name}_noise_var": float(st.noise_var) for name, st in self.sets.items()},
            "sha256": _digest(arrays),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        return path


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    extra = sorted(n for n in arrays if n not in _ARRAYS and n not in _OPTIONAL)
    for name in (*_ARRAYS, *[n for n in _OPTIONAL if n in arrays], *extra):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def default_prior_path() -> Path:
    """Path of the prior shipped with the package."""
    return Path(str(resources.files("latbench.predictors.priors"))) / DEFAULT_PRIOR


def load_prior(path: str | os.PathLike[str] | None = None) -> DevicePrior:
    """Read a prior written by :meth:`DevicePrior.save` (default: the shipped one).

    Raises :class:`PredictorError` for a missing, foreign, truncated or altered file.
    """
    from latbench.files import NotRegularFile, require_regular
    from latbench.terminal import safe

    path = default_prior_path() if path is None else Path(path)
    try:  # a folder or FIFO is not "missing": say what it is
        require_regular(path)
    except NotRegularFile as exc:
        raise PredictorError(f"{safe(path)}: {exc}; a prior is one .npz file") from None
    except OSError:
        raise PredictorError(
            f"{safe(path)}: no such prior file (rebuild it with `latbench-predict pretrain`)"
        ) from None
    from latbench.predictors.fewshot.encoder import check_weights, is_encoder_array
    from latbench.predictors.npzfile import NpzError, json_header, read_npz

    try:  # a prior's own shapes and sizes, checked before numpy allocates (issue 27)
        stored = read_npz(path, "few-shot prior", check_member, MAX_MEMBERS)
        meta = json_header(stored.get("meta"), path, "few-shot prior")
        arrays = {name: stored[name] for name in _ARRAYS}
        arrays.update({name: stored[name] for name in _OPTIONAL if name in stored})
        arrays.update({n: stored[n] for n in stored if n in _SET_ARRAYS or is_encoder_array(n)})
    except NpzError as exc:
        raise PredictorError(str(exc)) from None
    except KeyError as exc:
        raise PredictorError(f"{path}: not a LatBench few-shot prior (no {exc})") from None
    if meta.get("format") != _FORMAT:
        raise PredictorError(f"{path}: not a LatBench few-shot prior (format {meta!r:.60})")
    sources = meta.get("sources")
    if (
        not isinstance(sources, list)
        or not all(isinstance(x, str) and len(x) <= 200 for x in sources[:10_000])
        or len(sources) > 10_000
    ):
        raise PredictorError(f"{path}: header 'sources' is not a list of dataset keys")
    if meta.get("sha256") != _digest(arrays):
        raise PredictorError(f"{path}: checksum mismatch, the file is corrupt or was altered")
    d = 1 + arrays["factors"].shape[1] + arrays["features"].shape[1]
    sw = arrays.get("source_weights")
    am, ac = arrays.get("additive_mean"), arrays.get("additive_cov")
    if (
        arrays["factors"].shape[0] != N_ARCHS
        or arrays["cov"].shape != (d, d)
        or (sw is not None and sw.shape != (len(meta["sources"]), d))
        or (am is None) != (ac is None)
        or (am is not None and (am.ndim != 1 or ac.shape != (len(am),) * 2))
        or (am is not None and meta.get("additive_noise_var") is None)
    ):
        raise PredictorError(f"{path}: array shapes do not fit together")
    p = arrays["features"].shape[1]
    if arrays["feature_mean"].shape != (p,) or arrays["feature_std"].shape != (p,):
        raise PredictorError(f"{path}: array shapes do not fit together")
    n_add = check_features(path, meta, p)  # the header is outside the checksum
    if am is not None and len(am) != 1 + n_add:
        raise PredictorError(f"{path}: additive weights do not match the features")
    try:  # the header is outside the arrays' checksum: its numbers are checked here
        noise = float(meta["noise_var"])
        add_noise = None if am is None else float(meta["additive_noise_var"])
    except (KeyError, TypeError, ValueError):
        raise PredictorError(f"{path}: header noise variances are not numbers") from None
    encoder = {n: a for n, a in arrays.items() if is_encoder_array(n)} or None
    sets = _read_sets(path, arrays, meta, d)
    if encoder is not None and check_weights(encoder):
        raise PredictorError(f"{path}: {check_weights(encoder)}")
    if (encoder is None) != (not sets):
        raise PredictorError(f"{path}: encoder weights and their feature sets come together")
    if encoder is not None:
        dim = encoder["enc_out"].shape[1]
        if sets["enc"].mean.shape != (1 + dim,) or sets["encfull"].mean.shape != (d + dim,):
            raise PredictorError(f"{path}: feature sets do not match the encoder's width")
    check_prior(path, arrays, meta)  # values and noise variances, whatever the checksum says
    base = {n: a for n, a in arrays.items() if n in _ARRAYS or n in _OPTIONAL}
    return DevicePrior(
        **base,
        encoder=encoder,
        sets=sets,
        noise_var=noise,
        additive_noise_var=add_noise,
        sources=tuple(meta["sources"]),
        meta=meta,
    )


def _read_sets(
    path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], d: int
) -> dict[str, LinearSet]:
    """The encoder's feature sets of a loaded file: all of :data:`SETS` or none."""
    present = [
        n for n in SETS if any(f"{n}_{p}" in arrays for p in ("mean", "cov", "source_weights"))
    ]
    if not present:
        return {}
    n_src = len(meta["sources"])
    out = {}
    for name in SETS:
        try:
            m, c, w = (arrays[f"{name}_{p}"] for p in ("mean", "cov", "source_weights"))
            noise = meta[f"{name}_noise_var"]
        except KeyError:
            raise PredictorError(f"{path}: feature set {name!r} is incomplete") from None
        if m.ndim != 1 or c.shape != (len(m),) * 2 or w.shape != (n_src, len(m)):
            raise PredictorError(f"{path}: feature set {name!r} shapes do not fit together")
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 < noise < np.inf:
            raise PredictorError(f"{path}: header {name}_noise_var is not a positive finite number")
        out[name] = LinearSet(m, c, w, float(noise))
    return out


def view_for(metadata: Mapping[str, Any] | None) -> str:
    """The view (:data:`VIEWS`) in which a target with this file metadata should see its
    sources: the way it was timed itself (``pruned`` unless it timed unpruned cells)."""
    from latbench.predictors.data import timed_encoding

    return "timed" if timed_encoding(dict(metadata or {})) == "cell" else "pruned"


def source_view(matrix: pd.DataFrame, view: str) -> pd.DataFrame:
    """``matrix`` (:func:`source_matrix`) with its sources seen as ``view`` (:data:`VIEWS`).

    In the ``pruned`` view every source is a function of the pruned graph, as a LatBench
    measurement is: HELP's and HW-NAS-Bench's cells run their dead branches (a ``none``
    edge multiplies by zero), so such a source stands for every cell of a pruned graph
    with the least latency it measured among them, the cell with the least dead work.
    """
    from latbench.predictors.data import timed_encoding
    from latbench.predictors.encoding import pruned_graph_index

    if view not in VIEWS:
        raise PredictorError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    if matrix.attrs.get("view", "timed") == view:
        return matrix
    if matrix.attrs.get("view", "timed") != "timed":
        raise PredictorError(f"a {matrix.attrs['view']} view cannot be seen as {view}")
    if len(matrix) != N_ARCHS:  # rows are looked up by arch_id
        raise PredictorError(f"a source matrix has one row per architecture, got {len(matrix)}")
    metas = matrix.attrs.get("metadata", {}) or {}
    graph = pruned_graph_index()
    valid = graph >= 0
    n_graphs = int(graph.max()) + 1
    out = matrix.copy()
    for key in out.columns:
        if timed_encoding(metas.get(key, {})) == "cell":
            col = out[key].to_numpy(np.float64)
            least = np.full(n_graphs, np.inf)
            seen = valid & np.isfinite(col)
            np.minimum.at(least, graph[seen], col[seen])
            view_col = np.full(N_ARCHS, np.nan)
            view_col[valid] = np.where(np.isfinite(least), least, np.nan)[graph[valid]]
            out[key] = view_col
    out.attrs = {**matrix.attrs, "view": view}
    return out


def source_matrix(
    keys: Sequence[str], data_home: str | os.PathLike[str] | None = None, view: str = "timed"
) -> pd.DataFrame:
    """Latency (ms) table ``arch_id`` x ``keys`` of valid, ``status == "ok"`` rows, the
    sources seen as ``view`` (:func:`source_view`; default as timed).

    ``attrs["metadata"]`` maps each key to its dataset's file metadata, ``attrs["view"]``
    names the view.
    """
    from latbench.loader import load
    from latbench.predictors.encoding import valid_mask

    cols, metas = {}, {}
    valid = valid_mask()
    for key in keys:
        df = load(key, data_home=data_home)
        lat = pd.to_numeric(df["latency_ms"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
        ok = (df["status"] == "ok").to_numpy() & np.isfinite(lat) & (lat > 0)
        col = np.full(N_ARCHS, np.nan)
        col[df["arch_id"].to_numpy(np.int64)[ok]] = lat[ok]
        col[~valid] = np.nan
        cols[key] = col
        metas[key] = df.attrs.get("metadata", {})
    out = pd.DataFrame(cols, index=pd.RangeIndex(N_ARCHS, name="arch_id"))
    out.attrs["metadata"] = metas
    out.attrs["view"] = "timed"
    return source_view(out, view)


def _top_factors(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-``k`` SVD of a tall matrix through its small Gram matrix (columns << rows)."""
    evals, evecs = np.linalg.eigh(m.T @ m)
    order = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.maximum(evals[order], 1e-300))
    v = evecs[:, order]
    return (m @ v) / s, s, v.T


def _soft_impute(z: np.ndarray, k: int, iters: int) -> np.ndarray:
    """Unit-variance left factors (rows x k) of the column-centred, completed ``z``."""
    seen = np.isfinite(z)
    centred = np.where(seen, z - np.nanmean(z, axis=0), 0.0)
    filled = centred
    for _ in range(iters if not seen.all() else 0):
        u, s, vt = _top_factors(filled, k)
        filled = np.where(seen, centred, (u * s) @ vt)
    u, _, _ = _top_factors(filled, k)
    return u * np.sqrt(len(z))


MIN_SOURCE_LATENCIES = 100
"""Fewest measured latencies a source dataset needs (:func:`pretrain`'s ``min_archs``)."""


def pretrain(
    matrix: pd.DataFrame,
    *,
    rank: int = 8,
    shrink: float = 0.1,
    ridge: float = 1e-3,
    iters: int = 15,
    min_archs: int = MIN_SOURCE_LATENCIES,
    encoder: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> DevicePrior:
    """Learn a :class:`DevicePrior` from a latency table (:func:`source_matrix`).

    ``rank`` factors (capped at sources - 1), covariance ``shrink`` towards its
    diagonal (0..1), ``ridge`` per-source penalty (times the rows fitted). Sources
    with fewer than ``min_archs`` latencies are refused. ``encoder``: options of
    :func:`~latbench.predictors.fewshot.encoder.train_encoder` (``{}`` for its
    defaults) to learn an embedding too (needs TensorFlow); ``None``: none. Deterministic
    (the encoder: on one thread).
    """
    from latbench.predictors.encoding import valid_mask
    from latbench.predictors.fewshot.features import FEATURE_NAMES, arch_features, feature_names

    if matrix.shape[0] != N_ARCHS:
        raise PredictorError(f"source table has {matrix.shape[0]} rows, expected {N_ARCHS}")
    keys = [str(c) for c in matrix.columns]
    if len(keys) < 2:
        raise PredictorError(f"need at least 2 source datasets, got {len(keys)}")
    if not 0 <= shrink <= 1:
        raise PredictorError(f"shrink must be within 0..1, got {shrink}")
    lat = matrix.to_numpy(np.float64)
    counts = np.isfinite(lat).sum(axis=0)
    if (counts < min_archs).any():
        few = keys[int(np.argmin(counts))]
        raise PredictorError(f"source {few!r} has {counts.min()} latencies, need >= {min_archs}")
    if (lat[np.isfinite(lat)] <= 0).any():
        raise PredictorError("source latencies must be positive")
    valid = valid_mask()
    z = np.log(lat[valid])
    k = max(1, min(rank, len(keys) - 1))
    factors = np.zeros((N_ARCHS, k))
    factors[valid] = _soft_impute(z, k, iters)  # invalid rows: the mean architecture
    view = str(matrix.attrs.get("view", "timed"))
    names, add_names = feature_names(view)
    x = arch_features()[:, [FEATURE_NAMES.index(n) for n in names]]
    fmean, fstd = x[valid].mean(axis=0), x[valid].std(axis=0)
    fstd = np.where(fstd > 0, fstd, 1.0)
    feats = (x - fmean) / fstd
    phi = np.hstack([np.ones((N_ARCHS, 1)), factors, feats])[valid]
    weights, resid = _ridge_fits(phi, z, ridge)
    mean, cov = _weight_distribution(np.array(weights), shrink)
    add = x[:, [names.index(n) for n in add_names]]
    add_mean, add_cov, add_resid = _additive_prior(lat[valid], add[valid], shrink)
    metas = matrix.attrs.get("metadata", {}) or {}
    info = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rank": k,
        "shrink": shrink,
        "ridge": ridge,
        "iters": iters,
        "source_archs": {key: int(c) for key, c in zip(keys, counts, strict=True)},
        "source_residual_var": dict(zip(keys, resid, strict=True)),
        "citations": sorted({str(m.get("citation")) for m in metas.values() if m.get("citation")}),
        "licenses": {key: str(m.get("license", "unknown")) for key, m in metas.items()},
        "source_citations": {key: str(m.get("citation", "")) for key, m in metas.items()},
        **dict(meta or {}),
        "view": view,
        "features": list(names),
        "additive_features": list(add_names),
    }
    from latbench.predictors.fewshot.selection import graph_index

    enc_weights, sets = None, {}
    if encoder is not None:
        from latbench.predictors.fewshot.encoder import train_encoder

        zfull = np.full(lat.shape, np.nan)
        zfull[valid] = z
        fit = train_encoder(zfull, **dict(encoder))
        enc_weights = fit.weights
        import inspect

        defaults = {k: v.default for k, v in inspect.signature(train_encoder).parameters.items()
                    if v.default is not inspect.Parameter.empty and k != "threads"}  # fmt: skip
        info["encoder"] = {**defaults, **dict(encoder), "loss": round(fit.loss, 5)}
    prior = DevicePrior(
        factors=factors.astype(np.float32),
        graph=graph_index().astype(np.int32),
        features=feats.astype(np.float32),
        feature_mean=fmean,
        feature_std=fstd,
        mean=mean,
        cov=cov,
        noise_var=float(np.median(resid)),
        sources=tuple(keys),
        meta=info,
        source_weights=np.array(weights),
        additive_mean=add_mean,
        additive_cov=add_cov,
        additive_noise_var=float(np.median(add_resid)),
        encoder=enc_weights,
    )
    if enc_weights is None:
        return prior
    for name in SETS:
        # the sets' source weights are fitted as the base's, on the standardised embedding
        design = np.hstack([np.ones((N_ARCHS, 1)), prior.embedding]) if name == "enc" else None
        design = design if design is not None else np.hstack([prior.design, prior.embedding])
        w, r = _ridge_fits(design[valid], z, ridge)
        m, c = _weight_distribution(np.array(w), shrink)
        sets[name] = LinearSet(m, c, np.array(w), float(np.median(r)))
    return replace(prior, sets=sets)


def _columns(meta: Mapping[str, Any], names: Sequence[str]) -> list[int]:
    """Positions of ``names`` among the prior's recorded ``features`` (checked on load)."""
    from latbench.predictors.fewshot.features import FEATURE_NAMES

    have = list(meta.get("features", FEATURE_NAMES[:11]))
    return [have.index(n) for n in names]


def _ridge_fits(phi: np.ndarray, z: np.ndarray, ridge: float) -> tuple[list, list[float]]:
    """Each source's ridge weights on ``phi`` over its observed rows, and residual variance."""
    weights, resid = [], []
    for j in range(z.shape[1]):
        seen = np.isfinite(z[:, j])
        a, y = phi[seen], z[seen, j]
        w = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ y)
        weights.append(w)
        resid.append(float(np.var(y - a @ w)))
    return weights, resid


def _weight_distribution(wts: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance over sources, shrunk towards the diagonal, with a jitter."""
    mean = wts.mean(axis=0)
    cov = np.cov(wts.T, bias=False) if len(wts) > 1 else np.zeros((len(mean),) * 2)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
    cov += 1e-6 * np.eye(len(mean)) * max(1e-12, float(np.mean(np.diag(cov))))
    return mean, cov


def _additive_prior(
    lat: np.ndarray, counts: np.ndarray, shrink: float
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Additive cost model per source (relative least squares) on op ``counts``, as a
    weight distribution."""
    f = np.hstack([np.ones((len(counts), 1)), counts])
    weights, resid = [], []
    for j in range(lat.shape[1]):
        seen = np.isfinite(lat[:, j])
        y = lat[seen, j]
        a = f[seen] / y[:, None]  # rows over y: the residual is relative, as latency noise is
        b = np.linalg.lstsq(a, np.ones(len(y)), rcond=None)[0]
        resid.append(float(np.var(1 - a @ b)))
        weights.append(b / np.exp(np.mean(np.log(y))))
    mean, cov = _weight_distribution(np.array(weights), shrink)
    return mean, cov, resid
