"""FLOPs and params as latency proxies (Section 3.1, Figure 1 left): a linear fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from latbench.predictors.base import Archs, Predictor, PredictorError, arch_ids, check_targets
from latbench.predictors.encoding import cost_arrays, valid_mask

__all__ = ["ProxyPredictor"]

_PROXIES = ("flops", "params")


class ProxyPredictor(Predictor):
    """``latency = slope * proxy + intercept``, least squares on the training set.

    ``proxy`` is ``"flops"`` (MACs of the pruned network) or ``"params"``.
    """

    name: ClassVar[str] = "proxy"

    def __init__(self, proxy: str = "flops") -> None:
        if proxy not in _PROXIES:
            raise PredictorError(f"unknown proxy {proxy!r}; choose one of {', '.join(_PROXIES)}")
        self.proxy = proxy
        self.name = proxy  # type: ignore[misc]  # the protocol reports flops/params apart
        self.slope = float("nan")
        self.intercept = float("nan")

    def _x(self, ids: np.ndarray) -> np.ndarray:
        flops, params = cost_arrays()
        return (flops if self.proxy == "flops" else params)[ids]

    def fit(
        self,
        archs: Archs,
        latency_ms: Sequence[float] | np.ndarray,
        *,
        val_archs: Archs = None,
        val_latency_ms: Sequence[float] | np.ndarray | None = None,
    ) -> ProxyPredictor:
        """Least-squares line through the training points (validation data is unused)."""
        ids = arch_ids(archs)
        y = check_targets(ids, latency_ms)
        x = self._x(ids)
        if np.ptp(x) == 0:
            # One distinct proxy value: the best line is flat at the mean.
            self.slope, self.intercept = 0.0, float(y.mean())
        else:
            # Centre x first: FLOPs are ~1e8, and the normal equations would lose digits.
            xm, ym = x.mean(), y.mean()
            self.slope = float(np.dot(x - xm, y - ym) / np.dot(x - xm, x - xm))
            self.intercept = float(ym - self.slope * xm)
        self._fitted = True
        return self

    def predict(self, archs: Archs = None) -> np.ndarray:
        """Predicted latency (ms); ``NaN`` for invalid architectures."""
        self._check_fitted()
        ids = arch_ids(archs)
        out = self.slope * self._x(ids) + self.intercept
        return np.where(valid_mask()[ids], out, np.nan)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"proxy": self.proxy, "slope": self.slope, "intercept": self.intercept}, {}

    @classmethod
    def _from_state(
        cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> ProxyPredictor:
        pred = cls(config["proxy"])
        pred.slope, pred.intercept = float(config["slope"]), float(config["intercept"])
        return pred
