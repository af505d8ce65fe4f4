"""Fit a new device from a few measurements: two Bayesian linear models, one chosen.

>>> from latbench.predictors.fewshot import FewShotAdapter, load_prior, select_archs
>>> prior = load_prior()                                   # the shipped prior
>>> ids = select_archs(prior, 10)                          # what to measure
>>> fit = FewShotAdapter(prior).fit(ids, measured_ms)      # doctest: +SKIP
>>> fit.predict_frame()        # 15,625 rows: arch_id, latency_pred_ms, lo, hi  # doctest: +SKIP

**Log-linear** (``"log-linear"``): the log-latency ``z`` is linear in the prior's
design rows ``A`` (source factors and architecture features). The weights' posterior
is ``N(m, S)``, ``S = (C^-1 + A'WA / s2)^-1``, ``m = S (C^-1 mu + A'Wz / s2)``. The
prior ``N(mu, C)`` (the global one, or one local to the sources the measurements
resemble, :func:`_local_priors`) and ``s2`` (a multiple of the prior's noise) are chosen
by empirical Bayes; then ``W`` are Student-t weights (``nu`` = 4, iteratively
reweighted) so that one slow outlier, common on phones and boards, cannot tilt the fit.

**Encoder** (``"encoder"``, ``"encoder-full"``): the log-linear model over a prior's
learned embedding ``[1, e]`` or ``[1, U, x, e]`` (:mod:`.encoder`), same fit.

**Additive** (``"additive"``): latency itself is a sum of per-op costs, linear in the
op counts ``F`` (the prior's ``additive_names``), with
relative noise: rows ``F / y`` regress on 1 under the prior's additive weights scaled to
the device's geometric-mean latency (from the log-linear fit). Exact for simulated
accelerators (Eyeriss, FPGA in HW-NAS-Bench) and close for GPUs and NPUs, where the
log-linear model's curvature costs accuracy.

With ``model="auto"`` (the default) and at least 10 measurements (the additive model's
weights before the path features; its prior holds the four more), the model of smaller
leave-one-out squared log error on the measured rows is used (each left-out fit
refits everything). The band is the central ``level`` interval of the predictive
normal in log space, its standard deviation scaled by ``band_scale``: the root mean
square of the chosen model's leave-one-out standardised residuals (at least 1), since a
prior learnt from other devices is over-confident about a device unlike them.

With ``blend=True`` (not the default) ``"auto"`` does not choose between its model and
the FLOPs fit but averages them in log space (``model="blend"``), weighted by the
profile likelihood of their leave-one-out errors with prior odds for its own model
(:func:`_blend_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from latbench.predictors.base import Archs, PredictorError, arch_ids
from latbench.predictors.fewshot.prior import ADAPTER_VERSION, DevicePrior

__all__ = [
    "DEFAULT_ENCODER_MODELS",
    "ENCODER_MODELS",
    "MODELS",
    "UNLIKE_RMSE_LOG",
    "AdaptedDevice",
    "FewShotAdapter",
    "source_distances",
]


@dataclass(frozen=True)
class AdaptedDevice:
    """A target device's posterior: predictions with an uncertainty band for any archs."""

    prior: DevicePrior
    mean: np.ndarray
    cov: np.ndarray
    noise_var: float
    measured: np.ndarray
    measured_ms: np.ndarray
    band_scale: float = 1.0
    model: str = "log-linear"
    """One of :data:`MODELS` but ``"auto"``, or ``"blend"`` (module doc)."""
    scale_ms: float = 1.0
    """The additive model's unit: the device's geometric-mean latency estimate (ms)."""
    loo: dict[str, float] | None = None
    """Leave-one-out mean squared log error per model tried (``None``: not compared)."""
    blend: tuple[tuple[float, AdaptedDevice], ...] = ()
    """Weighted fits whose log-space mixture this is (empty: ``model`` alone)."""

    @property
    def blend_weights(self) -> dict[str, float]:
        """Weight of each blended model (``{model: 1.0}`` when not blended)."""
        if not self.blend:
            return {self.model: 1.0}
        return {f.model: float(w) for w, f in self.blend}

    def predict_log(self, archs: Archs = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation of log-latency (natural log of ms)."""
        ids = arch_ids(archs)
        if self.blend:
            return _mix([(w, *f.predict_log(ids)) for w, f in self.blend], self.band_scale)
        if self.model == "additive":
            f = self.prior.additive_design[ids]
            lin = self._linear(f)
            var = np.einsum("ij,jk,ik->i", f, self.cov, f, optimize=True)
            # delta method: a relative sd is a log-space sd
            var = var * (self.scale_ms / lin) ** 2 + self.noise_var
            return np.log(lin), self.band_scale * np.sqrt(var)
        phi = self.prior.design_for(_SET_OF.get(self.model, "base"))[ids]
        mu = phi @ self.mean
        var = np.einsum("ij,jk,ik->i", phi, self.cov, phi, optimize=True) + self.noise_var
        return mu, self.band_scale * np.sqrt(var)

    def predict(self, archs: Archs = None) -> np.ndarray:
        """Predicted latency (ms): the predictive median ``exp(mean)``."""
        ids = arch_ids(archs)
        if self.blend:
            return np.exp(self.predict_log(ids)[0])
        if self.model == "additive":
            return self._linear(self.prior.additive_design[ids])
        return np.exp(self.prior.design_for(_SET_OF.get(self.model, "base"))[ids] @ self.mean)

    def quantile(self, p: float, archs: Archs = None) -> np.ndarray:
        """Latency (ms) each architecture has probability ``p`` of undercutting under the
        predictive band (log-normal); :meth:`predict` at ``p`` = 0.5. A search that takes
        a model as under ``t`` when this is ``<= t`` admits it when ``P(lat <= t) >= p``."""
        from statistics import NormalDist

        if not 0 < p < 1:
            raise PredictorError(f"acceptance probability must be within (0, 1), got {p}")
        if p == 0.5:
            return self.predict(archs)
        mu, sd = self.predict_log(archs)
        return np.exp(mu + NormalDist().inv_cdf(p) * sd)

    def _linear(self, f: np.ndarray) -> np.ndarray:
        # a sum of fitted costs can go negative far from the data; a tenth of the
        # fastest measurement is below any real network and keeps the log finite
        return np.maximum(self.scale_ms * (f @ self.mean), 0.1 * float(self.measured_ms.min()))

    def predict_frame(self, level: float = 0.9) -> pd.DataFrame:
        """All 15,625 architectures: ``arch_id``, ``valid``, ``latency_pred_ms``,
        ``latency_lo_ms``, ``latency_hi_ms`` (central ``level`` band), ``measured``.

        Invalid architectures (no path from input to output) have no latency: NaN.
        """
        from statistics import NormalDist  # not scipy.stats: its import alone takes seconds

        if not 0 < level < 1:
            raise PredictorError(f"band level must be within (0, 1), got {level}")
        mu, sd = self.predict_log(None)
        q = NormalDist().inv_cdf(0.5 + level / 2)
        measured = np.zeros(len(mu), dtype=bool)
        measured[self.measured] = True
        valid = self.prior.valid.copy()
        mu = np.where(valid, mu, np.nan)
        return pd.DataFrame(
            {
                "arch_id": np.arange(len(mu), dtype=np.int32),
                "valid": valid,
                "latency_pred_ms": np.exp(mu),
                "latency_lo_ms": np.exp(mu - q * sd),
                "latency_hi_ms": np.exp(mu + q * sd),
                "measured": measured,
            }
        )

    def describe(self) -> dict:
        """Metadata for a predicted dataset: version, sources, measured architectures."""
        return {
            "adapter_version": ADAPTER_VERSION,
            "model": self.model,
            "scale_ms": float(self.scale_ms),
            "loo_mse_log": self.loo,
            "blend_weights": {k: round(v, 4) for k, v in self.blend_weights.items()},
            "prior_sources": list(self.prior.sources),
            "prior_created": self.prior.meta.get("created"),
            "prior_sha256": self.prior.meta.get("sha256"),
            "prior_view": self.prior.view,
            "measured_arch_ids": [int(i) for i in self.measured],
            "measured_latency_ms": [float(v) for v in self.measured_ms],
            "noise_var": float(self.noise_var),
            "band_scale": float(self.band_scale),
            **source_distances(self.prior, self.measured, self.measured_ms),
        }


def _ranks(v: np.ndarray) -> np.ndarray:
    """Centred ranks (ties broken by order; scipy's import costs more than the fit)."""
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    return r - r.mean()


UNLIKE_RMSE_LOG = 0.1
"""Nearest-source distance (RMS log error) above which a target is "unlike every source"."""


def source_distances(prior: DevicePrior, ids: np.ndarray, latency_ms: np.ndarray) -> dict:
    """How far the measured device is from each of the prior's sources.

    Per source: the RMS log error (``rmse_log``) of its modelled log-latencies on the
    measured architectures after an affine rescaling fitted to them (so a slower clock
    or another batch size is no distance), and their Spearman. ``unlike_sources`` is
    true when even the nearest is over :data:`UNLIKE_RMSE_LOG` (about 10 %): the
    prediction then rests on the architecture features more than on any source.
    Empty for a prior without per-source weights or fewer than 3 measurements.
    """
    if prior.source_weights is None or len(ids) < 3:
        return {}
    pred = prior.design[ids] @ np.asarray(prior.source_weights, np.float64).T
    z = np.log(np.asarray(latency_ms, np.float64))
    x = np.stack([np.ones_like(pred), pred], axis=-1).transpose(1, 0, 2)  # sources x n x 2
    out = {}
    rz = _ranks(z)
    for j, name in enumerate(prior.sources):
        ab = np.linalg.lstsq(x[j], z, rcond=None)[0]
        rmse = float(np.sqrt(np.mean((z - x[j] @ ab) ** 2)))
        rp = _ranks(pred[:, j])
        rho = float(rp @ rz / np.sqrt((rp @ rp) * (rz @ rz))) if rp.any() and rz.any() else 0.0
        out[name] = {"rmse_log": round(rmse, 4), "spearman": round(rho, 3)}
    order = sorted(out, key=lambda k: out[k]["rmse_log"])
    nearest = order[0]
    return {
        "source_distance": {k: out[k] for k in order},
        "nearest_source": nearest,
        "unlike_sources": bool(out[nearest]["rmse_log"] > UNLIKE_RMSE_LOG),
    }


MODELS = ("auto", "log-linear", "additive", "encoder", "encoder-full", "flops", "best-source")
"""Values of :class:`FewShotAdapter`'s ``model``."""
_SET_OF = {"encoder": "enc", "encoder-full": "encfull"}
"""Log-linear models over a prior's encoder feature sets (``prior.SETS``)."""
ENCODER_MODELS = tuple(_SET_OF)
DEFAULT_ENCODER_MODELS = ("encoder",)
"""Encoder models ``"auto"`` also weighs by leave-one-out when the prior has an encoder
(chosen on HELP's split only, docs/predictors.md)."""
_NOISE_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_ADDITIVE_NOISE_GRID = (1 / 64, 1 / 16, 0.25, 1.0, 4.0, 16.0, 64.0)
_T_NU = 4.0
_T_ITERS = 10
_ADDITIVE_WIDTHS = (1.0, 10.0, 100.0)
_ADDITIVE_MIN = 10
"""Fewest measurements at which the additive model enters the leave-one-out choice
(fewer if it has fewer weights): version 6's entry point, kept when version 7's path
features raised its weights to 14 (entering only at 14 cost Spearman at N = 10 on the
release devices, docs/predictors.md)."""
_SIMPLE_MIN = 4
"""Fewest measurements at which the simple models enter the leave-one-out choice."""
_LOG_FLOPS = 0
"""Column of ``log_flops`` in the prior's features."""


class FewShotAdapter:
    """Bayesian regression of a new device's latency under ``prior`` (module doc).

    ``noise`` fixes the log-linear model's noise variance as a multiple of the prior's
    (``None``: empirical Bayes); ``local`` allows priors local to resembling sources;
    ``robust`` uses Student-t weights; ``model`` is one of :data:`MODELS` (priors
    before adapter version 3 hold no additive model: ``"auto"`` is then log-linear).
    ``fallback`` lets ``"auto"`` also choose the simple models ``"flops"`` (log-latency
    linear in log-FLOPs) and ``"best-source"`` (the source of best correlation on the
    measured rows, rescaled) by leave-one-out; off by default, as on held-out devices
    the leave-one-out choice among four models at N <= 10 cost more than it saved
    (docs/predictors.md). ``blend`` makes ``"auto"`` average its chosen model with the
    ``"flops"`` model in log space, weighted by leave-one-out evidence
    (:func:`_blend_weights`); off by default, as on held-out devices it cost more at
    N = 5 than it saved (docs/predictors.md). ``encoder_models`` are the log-linear
    models over the prior's encoder feature sets that ``"auto"`` also weighs
    (``None``: those of :data:`DEFAULT_ENCODER_MODELS` the prior has; ``()``: none).
    """

    def __init__(
        self,
        prior: DevicePrior,
        *,
        noise: float | None = None,
        local: bool = True,
        robust: bool = True,
        model: str = "auto",
        fallback: bool = False,
        blend: bool = False,
        encoder_models: tuple[str, ...] | None = None,
    ) -> None:
        if model not in MODELS:
            raise PredictorError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        if model == "additive" and prior.additive_mean is None:
            raise PredictorError("this prior has no additive model (rebuild it: `pretrain`)")
        if encoder_models is None:  # what the prior offers of the tuned default
            have = [m for m in ENCODER_MODELS if _SET_OF[m] in prior.sets]
            encoder_models = tuple(m for m in DEFAULT_ENCODER_MODELS if m in have)
        for m in (model, *encoder_models):
            if m in _SET_OF and _SET_OF[m] not in prior.sets:
                raise PredictorError(
                    f"this prior has no encoder (model {m!r}; `pretrain --encoder`)"
                )
            if m not in _SET_OF and m != model:
                raise PredictorError(
                    f"encoder_models must be among {', '.join(_SET_OF)}, got {m!r}"
                )
        self.encoder_models = encoder_models
        self.prior = prior
        self.noise = noise
        self.local = local
        self.robust = robust
        self.model = model
        self.fallback = fallback
        self.blend = blend
        # mean design row of the valid architectures: the log of the device's geometric-
        # mean latency is this row times the log-linear weights (one dot per fit)
        self._mean_row = prior.design[prior.valid].mean(axis=0)

    def fit(self, archs: Archs, latency_ms: np.ndarray | list[float]) -> AdaptedDevice:
        """Posterior from measured ``latency_ms`` (positive, finite) of ``archs``."""
        ids = arch_ids(archs)
        y = np.asarray(latency_ms, dtype=np.float64).ravel()
        if len(ids) != len(y):
            raise PredictorError(f"{len(ids)} architectures but {len(y)} latencies")
        if len(ids) == 0:
            raise PredictorError("need at least one measured architecture")
        if not np.all(np.isfinite(y) & (y > 0)):
            raise PredictorError("measured latencies must be positive and finite")
        bad = ids[~self.prior.valid[ids]]
        if bad.size:
            raise PredictorError(f"arch_id {int(bad[0])} is invalid (no latency to learn from)")
        models = ["log-linear"] if self.model == "auto" else [self.model]
        am = self.prior.additive_mean
        can_add = am is not None and len(ids) >= min(len(am), _ADDITIVE_MIN)
        if self.model == "auto" and can_add:
            models.append("additive")
        if self.model == "auto" and len(ids) >= 3:
            models += list(self.encoder_models)
        simple: list[str] = []  # fitted and left out beside ``models``, for the blend
        if self.model == "auto" and len(ids) >= _SIMPLE_MIN and self.fallback:
            # the simple baselines compete too: never worse than them for a device
            # the prior cannot express (leave-one-out decides, as between the two)
            models.append("flops")
            if self.prior.source_weights is not None:
                models.append("best-source")
        elif self.model == "auto" and len(ids) >= _SIMPLE_MIN and self.blend:
            simple = list(_BLEND_MODELS)
        tried = models + simple
        fits = self._fits(tried, ids, y)
        if len(ids) < 3:
            return fits[models[0]]
        # leave-one-out: every left-out fit redoes the model choice inside its model
        err = {m: np.empty(len(ids)) for m in tried}
        std = {m: np.empty(len(ids)) for m in tried}
        for i in range(len(ids)):
            keep = np.arange(len(ids)) != i
            for m, f in self._fits(tried, ids[keep], y[keep]).items():
                mu, sd = f.predict_log(ids[i : i + 1])
                err[m][i], std[m][i] = np.log(y[i]) - mu[0], sd[0]
        loo = {m: float(np.mean(err[m] ** 2)) for m in tried}
        best = min(models, key=lambda m: loo[m])
        band = max(1.0, float(np.sqrt(np.mean((err[best] / std[best]) ** 2))))
        chosen = {m: loo[m] for m in models} if len(models) > 1 else None
        fit = replace(fits[best], band_scale=band, loo=chosen)
        if not simple:
            return fit
        names = [best, *simple]
        w = _blend_weights(np.stack([err[m] for m in names]))
        if w[1:].max() < _BLEND_MIN:
            return fit
        # the blend's own leave-one-out error and sd: the mixture of the models' ones
        e, s = _mix([(wi, err[m], std[m]) for wi, m in zip(w, names, strict=True)], 1.0)
        band = max(1.0, float(np.sqrt(np.mean((e / s) ** 2))))
        parts = tuple((float(wi), fits[m]) for wi, m in zip(w, names, strict=True) if wi > 0)
        return replace(fit, model="blend", blend=parts, band_scale=band)

    def _fits(self, models: list[str], ids: np.ndarray, y: np.ndarray) -> dict[str, AdaptedDevice]:
        out: dict[str, AdaptedDevice] = {}
        for m in models:
            if m in _SET_OF:
                out[m] = self._fit_log(ids, y, m)
        if "log-linear" in models or "additive" in models:
            log_fit = self._fit_log(ids, y)  # the additive model takes its scale from it
            out["log-linear"] = log_fit
            if "additive" in models:
                out["additive"] = self._fit_additive(ids, y, log_fit)
        if "flops" in models:
            out["flops"] = self._fit_simple(ids, y, self._flops_column())
        if "best-source" in models:
            out["best-source"] = self._fit_best_source(ids, y)
        return {m: out[m] for m in models}

    def _flops_column(self) -> np.ndarray:
        """Design-space direction of the standardised log-FLOPs feature."""
        e = np.zeros(self.prior.design.shape[1])
        e[1 + self.prior.rank + _LOG_FLOPS] = 1.0
        return e

    def _fit_best_source(self, ids: np.ndarray, y: np.ndarray) -> AdaptedDevice:
        """The source whose (modelled) log-latencies correlate best with the N, rescaled."""
        w = np.asarray(self.prior.source_weights, np.float64)
        pred = self.prior.design[ids] @ w.T
        z = np.log(y)
        pc, zc = pred - pred.mean(axis=0), z - z.mean()
        denom = np.sqrt((pc**2).sum(axis=0) * (zc @ zc)) + 1e-300
        best = int(np.argmax(pc.T @ zc / denom))
        return self._fit_simple(ids, y, w[best], model="best-source")

    def _fit_simple(
        self, ids: np.ndarray, y: np.ndarray, direction: np.ndarray, model: str = "flops"
    ) -> AdaptedDevice:
        """Log-latency ``a + b * (phi . direction)`` by least squares, as log-linear weights.

        The weights are ``a e0 + b direction`` and their covariance the least-squares
        one mapped through ``[e0, direction]``, so prediction and band reuse the
        log-linear code.
        """
        phi = self.prior.design[ids]
        t = np.zeros((phi.shape[1], 2))
        t[0, 0] = 1.0
        t[:, 1] += direction
        x = phi @ t
        z = np.log(y)
        xtx = x.T @ x + 1e-9 * np.eye(2)
        ab = np.linalg.solve(xtx, x.T @ z)
        dof = max(1, len(z) - 2)
        s2 = max(float(np.sum((z - x @ ab) ** 2)) / dof, 0.25 * self.prior.noise_var)
        cov = t @ (s2 * np.linalg.inv(xtx)) @ t.T
        return AdaptedDevice(self.prior, t @ ab, cov, s2, ids, y, model=model)

    def _fit_log(self, ids: np.ndarray, y: np.ndarray, model: str = "log-linear") -> AdaptedDevice:
        p = self.prior
        if model in _SET_OF:
            st = p.sets[_SET_OF[model]]
            mean0, cov0, sw, noise0 = st.mean, st.cov, st.source_weights, st.noise_var
            a = p.design_for(_SET_OF[model])[ids]
        else:
            mean0, cov0, sw, noise0 = p.mean, p.cov, p.source_weights, p.noise_var
            a = p.design[ids]
        z = np.log(y)
        grid = (self.noise,) if self.noise is not None else _NOISE_GRID
        priors = [(mean0, cov0)]
        if self.local and sw is not None and len(z) >= 3:
            priors += _local_priors(sw, cov0, noise0, a, z)
        # model choice by marginal likelihood: the global prior, or one local to the
        # sources the measurements resemble, and the noise level
        mu0, c0, s2 = _best(priors, grid, a, z, noise0)
        ci = np.linalg.inv(c0)
        w = np.ones(len(z))
        for _ in range(_T_ITERS if self.robust and len(z) >= 3 else 0):
            mean, _ = _posterior(ci, mu0, a, z, s2, w)
            w = (_T_NU + 1) / (_T_NU + (z - a @ mean) ** 2 / s2)
        mean, cov = _posterior(ci, mu0, a, z, s2, w)
        return AdaptedDevice(p, mean, cov, float(s2), ids, y, model=model)

    def _fit_additive(
        self, ids: np.ndarray, y: np.ndarray, log_fit: AdaptedDevice
    ) -> AdaptedDevice:
        p = self.prior
        if p.additive_mean is None or p.additive_cov is None or p.additive_noise_var is None:
            raise PredictorError("this prior has no additive model (rebuild it: `pretrain`)")
        scale = float(np.exp(self._mean_row @ log_fit.mean))
        a = p.additive_design[ids] * scale / y[:, None]
        t = np.ones(len(y))
        priors = [(p.additive_mean, k * p.additive_cov) for k in _ADDITIVE_WIDTHS]
        m0, c0, s2 = _best(priors, _ADDITIVE_NOISE_GRID, a, t, p.additive_noise_var)
        mean, cov = _posterior(np.linalg.inv(c0), m0, a, t, s2)
        return AdaptedDevice(p, mean, cov, float(s2), ids, y, model="additive", scale_ms=scale)


_BLEND_LOG_PRIOR = -2.0
"""Log prior odds of each simple model against the adapter's own choice in the blend
(chosen on HELP's split only, docs/predictors.md)."""
_BLEND_MODELS = ("flops",)
"""Simple models the blend weighs. Not ``"best-source"``: the local priors already
centre the log-linear model on the sources the measurements resemble, and on HELP's
split its leave-one-out lead at N = 5 was mostly chance (docs/predictors.md)."""
_BLEND_MIN = 1e-3
"""Simple models' largest weight under which the blend is the adapter's choice alone."""


def _blend_weights(err: np.ndarray) -> np.ndarray:
    """Pseudo-Bayesian model-averaging weights from leave-one-out errors (models x points).

    A model's score is the profile likelihood of its leave-one-out log errors as
    zero-mean normal, ``-n/2 log(mean err^2)``: the evidence the measurements give it
    on points it did not see, independent of how confident its own band is (a prior
    learnt on unlike sources is over-confident). The first model (the adapter's own
    choice) has prior odds ``exp(-_BLEND_LOG_PRIOR)`` over each other one, so a simple
    model takes over only on decisive evidence and shares the weight when it is not.
    """
    ll = -0.5 * err.shape[1] * np.log(np.mean(err**2, axis=1) + 1e-12)
    ll[1:] += _BLEND_LOG_PRIOR
    w = np.exp(ll - ll.max())
    return w / w.sum()


def _mix(
    parts: list[tuple[float, np.ndarray, np.ndarray]], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scaled sd of a weighted mixture of normals (moment matched)."""
    m = sum(w * mu for w, mu, _ in parts)
    v = sum(w * (sd**2 + mu**2) for w, mu, sd in parts) - m**2
    return m, scale * np.sqrt(np.maximum(v, 1e-12))


def _posterior(ci, mu, a, z, s2, w=None) -> tuple[np.ndarray, np.ndarray]:
    aw = a.T if w is None else a.T * w
    cov = np.linalg.inv(ci + aw @ a / s2)
    cov = (cov + cov.T) / 2
    return cov @ (ci @ mu + aw @ z / s2), cov


def _log_evidence(a: np.ndarray, z: np.ndarray, mu: np.ndarray, c: np.ndarray, s2: float) -> float:
    k = a @ c @ a.T + s2 * np.eye(len(z))
    r = z - a @ mu
    sign, logdet = np.linalg.slogdet(k)
    return -0.5 * (logdet + r @ np.linalg.solve(k, r)) if sign > 0 else -np.inf


_TEMPERATURES = (0.25, 1.0)
_SPREADS = (0.1, 0.3, 1.0)


def _local_priors(
    source_weights: np.ndarray, cov: np.ndarray, noise_var: float, a: np.ndarray, z: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Priors centred on the sources that fit the measured rows best.

    Each source's weights predict the measured log-latencies up to a level (its
    intercept is moved to the target's); sources are weighted by that fit's profile
    likelihood, tempered, and the prior is their weighted mean and spread plus a share
    of the global covariance (so the target may still differ from all of them).
    """
    w = np.asarray(source_weights, np.float64)
    pred = a @ w.T
    n = len(z)
    off = (z[:, None] - pred).mean(axis=0)
    rss = ((z[:, None] - pred - off) ** 2).sum(axis=0)
    shifted = w.copy()
    ll = -0.5 * n * np.log(rss / n + 1e-3 * noise_var)
    shifted[:, 0] += off
    out = []
    for t in _TEMPERATURES:
        pi = np.exp(t * (ll - ll.max()))
        pi /= pi.sum()
        m = pi @ shifted
        d = shifted - m
        spread = (d.T * pi) @ d
        out += [(m, spread + f * cov) for f in _SPREADS]
    return out


def _best(priors, grid, a, z, noise_var) -> tuple[np.ndarray, np.ndarray, float]:
    """The (prior mean, prior covariance, noise variance) of the largest evidence."""
    scored = [
        (_log_evidence(a, z, m, c, g * noise_var), i, g)
        for i, (m, c) in enumerate(priors)
        for g in grid
    ]
    _, i, g = max(scored, key=lambda t: t[0])
    return priors[i][0], priors[i][1], g * noise_var
