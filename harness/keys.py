"""Dataset keys as file names: which keys are allowed, and which files belong to one.

A key names ``<out>/<key>.parquet`` and its companions, so it must stay a plain file
name inside ``--out`` and must not end in a suffix that LatBench gives companion
files (``x.layers`` would make ``x.layers.parquet``, which ``load`` reads as the
per-layer table of ``x``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

__all__ = ["InvalidKeyError", "RESERVED_SUFFIXES", "key_files", "remove_key_files", "validate_key"]

RESERVED_SUFFIXES = (".layers", ".raw", ".predicted", ".parts", ".passes", ".lock", ".parquet",
                     ".h5", ".json", ".tmp")  # fmt: skip
"""Key endings that collide with companion files LatBench writes."""

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
_GENERATED = re.compile(r"\.(shard\d+of\d+|pass\d+of\d+)$")


class InvalidKeyError(ValueError):
    """A dataset key that cannot be used as a file name here."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe dataset key; raise :class:`InvalidKeyError` naming why not.

    Allowed: ASCII letters, digits, ``_ . + -``, starting with a letter or digit, at
    most 128 characters, no ``..``, none of :data:`RESERVED_SUFFIXES`, no
    ``.shardIofN`` / ``.passIofN`` ending (the harness adds those itself).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("--key must not be empty")
    shown = key if len(key) <= 60 else key[:57] + "..."
    if "/" in key or "\\" in key or "\0" in key:
        raise InvalidKeyError(f"--key {shown!r} contains a path separator; give a plain name")
    if ".." in key:
        raise InvalidKeyError(f"--key {shown!r} contains '..'; give a plain name")
    if not key.isascii() or not _KEY.fullmatch(key):
        raise InvalidKeyError(
            f"--key {shown!r} must be 1-128 ASCII letters, digits or '_.+-', starting with"
            " a letter or digit"
        )
    low = key.lower()
    for suffix in RESERVED_SUFFIXES:
        if low.endswith(suffix):
            raise InvalidKeyError(
                f"--key {shown!r} ends in {suffix!r}, a suffix LatBench uses for companion"
                " files; choose another name"
            )
    if _GENERATED.search(low):
        raise InvalidKeyError(
            f"--key {shown!r} ends like a shard or pass the harness names itself; use"
            " --shard instead, or another name"
        )
    return key


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
