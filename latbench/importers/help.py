"""Import HELP's NAS-Bench-201 latency files (HayeonLee/HELP ``data/nasbench201``).

Each ``<device>.pt`` is a ``torch.save`` zip of a list of 15,625 latencies in
milliseconds, position = official NAS-Bench-201 index; ``str_arch2idx.pt`` maps
architecture strings to those indices. Both are read without PyTorch by
:func:`~latbench.safepickle.load_torch_zip`, which refuses every global.

HELP measured every architecture, including the 341 whose output is unreachable (on
networks that were not pruned). Those rows keep ``status="invalid"`` but also keep the
measured ``latency_ms``, so nothing published is dropped; ``load_wide`` and other
``status == "ok"`` views ignore them. HELP publishes no run counts, so ``runs`` is 0.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.catalog import CATALOG, HELP_CITATION, Dataset, normalize_key
from latbench.dataset import LATENCY_RANGE_MS, skeleton_frame
from latbench.importers.common import (
    Imported,
    ImportFormatError,
    catalog_metadata,
    packed_kind,
    refuse_duplicates,
    select_keys,
    sha256_file,
)
from latbench.importers.registry import drop_copy_mark
from latbench.safepickle import Limits, load_torch_zip, short_repr
from latbench.space import N_ARCHS, ArchError, arch_id, parse_arch

__all__ = ["INDEX_FILE", "help_key", "help_latencies", "nb201_to_arch_id", "read_help"]

INDEX_FILE = "str_arch2idx.pt"
"""HELP's file mapping NAS-Bench-201 strings to official indices."""

LIMITS = Limits(
    max_bytes=4 << 20,
    max_ops=8 * N_ARCHS,
    max_items=N_ARCHS,
    max_depth=2,
    max_nodes=2 * N_ARCHS,
    containers=frozenset({list, dict}),
)
"""What a HELP ``data.pkl`` may cost: a list of 15,625 numbers, or a dict of 15,625
architecture strings to indices (1.5 MB, about 62,000 opcodes)."""

_PROTOCOL = {
    "runs": None,
    "note": "as published by HELP; per-architecture run counts are not published",
    "reference": "HELP (NeurIPS 2021), HayeonLee/HELP data/nasbench201",
}


def help_key(stem: str) -> str:
    """Dataset key of a HELP file name: its catalog entry, else ``help-<stem>``.

    Case and a second download's `` (1)`` do not matter: ``Pixel2 (1)`` is ``help-pixel2``.
    """
    stem = drop_copy_mark(stem.strip())
    for entry in CATALOG.values():
        if entry.importer == "help" and stem.casefold() in (f.casefold() for f in entry.files):
            return entry.key
    return normalize_key(f"help-{stem}")


def nb201_to_arch_id(mapping: Any, what: str = INDEX_FILE) -> np.ndarray:
    """``arch_id`` per NAS-Bench-201 index from HELP's ``str_arch2idx`` dict.

    Raises :class:`ImportFormatError` unless the dict maps every architecture
    string once to a distinct index 0..15624.
    """
    if not isinstance(mapping, dict):
        raise ImportFormatError(
            f"{what}: expected a dict of architecture strings to indices,"
            f" got {type(mapping).__name__}"
        )
    if len(mapping) != N_ARCHS:
        raise ImportFormatError(f"{what}: {len(mapping)} entries, expected {N_ARCHS}")
    out = np.full(N_ARCHS, -1, dtype=np.int64)
    for arch_str, index in mapping.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < N_ARCHS:
            raise ImportFormatError(
                f"{what}: index {short_repr(index)} of {short_repr(arch_str)} is not 0..15624"
            )
        if out[index] >= 0:
            raise ImportFormatError(f"{what}: index {index} is given to two architectures")
        try:
            out[index] = arch_id(parse_arch(arch_str))
        except ArchError as exc:
            raise ImportFormatError(f"{what}: {exc}") from None
    # distinct indices for N_ARCHS entries cover 0..N-1; strings must be distinct too
    if len(np.unique(out)) != N_ARCHS:
        raise ImportFormatError(f"{what}: two strings name the same architecture")
    return out


def help_latencies(values: Any, what: str = "HELP file") -> np.ndarray:
    """Validate a HELP latency list; float64 milliseconds by NAS-Bench-201 index."""
    if not isinstance(values, list):
        raise ImportFormatError(
            f"{what}: expected a list of latencies, got {type(values).__name__}"
        )
    if len(values) != N_ARCHS:
        raise ImportFormatError(f"{what}: {len(values)} latencies, expected {N_ARCHS}")
    for i, v in enumerate(values):
        if type(v) not in (int, float) or not (math.isfinite(v) and v > 0):
            raise ImportFormatError(
                f"{what}: entry {i} is {short_repr(v)}, not a positive finite number of"
                " milliseconds"
            )
        if not LATENCY_RANGE_MS[0] <= v <= LATENCY_RANGE_MS[1]:
            raise ImportFormatError(
                f"{what}: entry {i} is {v!r} ms, outside the plausible"
                f" {LATENCY_RANGE_MS[0]:g}..{LATENCY_RANGE_MS[1]:g} ms"
            )
    return np.asarray(values, dtype=np.float64)


def _frame(ms_by_index: np.ndarray, to_arch: np.ndarray) -> pd.DataFrame:
    df = skeleton_frame()
    n = len(to_arch)
    latency = np.empty(n)
    latency[to_arch] = ms_by_index
    df["latency_ms"] = latency
    nb201 = np.empty(n, dtype=np.int64)
    nb201[to_arch] = np.arange(n)
    df["nb201_index"] = pd.array(nb201, dtype="Int32")
    df["status"] = np.where(df["valid"], "ok", "invalid")
    df["timed_arch_id"] = df["arch_id"].astype("Int32")
    return df


def _fallback(key: str, stem: str) -> Dataset:
    return Dataset(
        key=key,
        name=f"{stem} (HELP)",
        device_class="unknown",
        hardware="unknown",
        runtime="unknown",
        precision="fp32",
        source="HELP file not in the catalog",
        citation=HELP_CITATION,
        license="MIT",
        importer="help",
    )


_CHECKOUT_FOLDERS = ("data/nasbench201", "nasbench201")
"""Where a HELP checkout (or its ``data`` folder) keeps the NAS-Bench-201 files."""


def _is_pt(p: Path) -> bool:
    return p.suffix.lower() == ".pt" and p.is_file()


def _index_beside(folder: Path) -> Path:
    return next(
        (p for p in sorted(folder.iterdir()) if p.name.lower() == INDEX_FILE),
        folder / INDEX_FILE,
    )


def _latency_files(path: Path) -> tuple[dict[str, Path], Path, dict[Path, dict[str, Any]]]:
    if path.is_dir():
        if not any(_is_pt(p) for p in path.iterdir()):  # the checkout's root or data/
            path = next((path / sub for sub in _CHECKOUT_FOLDERS if (path / sub).is_dir()), path)
        files = sorted(p for p in path.iterdir() if _is_pt(p) and p.name.lower() != INDEX_FILE)
        index = _index_beside(path)
        if not files:
            raise ImportFormatError(f"{path}: no HELP latency files (*.pt) here")
    elif path.is_file():
        if path.name.lower() == INDEX_FILE:
            raise ImportFormatError(f"{path} is the index file; give a latency file or folder")
        if path.suffix.lower() != ".pt":
            packed = packed_kind(path)
            what = f"{packed[0]} ({packed[1]})" if packed else "not a HELP latency file"
            raise ImportFormatError(
                f"{path}: {what}; HELP's files are <device>.pt beside {INDEX_FILE}"
            )
        files, index = [path], _index_beside(path.parent)
    elif path.exists():  # a FIFO or device: never opened
        raise ImportFormatError(f"{path}: not a regular file")
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not index.is_file():
        raise ImportFormatError(
            f"{index} not found: HELP latency files need their {INDEX_FILE} alongside"
        )
    found = _drop_same_content({f: _identify(f) for f in files})
    keyed = {f: k for f, (k, _) in found.items()}
    refuse_duplicates(keyed, path)
    return {k: f for f, k in keyed.items()}, index, {f: info for f, (_, info) in found.items()}


def _drop_same_content(
    found: dict[Path, tuple[str, dict[str, Any]]],
) -> dict[Path, tuple[str, dict[str, Any]]]:
    """``found`` without a second copy of a published file (``pixel2.pt`` and a renamed
    ``mydevice.pt`` of the same bytes), the copy named for it kept; one warning each."""
    from latbench.importers.eagle import SkippedFileWarning

    kept: dict[str, Path] = {}
    for f in sorted(found, key=lambda f: (help_key(f.stem) != found[f][0], f.name)):
        key, info = found[f]
        other = kept.setdefault(key, f)
        if other != f and info["matches_published"] and found[other][1]["matches_published"]:
            warnings.warn(
                f"skipped {f.name}: same content as {other.name}", SkippedFileWarning, stacklevel=4
            )
            del found[f]
    return found


_MAX_PT_BYTES = 4 * LIMITS.max_bytes + (1 << 20)
"""Largest ``.pt`` hashed: ``load_torch_zip`` refuses anything larger unread."""


def _identify(f: Path) -> tuple[str, dict[str, Any]]:
    """Dataset key of HELP latency file ``f`` and how it relates to HELP's published files
    (:data:`~latbench.importers.fetch.HELP_SHA256`): by content first, so a renamed copy
    keeps its device, then by name, noting a file that differs from the published one.

    Raises :class:`ImportFormatError` for a published file's content under the name of
    another published device.
    """
    from latbench.importers.fetch import HELP_SHA256

    named = help_key(f.stem)
    digest = sha256_file(f) if f.stat().st_size <= _MAX_PT_BYTES else ""

    published = next(
        (n for n, d in HELP_SHA256.items() if d == digest and n.lower() != INDEX_FILE), None
    )
    if published is not None:
        key = help_key(Path(published).stem)
        if key != named and named in CATALOG:
            raise ImportFormatError(
                f"{f}: its content is HELP's published {published} (SHA-256 matches), dataset"
                f" {key!r}, but its name says {named!r}; rename it {published}"
            )
        info = {"identified_by": "sha256", "published_name": published, "matches_published": True}
        if key != named:
            info["note"] = f"{f.name} is HELP's published {published} (by SHA-256), renamed"
        return key, {**info, "sha256": digest}
    name = next((n for n in HELP_SHA256 if help_key(Path(n).stem) == named), None)
    info = {"identified_by": "name", "published_name": name, "matches_published": False}
    if name is not None:
        info["warning"] = (
            f"{f.name}: named like HELP's published {name} but it differs from the published"
            f" file (SHA-256 {digest[:12]}..., published {HELP_SHA256[name][:12]}...);"
            " imported by its name"
        )
    return named, {**info, "sha256": digest} if digest else info


def _load_pt(f: Path) -> Any:
    """``load_torch_zip`` of ``f``, naming a gzip (or other) compressed copy as such: a
    torch.save file is itself a zip, any other compression is a download's."""
    packed = packed_kind(f)
    if packed is not None and not packed[0].startswith("a zip"):
        raise ImportFormatError(f"{f}: {packed[0]}, not the file itself; {packed[1]}")
    return load_torch_zip(f, LIMITS)


def read_help(path: str | os.PathLike[str], keys: Collection[str] | None = None) -> list[Imported]:
    """Parse a HELP ``.pt`` latency file, or every one in a folder, into datasets.

    The folder (or the file's folder) must hold ``str_arch2idx.pt``; ``nb201_index``
    is filled from it for every row. ``keys`` restricts a folder import.
    """
    path = Path(path)
    available, index_path, published = _latency_files(path)
    selected = select_keys(available, keys, path)
    to_arch = nb201_to_arch_id(_load_pt(index_path), str(index_path))
    index_sha = sha256_file(index_path)
    out = []
    for key, f in selected.items():
        ms = help_latencies(_load_pt(f), str(f))
        meta = catalog_metadata(
            key,
            f,
            "help",
            fallback=_fallback(key, f.stem),
            protocol=_PROTOCOL,
            input_shape=[CATALOG[key].batch if key in CATALOG else 1, 3, 32, 32],
            extra={
                "index_file": INDEX_FILE,
                "index_sha256": index_sha,
                "published": {
                    k: v for k, v in published[f].items() if k not in ("warning", "sha256")
                },
            },
            sha256=published[f].get("sha256"),  # hashed once, to identify it
        )
        meta["invalid_rows"] = "status 'invalid' rows keep HELP's measured latency_ms"
        if "warning" in published[f]:
            meta["warnings"] = [published[f]["warning"]]
        out.append(Imported(key, _frame(ms, to_arch), meta, f))
    return out
