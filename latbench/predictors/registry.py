"""Predictor names -> classes, for the protocol, the command line and file loading."""

from __future__ import annotations

from typing import Any

from latbench.predictors.base import Predictor, PredictorError

__all__ = ["PREDICTORS", "make_predictor", "predictor_class"]

PREDICTORS: tuple[str, ...] = ("gcn", "layerwise", "flops", "params")
"""Names accepted by :func:`make_predictor` and ``latbench-predict --predictor``."""


def predictor_class(name: str) -> type[Predictor]:
    """The class behind a predictor name (``flops`` and ``params`` share one)."""
    if name == "gcn":
        from latbench.predictors.gcn import GCNPredictor

        return GCNPredictor
    if name == "layerwise":
        from latbench.predictors.layerwise import LayerwisePredictor

        return LayerwisePredictor
    if name in ("flops", "params", "proxy"):
        from latbench.predictors.proxy import ProxyPredictor

        return ProxyPredictor
    raise PredictorError(f"unknown predictor {name!r}; choose one of {', '.join(PREDICTORS)}")


def make_predictor(name: str, **options: Any) -> Predictor:
    """A new, unfitted predictor: ``make_predictor("gcn", seed=0)``,
    ``make_predictor("flops")``, ``make_predictor("layerwise", layers=table)``.

    Names are case-insensitive. ``seed`` is accepted by every predictor, so one loop can
    pass it to all; the closed-form fits (``flops``, ``params``, ``layerwise``) draw
    nothing at random and ignore it."""
    if not isinstance(name, str):
        raise PredictorError(f"a predictor name must be a string, got {type(name).__name__}")
    name = name.strip().lower()
    cls = predictor_class(name)
    if name != "gcn":
        options.pop("seed", None)
    try:
        return cls(name, **options) if name in ("flops", "params") else cls(**options)
    except TypeError as exc:  # an option the class does not take
        raise PredictorError(f"{name}: {exc}") from None
