"""Import NAS-Bench-201 accuracies (a NATS-Bench CSV export) into the data home.

``latbench import nb201-accuracy FILE`` parses the CSV with
:func:`latbench.accuracy_table.read_nats_csv` (every architecture once, every accuracy a
percentage) before anything is written, then writes the checksummed table
:func:`latbench.accuracy_table.accuracy_path` atomically. ``latbench fetch
nb201-accuracy`` downloads the pinned file first (:func:`latbench.importers.fetch.fetch_accuracy`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from latbench.accuracy_table import (
    MAX_CSV_BYTES,
    AccuracyFormatError,
    accuracy_path,
    read_nats_csv,
    write_accuracy_table,
)
from latbench.importers.common import sha256_file, source_problem
from latbench.importers.registry import NB201_ACCURACY

__all__ = ["AccuracyReport", "import_accuracy"]


@dataclass(frozen=True)
class AccuracyReport:
    """What an accuracy import wrote."""

    path: Path
    source: Path
    sha256: str
    published: bool
    """True when the source is byte-identical to the pinned published file."""

    def line(self) -> str:
        """One line for the command's output."""
        what = "the published file" if self.published else "NOT the published file"
        return (
            f"nb201-accuracy: 15625 architectures x 3 datasets from {self.source.name}"
            f" ({what}, SHA-256 {self.sha256[:12]}...) -> {self.path}"
        )


def import_accuracy(
    path: str | os.PathLike[str],
    data_home: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    *,
    url: str | None = None,
) -> AccuracyReport:
    """Parse the CSV at ``path`` and write the accuracy table; ``url`` is recorded as its origin."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        problem = source_problem(path, MAX_CSV_BYTES)
        if problem is not None:  # a FIFO or a .csv.gz, named as what it is
            raise AccuracyFormatError(f"{path}: {problem}")
    frame = read_nats_csv(path)
    digest = sha256_file(path)
    published = digest == NB201_ACCURACY.sha256
    source = {
        "file": path.name,
        "sha256": digest,
        "published_sha256": NB201_ACCURACY.sha256,
        "published_url": NB201_ACCURACY.url,
    }
    if url is not None:
        source["url"] = url
    from latbench.importers.common import write_lock

    table = accuracy_path(data_home)
    # one writer: a second import must not pass the exists-check while the first writes
    with write_lock(table.parent, table.stem):
        target = write_accuracy_table(frame, source, data_home, overwrite)
    return AccuracyReport(target, path, digest, published)
