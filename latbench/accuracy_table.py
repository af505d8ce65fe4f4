"""NAS-Bench-201 accuracy beside latency: the table, its CSV source and its reader.

The accuracy of the 15,625 cells is NAS-Bench-201's (Dong & Yang, ICLR 2020), as
served by NATS-Bench's topology search space (Dong et al., TPAMI 2021): test accuracy
in percent after the 200-epoch schedule, **averaged over the training seeds**, on
CIFAR-10, CIFAR-100 and ImageNet16-120. It is not bundled: ``latbench fetch
nb201-accuracy`` downloads a public CSV export of it (pinned commit, SHA-256) and
``latbench import nb201-accuracy FILE`` imports a local copy; both write one
checksummed table, ``<data home>/accuracy/nb201-accuracy.parquet``.

>>> latbench.accuracy("cifar100").loc[11668, "accuracy"]   # doctest: +SKIP
73.51...

Architectures whose output is disconnected (``valid == False``) keep their published
accuracy (near chance: they were trained and output a constant).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "ACCURACY_DATASETS",
    "ACCURACY_METADATA_KEY",
    "CSV_COLUMNS",
    "TABLE_NAME",
    "AccuracyFormatError",
    "AccuracyNotFoundError",
    "accuracy",
    "accuracy_dataset_name",
    "accuracy_path",
    "accuracy_table",
    "read_nats_csv",
    "write_accuracy_table",
]

ACCURACY_DATASETS: dict[str, str] = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "imagenet16-120": "ImageNetTestAccuracy200Epochs",
}
"""Dataset name -> its column in the NATS-Bench CSV export."""
CSV_COLUMNS = (*ACCURACY_DATASETS.values(), "ArchitectureString")
"""Columns the CSV must have (others, e.g. ``UniqueString``, are ignored)."""
TABLE_NAME = "nb201-accuracy.parquet"
"""File name of the imported table inside ``<data home>/accuracy/``."""
MAX_CSV_BYTES = 64 << 20
"""Largest CSV accepted (the published one is 3 MB)."""
CITATION = (
    "Dong & Yang, NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture "
    "Search, ICLR 2020; Dong, Liu, Musial & Gabrys, NATS-Bench: Benchmarking NAS Algorithms "
    "for Architecture Topology and Size, IEEE TPAMI 2021"
)
LICENSE = (
    "NAS-Bench-201 and NATS-Bench are MIT-licensed; the CSV export has no licence of its "
    "own, so LatBench does not redistribute it"
)
NOTE = "test accuracy [%] after 200 epochs, averaged over training seeds (not seed 888)"

_ALIASES = {  # spellings with '-', '_' and spaces removed
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "imagenet16120": "imagenet16-120",
    "imagenet": "imagenet16-120",
    "imagenet16": "imagenet16-120",
}
ACCURACY_METADATA_KEY = b"latbench.accuracy"
"""The schema key of the table's metadata (source, citation, licence); it marks the file."""


class AccuracyFormatError(ValueError):
    """An accuracy CSV or table whose content is not what LatBench reads."""


class AccuracyNotFoundError(FileNotFoundError):
    """No accuracy table in the data home."""


def accuracy_dataset_name(name: str) -> str:
    """The canonical accuracy dataset name (a key of :data:`ACCURACY_DATASETS`) for
    ``name`` or one of its aliases (case, ``_`` for ``-`` and surrounding spaces
    ignored: ``CIFAR_10`` -> ``cifar10``, ``imagenet`` -> ``imagenet16-120``).
    Raises :class:`ValueError` for a non-string, and for any other name (naming the
    choices)."""
    if not isinstance(name, str):
        raise ValueError(f"accuracy dataset must be a name, got {type(name).__name__}")
    key = _ALIASES.get("".join(c for c in name.lower() if c not in "-_ \t"))
    if key is None:
        raise ValueError(
            f"unknown accuracy dataset {name!r}; choose one of {', '.join(ACCURACY_DATASETS)}"
        )
    return key


def accuracy_path(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Where the imported accuracy table lives (it may not exist)."""
    from latbench.loader import data_home as _home

    return _home(data_home) / "accuracy" / TABLE_NAME


_OTHER_SEPARATORS = ((";", "semicolons (';', as Excel writes in many locales)"), ("\t", "tabs"))
"""Field separators a CSV may use instead of commas, named in the refusal."""


def read_nats_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Parse a NATS-Bench accuracy CSV; one row per ``arch_id`` (0..15624), in order.

    Columns ``arch_id``, ``nb201_index``, ``arch_str``, ``valid`` and one per
    :data:`ACCURACY_DATASETS` name (percent). Raises :class:`AccuracyFormatError`
    naming the line and the problem for a missing column, an unparseable architecture
    or accuracy, a repeated architecture, or architectures that are absent.
    """
    from latbench.space import N_ARCHS, ArchError, arch_id, is_valid, nb201_indices, parse_arch

    path = Path(path).expanduser()
    if not path.is_file():
        # a folder is the likeliest slip (the CSV's directory given instead of the file)
        what = "a directory, not the CSV file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"{path}: {what}")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise AccuracyFormatError(f"{path}: {size} bytes, larger than any accuracy CSV")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AccuracyFormatError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise AccuracyFormatError(f"{path}: empty file") from None
    except csv.Error as exc:
        raise AccuracyFormatError(f"{path}: line 1: {exc}") from None
    header = [h.strip() for h in header]
    absent = [c for c in CSV_COLUMNS if c not in header]
    if absent and len(header) == 1:  # one field: the columns split by something else
        sep = next(((c, n) for c, n in _OTHER_SEPARATORS if c in header[0]), None)
        if sep is not None:
            raise AccuracyFormatError(
                f"{path}: line 1: fields separated by {sep[1]}, not commas; save it as a"
                " comma-separated CSV (with '.' as the decimal mark) and import that"
            )
    if absent:
        raise AccuracyFormatError(
            f"{path}: line 1: no column(s) {', '.join(absent)}; not a NATS-Bench accuracy CSV"
        )
    col = {c: header.index(c) for c in CSV_COLUMNS}
    values = np.full((N_ARCHS, len(ACCURACY_DATASETS)), np.nan)
    seen = np.zeros(N_ARCHS, dtype=np.int64)  # line number where each arch_id was found
    rows = 0
    try:
        for line, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a trailing blank line
            rows += 1
            if len(row) != len(header):
                raise AccuracyFormatError(
                    f"{path}: line {line}: {len(row)} fields, the header has {len(header)}"
                )
            try:
                aid = arch_id(parse_arch(row[col["ArchitectureString"]]))
            except ArchError as exc:
                raise AccuracyFormatError(f"{path}: line {line}: {exc}") from None
            if seen[aid]:
                raise AccuracyFormatError(
                    f"{path}: line {line}: architecture {row[col['ArchitectureString']]!r}"
                    f" repeats line {seen[aid]}"
                )
            seen[aid] = line
            for j, name in enumerate(ACCURACY_DATASETS.values()):
                values[aid, j] = _percent(row[col[name]], path, line, name)
    except csv.Error as exc:
        raise AccuracyFormatError(f"{path}: line {reader.line_num}: {exc}") from None
    missing = np.flatnonzero(seen == 0)
    if missing.size:
        from latbench.space import format_arch, from_id

        raise AccuracyFormatError(
            f"{path}: {missing.size} of {N_ARCHS} architectures missing ({rows} rows), e.g."
            f" {format_arch(from_id(int(missing[0])))}"
        )
    for j, name in enumerate(ACCURACY_DATASETS.values()):
        if values[:, j].max() <= 1.0:  # NAS-Bench-201's best cells reach 70-94 %
            raise AccuracyFormatError(
                f"{path}: every {name} is at most 1.0: fractions, not the percentages the"
                " published table holds; multiply them by 100"
            )
    ids = np.arange(N_ARCHS)
    from latbench.space import from_id

    out = pd.DataFrame(
        {
            "arch_id": ids.astype(np.int32),
            "nb201_index": nb201_indices().astype(np.int32),
            "valid": np.array([is_valid(from_id(int(i))) for i in ids]),
        }
    )
    for j, name in enumerate(ACCURACY_DATASETS):
        out[name] = values[:, j]
    return out


def _percent(text: str, path: Path, line: int, column: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise AccuracyFormatError(
            f"{path}: line {line}: {column} {text[:40]!r} is not a number"
        ) from None
    if not math.isfinite(v) or not 0.0 <= v <= 100.0:
        raise AccuracyFormatError(f"{path}: line {line}: {column} {v!r} is not a percentage")
    return v


def write_accuracy_table(
    frame: pd.DataFrame,
    source: dict[str, Any],
    data_home: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`read_nats_csv`'s frame atomically, with checksums, into the data home.

    ``source`` (file name, SHA-256, URL...) is recorded in the metadata. Raises
    :class:`FileExistsError` if a table exists and ``overwrite`` is false.
    """
    from latbench import __version__
    from latbench.dataset import atomic_path
    from latbench.integrity import write_verified

    target = accuracy_path(data_home)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass --overwrite (overwrite=True) to replace it"
        )
    meta = {
        "what": "NAS-Bench-201 accuracy",
        "note": NOTE,
        "datasets": list(ACCURACY_DATASETS),
        "source": dict(source),
        "citation": CITATION,
        "license": LICENSE,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latbench_version": __version__,
    }
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({ACCURACY_METADATA_KEY: json.dumps(meta).encode()})
    with atomic_path(target) as tmp:
        write_verified(table, tmp, compression="zstd")
    return target


def accuracy_table(data_home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The imported table (all datasets), ``arch_id`` index; metadata in ``attrs``.

    Raises :class:`AccuracyNotFoundError` naming how to get it, and
    :class:`AccuracyFormatError` for a damaged or edited file.
    """
    path = accuracy_path(data_home)
    if not path.is_file():
        raise AccuracyNotFoundError(
            f"no NAS-Bench-201 accuracy table in {path.parent}; get it with"
            " `latbench fetch nb201-accuracy` (or `latbench import nb201-accuracy nats_bench.csv`)"
        )
    st = path.stat()
    out = _read_table(str(path), st.st_mtime_ns, st.st_size)
    df = out.copy()
    df.attrs = {"metadata": json.loads(json.dumps(out.attrs["metadata"])), "path": str(path)}
    return df


@lru_cache(maxsize=4)
def _read_table(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    from latbench.integrity import INTEGRITY_KEY, IntegrityError, read_verified
    from latbench.space import N_ARCHS, nb201_indices

    try:
        table = read_verified(path)
    except IntegrityError as exc:
        raise AccuracyFormatError(str(exc)) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise AccuracyFormatError(f"{path}: unreadable accuracy table (corrupt?): {exc}") from None
    meta = table.schema.metadata or {}
    if INTEGRITY_KEY not in meta or ACCURACY_METADATA_KEY not in meta:
        raise AccuracyFormatError(
            f"{path}: not a LatBench accuracy table; reimport it: latbench import nb201-accuracy"
            " FILE --overwrite"
        )
    df = table.to_pandas()
    need = ["arch_id", "nb201_index", "valid", *ACCURACY_DATASETS]
    if list(df.columns) != need or len(df) != N_ARCHS:
        raise AccuracyFormatError(f"{path}: unexpected columns or rows; reimport it")
    if not (
        np.array_equal(df["arch_id"].to_numpy(), np.arange(N_ARCHS))
        and np.array_equal(df["nb201_index"].to_numpy(), nb201_indices())
    ):
        raise AccuracyFormatError(f"{path}: rows are not in arch_id order; reimport it")
    df = df.set_index("arch_id", drop=False)
    df.index.name = None
    df.attrs["metadata"] = json.loads(meta[ACCURACY_METADATA_KEY])
    df.attrs["path"] = path
    return df


def accuracy(
    dataset: str = "cifar100", *, data_home: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """Accuracy on ``dataset`` (``cifar10``, ``cifar100``, ``imagenet16-120``) by ``arch_id``.

    One row per architecture (index ``arch_id``, 0..15624): columns ``accuracy``
    (percent, seed-averaged, 200 epochs), ``valid``, ``nb201_index``. ``attrs`` holds
    ``dataset`` and the table's ``metadata`` (source, citation, licence).
    """
    name = accuracy_dataset_name(dataset)
    table = accuracy_table(data_home)
    out = pd.DataFrame(
        {
            "accuracy": table[name].to_numpy(),
            "valid": table["valid"].to_numpy(),
            "nb201_index": table["nb201_index"].to_numpy(),
        },
        index=pd.Index(table["arch_id"].to_numpy(dtype=np.int64), name="arch_id"),
    )
    out.attrs = {"dataset": name, "metadata": table.attrs["metadata"], "path": table.attrs["path"]}
    return out
