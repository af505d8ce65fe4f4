"""Pieces every importer shares: the result type, file selection and metadata."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.catalog import CATALOG, Dataset, normalize_key, resolve
from latbench.manifest import sha256_file  # one checksum routine for every file we record
from latbench.safepickle import short_repr

__all__ = [
    "ImportFormatError",
    "Imported",
    "canonical_key",
    "catalog_metadata",
    "refuse_duplicates",
    "select_keys",
    "sha256_file",
]


class ImportFormatError(ValueError):
    """A source file whose content does not follow the format its importer reads."""


@dataclass(frozen=True)
class Imported:
    """One dataset parsed from a source file, ready to be written."""

    key: str
    frame: pd.DataFrame
    metadata: dict[str, Any]
    source: Path

    def counts(self) -> dict[str, int]:
        """Number of rows per status (``ok``, ``invalid``, ``failed``, ``missing``)."""
        vc = self.frame["status"].value_counts()
        return {s: int(vc.get(s, 0)) for s in ("ok", "invalid", "failed", "missing")}


def canonical_key(key: str) -> str:
    """Catalog key for a key or alias; other keys are normalized."""
    return resolve(key) or normalize_key(key)


def select_keys(
    available: Mapping[str, Path], keys: Collection[str] | None, where: Path
) -> dict[str, Path]:
    """The ``key -> file`` entries of ``available`` named by ``keys`` (all when None).

    Raises :class:`ImportFormatError` naming any requested key the source lacks.
    """
    if keys is None:
        return dict(available)
    wanted = {canonical_key(k): k for k in keys}
    absent = [raw for k, raw in wanted.items() if k not in available]
    if absent:
        raise ImportFormatError(
            f"{where} holds no dataset for {', '.join(map(repr, absent))}"
            f" (it holds: {', '.join(sorted(available)) or 'nothing'})"
        )
    return {k: p for k, p in available.items() if k in wanted}


def refuse_duplicates(keyed: Mapping[Path, str], where: Path) -> None:
    """Refuse two files whose names are equal ignoring case, or that map to one key.

    ``keyed`` maps each file to the dataset key it would become. On a case-insensitive
    file system only one of ``pixel2.pt`` and ``Pixel2.pt`` exists; elsewhere both
    would silently become one dataset, so neither is imported.
    """
    seen_names: dict[str, Path] = {}
    seen_keys: dict[str, Path] = {}
    for f, key in keyed.items():
        for seen, tag, why in (
            (seen_names, f.name.casefold(), "names equal ignoring case"),
            (seen_keys, key, f"both dataset {key!r}"),
        ):
            other = seen.setdefault(tag, f)
            if other != f:
                raise ImportFormatError(
                    f"{where}: {short_repr(other.name, 60)} and {short_repr(f.name, 60)}"
                    f" are {why}; keep one of them"
                )


def _split_runtime(runtime: str) -> dict[str, str]:
    name, _, version = runtime.rpartition(" ")
    if name and version[:1].isdigit():
        return {"name": name, "version": version}
    return {"name": runtime, "version": ""}


def catalog_metadata(
    key: str,
    source: Path,
    importer: str,
    *,
    fallback: Dataset | None = None,
    protocol: Mapping[str, Any],
    input_shape: list[int],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """File metadata of an imported dataset: device and provenance from the catalog.

    ``fallback`` describes a source the catalog does not know.
    """
    from latbench import __version__

    entry = CATALOG.get(key, fallback)
    if entry is None:
        raise ValueError(f"no catalog entry and no fallback description for {key!r}")
    return {
        "key": key,
        "device": {
            "key": key,
            "name": entry.name,
            "class": entry.device_class,
            "hardware": entry.hardware,
        },
        "runtime": _split_runtime(entry.runtime),
        "precision": entry.precision,
        "batch": entry.batch,
        "input_shape": input_shape,
        "units": "ms",
        "protocol": dict(protocol),
        "source": entry.source,
        "imported_from": {
            "importer": importer,
            "file": source.name,
            "sha256": sha256_file(source),
            **dict(extra or {}),
        },
        "citation": entry.citation,
        "license": entry.license,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latbench_version": __version__,
    }
