"""Fit a new device from a few measurements: Bayesian linear regression under a prior.

>>> from latbench.predictors.fewshot import FewShotAdapter, load_prior, select_archs
>>> prior = load_prior()                                   # the shipped prior
>>> ids = select_archs(prior, 10)                          # what to measure
>>> fit = FewShotAdapter(prior).fit(ids, measured_ms)      # doctest: +SKIP
>>> fit.predict_frame()        # 15,625 rows: arch_id, latency_pred_ms, lo, hi  # doctest: +SKIP

The weights' posterior is ``N(m, S)`` with ``S = (C^-1 + A'A / s2)^-1`` and
``m = S (C^-1 mu + A'z / s2)`` for the measured rows ``A`` of the design and their
log-latencies ``z``. The prior ``N(mu, C)`` and the noise variance ``s2`` are chosen
by empirical Bayes (the marginal likelihood of ``z``): ``s2`` over a grid of multiples
of the prior's noise, the prior among the global one and priors local to the sources
that the measurements resemble (:func:`_local_priors`). The band is the
central ``level`` interval of the predictive normal in log space, its standard
deviation scaled by ``band_scale``: the root mean square of the leave-one-out
standardised residuals on the measured rows (at least 1), since a prior learnt from
other devices is over-confident about a device unlike them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from latbench.predictors.base import Archs, PredictorError, arch_ids
from latbench.predictors.fewshot.prior import ADAPTER_VERSION, DevicePrior

__all__ = ["AdaptedDevice", "FewShotAdapter"]

_NOISE_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


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

    def predict_log(self, archs: Archs = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation of log-latency (natural log of ms)."""
        phi = self.prior.design[arch_ids(archs)]
        mu = phi @ self.mean
        var = np.einsum("ij,jk,ik->i", phi, self.cov, phi, optimize=True) + self.noise_var
        return mu, self.band_scale * np.sqrt(var)

    def predict(self, archs: Archs = None) -> np.ndarray:
        """Predicted latency (ms): the predictive median ``exp(mean)``."""
        ids = arch_ids(archs)
        return np.exp(self.prior.design[ids] @ self.mean)

    def predict_frame(self, level: float = 0.9) -> pd.DataFrame:
        """All 15,625 architectures: ``arch_id``, ``valid``, ``latency_pred_ms``,
        ``latency_lo_ms``, ``latency_hi_ms`` (central ``level`` band), ``measured``.

        Invalid architectures get the prediction for the cell-less network (an
        extrapolation; no source times them).
        """
        from statistics import NormalDist  # not scipy.stats: its import alone takes seconds

        if not 0 < level < 1:
            raise PredictorError(f"band level must be within (0, 1), got {level}")
        mu, sd = self.predict_log(None)
        q = NormalDist().inv_cdf(0.5 + level / 2)
        measured = np.zeros(len(mu), dtype=bool)
        measured[self.measured] = True
        return pd.DataFrame(
            {
                "arch_id": np.arange(len(mu), dtype=np.int32),
                "valid": self.prior.valid.copy(),
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
            "prior_sources": list(self.prior.sources),
            "prior_created": self.prior.meta.get("created"),
            "prior_sha256": self.prior.meta.get("sha256"),
            "measured_arch_ids": [int(i) for i in self.measured],
            "measured_latency_ms": [float(v) for v in self.measured_ms],
            "noise_var": float(self.noise_var),
            "band_scale": float(self.band_scale),
        }


class FewShotAdapter:
    """Bayesian linear regression of a new device's log-latency under ``prior``.

    ``noise`` fixes the noise variance as a multiple of the prior's; ``None`` picks it by
    empirical Bayes.
    """

    def __init__(
        self, prior: DevicePrior, *, noise: float | None = None, local: bool = True
    ) -> None:
        self.prior = prior
        self.noise = noise
        self.local = local

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
        p = self.prior
        a, z = p.design[ids], np.log(y)
        grid = (self.noise,) if self.noise is not None else _NOISE_GRID
        priors = [(p.mean, p.cov)]
        if self.local and p.source_weights is not None and len(z) >= 3:
            priors += _local_priors(p, a, z)
        # model choice by marginal likelihood: the global prior, or one local to the
        # sources the measurements resemble, and the noise level
        mu0, c0, s2 = _best(priors, grid, a, z, p.noise_var)
        ci = np.linalg.inv(c0)
        mean, cov = _posterior(ci, mu0, a, z, s2)
        return AdaptedDevice(p, mean, cov, float(s2), ids, y, _band_scale(ci, mu0, a, z, s2))


def _posterior(ci, mu, a, z, s2) -> tuple[np.ndarray, np.ndarray]:
    cov = np.linalg.inv(ci + a.T @ a / s2)
    cov = (cov + cov.T) / 2
    return cov @ (ci @ mu + a.T @ z / s2), cov


def _band_scale(ci, mu, a, z, s2) -> float:
    """RMS of leave-one-out standardised residuals, floored at 1 (needs 3+ rows)."""
    if len(z) < 3:
        return 1.0
    t = []
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        m, c = _posterior(ci, mu, a[keep], z[keep], s2)
        t.append((z[i] - a[i] @ m) ** 2 / (a[i] @ c @ a[i] + s2))
    return max(1.0, float(np.sqrt(np.mean(t))))


def _log_evidence(a: np.ndarray, z: np.ndarray, mu: np.ndarray, c: np.ndarray, s2: float) -> float:
    k = a @ c @ a.T + s2 * np.eye(len(z))
    r = z - a @ mu
    sign, logdet = np.linalg.slogdet(k)
    return -0.5 * (logdet + r @ np.linalg.solve(k, r)) if sign > 0 else -np.inf


_TEMPERATURES = (0.25, 1.0)
_SPREADS = (0.1, 0.3, 1.0)


def _local_priors(
    p: DevicePrior, a: np.ndarray, z: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Priors centred on the sources that fit the measured rows best.

    Each source's weights predict the measured log-latencies up to a level (its
    intercept is moved to the target's); sources are weighted by that fit's profile
    likelihood, tempered, and the prior is their weighted mean and spread plus a share
    of the global covariance (so the target may still differ from all of them).
    """
    w = np.asarray(p.source_weights, np.float64)
    pred = a @ w.T
    n = len(z)
    off = (z[:, None] - pred).mean(axis=0)
    rss = ((z[:, None] - pred - off) ** 2).sum(axis=0)
    shifted = w.copy()
    ll = -0.5 * n * np.log(rss / n + 1e-3 * p.noise_var)
    shifted[:, 0] += off
    out = []
    for t in _TEMPERATURES:
        pi = np.exp(t * (ll - ll.max()))
        pi /= pi.sum()
        m = pi @ shifted
        d = shifted - m
        spread = (d.T * pi) @ d
        out += [(m, spread + f * p.cov) for f in _SPREADS]
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
