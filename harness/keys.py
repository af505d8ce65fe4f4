"""Dataset keys as file names: which keys are allowed, and which files belong to one.

A key names ``<out>/<key>.parquet`` and its companions, so it must stay a plain file
name inside ``--out`` and must not end in a suffix that LatBench gives companion
files (``x.layers`` would make ``x.layers.parquet``, which ``load`` reads as the
per-layer table of ``x``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# The policy lives in the core so that every writer applies the same one.
from latbench.keys import RESERVED_SUFFIXES, InvalidKeyError, validate_key

__all__ = ["InvalidKeyError", "RESERVED_SUFFIXES", "key_files", "remove_key_files", "validate_key"]


def key_files(out_dir: str | Path, stem: str) -> list[Path]:
    """Every file and folder a run of ``stem`` leaves in ``out_dir`` (those present)."""
    out = Path(out_dir)
    names = [f"{stem}.parquet", f"{stem}.raw.h5", f"{stem}.layers.parquet", f"{stem}.parts",
             f"{stem}.passes"]  # fmt: skip
    return [out / n for n in names if (out / n).exists() or (out / n).is_symlink()]


def remove_key_files(out_dir: str | Path, stem: str) -> list[Path]:
    """Delete what :func:`key_files` finds (``--fresh``); returns what was removed."""
    removed = []
    for path in key_files(out_dir, stem):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed
