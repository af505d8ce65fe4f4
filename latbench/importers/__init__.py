"""Importers: turn published latency files into LatBench datasets in the data home.

>>> from latbench.importers import import_path
>>> import_path("eagle", "~/Downloads/LatBench")          # doctest: +SKIP

Every importer parses and validates all the files it was given before anything is
written, and each dataset file is written atomically, so a bad source leaves the data
home as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from latbench.dataset import DatasetError, to_table, write_dataset
from latbench.importers.common import Imported, ImportFormatError, KeyLockedError, write_lock
from latbench.importers.eagle import read_eagle
from latbench.importers.help import read_help
from latbench.importers.hwnasbench import read_hwnasbench
from latbench.keys import InvalidKeyError
from latbench.keys import validate_key as _validate_key
from latbench.loader import data_home as _data_home

__all__ = [
    "IMPORTERS",
    "KEYED_IMPORTERS",
    "ImportFormatError",
    "ImportReport",
    "KeyLockedError",
    "Imported",
    "import_datasets",
    "import_path",
    "read_source",
]

Reader = Callable[[str | os.PathLike[str], Collection[str] | None], list[Imported]]

IMPORTERS: dict[str, Reader] = {
    "eagle": read_eagle,
    "help": read_help,
    "hwnasbench": read_hwnasbench,
}
"""Importer name -> reader ``(path, keys) -> [Imported]``."""

KEYED_IMPORTERS = frozenset({"eagle"})
"""Importers that accept ``key=`` (import one unrecognised file under a key you give)."""


@dataclass(frozen=True)
class ImportReport:
    """What one import wrote: dataset key, output file, source and rows per status."""

    key: str
    path: Path
    source: Path
    counts: dict[str, int]
    warnings: tuple[str, ...] = ()
    """The metadata's ``warnings`` (e.g. a file that is not the published one)."""


def read_source(
    importer: str,
    path: str | os.PathLike[str],
    keys: Collection[str] | None = None,
    *,
    key: str | None = None,
) -> list[Imported]:
    """Parse ``path`` with the named importer without writing anything.

    ``key`` (eagle only) imports a single file that is not a published release file
    under that dataset key.
    """
    try:
        reader = IMPORTERS[importer]
    except KeyError:
        raise ValueError(
            f"unknown importer {importer!r}; known: {', '.join(sorted(IMPORTERS))}"
        ) from None
    if key is None:
        return reader(Path(path).expanduser(), keys)
    if importer not in KEYED_IMPORTERS:
        raise ValueError(f"--key is not supported by the {importer} importer")
    return reader(Path(path).expanduser(), keys, key=key)  # type: ignore[call-arg]


def import_datasets(
    importer: str,
    path: str | os.PathLike[str],
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
    *,
    key: str | None = None,
) -> list[ImportReport]:
    """Import ``path`` into ``<data_home>/<key>.parquet`` files; one report per dataset.

    Raises :class:`FileExistsError` (before writing anything) when a target exists
    and ``overwrite`` is false.
    """
    key = None if key is None else _validate_key(key, shadow_check=True)  # issue 27 policy
    parsed = read_source(importer, path, keys, key=key)
    for item in parsed:  # what write_dataset would refuse, refused before any write
        try:
            # the final key: a HELP file name or a normalized --key ('x.layers.pkl' ->
            # 'x.layers') must not name a companion file, a hidden or a bundled one
            _validate_key(item.key, f"dataset key (from {item.source.name})", shadow_check=True)
        except InvalidKeyError as exc:
            raise ImportFormatError(f"{exc}; nothing imported") from None
        try:
            to_table(item.frame, item.metadata)
        except DatasetError as exc:
            raise ImportFormatError(f"{item.source}: nothing imported: {exc}") from None
    home = _data_home(data_home)
    targets = [home / f"{item.key}.parquet" for item in parsed]
    from latbench.progress import progress

    with contextlib.ExitStack() as locks:
        for item in sorted(parsed, key=lambda it: it.key):
            locks.enter_context(write_lock(home, item.key))
        existing = [str(t) for t in targets if t.exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"dataset file(s) already exist: {', '.join(existing)}; pass overwrite=True"
                " (--overwrite) to replace them"
            )
        reports = []
        pairs = list(zip(parsed, targets, strict=True))
        # HELP's 27 devices or the release's 13 files take a while: show progress then
        for item, target in progress(pairs, f"writing {importer} datasets", unit="dataset",
                                     enabled=len(pairs) > 3):  # fmt: skip
            write_dataset(item.frame, target, item.metadata)
            notes = tuple(str(w) for w in item.metadata.get("warnings", ()))
            reports.append(ImportReport(item.key, target, item.source, item.counts(), notes))
    return reports


def import_path(
    importer: str,
    path: str | os.PathLike[str],
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Import ``path`` with the named importer; returns the dataset files written."""
    return [r.path for r in import_datasets(importer, path, data_home, keys, overwrite)]
