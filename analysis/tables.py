"""Markdown and CSV output of result tables, byte-stable for the same numbers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FLOAT_FORMAT", "fmt_value", "markdown_table", "write_csv", "write_text"]

FLOAT_FORMAT = "%.6f"
"""CSV float format: fixed, so the same numbers always give the same bytes."""


def fmt_value(v: object, floatfmt: str = ".3f") -> str:
    """One Markdown cell: floats with ``floatfmt``, NaN/None as ``–``, pipes escaped."""
    if v is None or (isinstance(v, float | np.floating) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float | np.floating):
        return format(float(v), floatfmt)
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return f"{int(v):,}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, *, floatfmt: str = ".3f", index: bool = False) -> str:
    """``df`` as a GitHub Markdown table (index as the first column when ``index``)."""
    if index:
        df = df.reset_index()
    head = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt_value(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str], *, index: bool = False) -> Path:
    """Write ``df`` as CSV with :data:`FLOAT_FORMAT` and ``\\n`` line ends; returns the path."""
    from latbench.dataset import atomic_path

    path = Path(path)
    # atomic: an interrupted run leaves the previous results whole, never a cut CSV
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index, float_format=FLOAT_FORMAT, lineterminator="\n")
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`write_csv`; returns the path."""
    from latbench.dataset import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
