"""Find and load datasets: bundled ``data/`` first, then the user data home.

``load(key)`` returns one row per architecture (docs/design.md §6 columns) with the file's
metadata in ``df.attrs["metadata"]``. The data home is, in order: the ``data_home``
argument, ``$LATBENCH_HOME``, or the platform's user data directory.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from latbench.catalog import CATALOG, Dataset, UnknownDatasetError, normalize_key, resolve
from latbench.dataset import read_dataset, read_metadata
from latbench.manifest import verify_file

__all__ = [
    "DatasetNotFoundError",
    "SkippedDatasetWarning",
    "bundled_dir",
    "data_home",
    "dataset_path",
    "devices",
    "home_folder",
    "load",
    "load_predicted",
    "load_wide",
]


class DatasetNotFoundError(FileNotFoundError):
    """A catalog dataset whose file is not present locally."""


class SkippedDatasetWarning(UserWarning):
    """A file in a dataset folder that is not listed: not a regular file, or unreadable."""


def _listable(p: Path) -> bool:
    """Whether ``p`` may be listed as a dataset; warns (one line) why not otherwise."""
    import warnings

    from latbench.terminal import safe

    why = None
    if any(c.isspace() and c != " " or not c.isprintable() for c in p.name):
        why = "its name holds control characters"
    elif not p.is_file():  # a FIFO would block the reader forever
        why = "not a regular file (FIFO, socket, device or folder)"
    if why:
        warnings.warn(f"{safe(p)}: {why}; skipped", SkippedDatasetWarning, stacklevel=3)
    return why is None


def data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """The user data directory where imported and measured datasets live."""
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("LATBENCH_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("latbench", appauthor=False))


def home_folder(home: str | os.PathLike[str] | None = None) -> Path:
    """:func:`data_home` before anything is written there: a :class:`ValueError` naming it
    when it exists but is not a folder (a file, a FIFO, a dangling link), where creating
    it would otherwise fail with a bare ``[Errno 17] File exists``."""
    from latbench.files import require_folder

    return require_folder(data_home(home), "the data home")


def bundled_dir() -> Path:
    """Directory of the datasets shipped inside the package."""
    return Path(str(resources.files("latbench.data")))


def _search_dirs(home: str | os.PathLike[str] | None) -> list[Path]:
    return [bundled_dir(), data_home(home)]


def _local_keys(home: str | os.PathLike[str] | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(_search_dirs(home)):  # bundled wins: inserted last
        if d.is_dir():
            for p in d.glob("*.parquet"):
                # per-layer tables and predictions are not datasets of measurements
                skip = p.name.endswith((".layers.parquet", ".predicted.parquet"))
                if not skip and not p.name.startswith(".") and _listable(p):
                    found[p.stem] = p
    return found


def _require_key(key: object) -> str:
    """``key`` if it is a string, else a one-line :class:`TypeError` saying what to pass."""
    if isinstance(key, str):
        return key
    several = isinstance(key, list | tuple | set)
    raise TypeError(
        f"a dataset key must be a string, got {type(key).__name__}"
        + ("; load_wide(keys) takes several" if several else "")
    )


def dataset_path(key: str, data_home: str | os.PathLike[str] | None = None) -> Path:
    """Path of the file for ``key`` (a catalog key, alias or measured key).

    Raises :class:`~latbench.catalog.UnknownDatasetError` with close matches for an
    unknown key and :class:`DatasetNotFoundError` naming the import command for a
    known dataset that is not present.
    """
    key = _require_key(key)
    local = _local_keys(data_home)
    for candidate in (key, normalize_key(key)):
        if candidate in local:
            return local[candidate]
    canonical = resolve(key)
    if canonical is None:
        _not_a_key(key, data_home)
        raise UnknownDatasetError(key, sorted({*CATALOG, *local, *_alias_names()}))
    if canonical in local:
        return local[canonical]
    for stem, path in sorted(local.items()):  # a file named by one of the aliases
        if resolve(stem) == canonical:
            return path
    entry = CATALOG[canonical]
    where = ", ".join(str(d) for d in _search_dirs(data_home))
    raise DatasetNotFoundError(
        f"dataset {canonical!r} ({entry.name}) is not available locally (looked in {where}). "
        f"Import it with:\n    {entry.import_command}"
    )


def _not_a_key(key: str, home: str | os.PathLike[str] | None) -> None:
    """Raise a pointed error for what users pass instead of a key: a file's path, or the
    key of a prediction (:func:`load_predicted`)."""
    from latbench.predicted import PREDICTED_SUFFIX, predicted_path

    if len(key) > 200:  # no file has such a name (with ".predicted.parquet"): asking would raise
        return
    if "/" in key or os.sep in key or Path(key).suffix == ".parquet" and Path(key).is_file():
        raise UnknownDatasetError(
            key, [], hint="load takes a dataset key; read a file with latbench.read_dataset(path)"
        )
    stem = key.removesuffix(PREDICTED_SUFFIX)
    if any(
        predicted_path(d, c).is_file()
        for d in _search_dirs(home)
        for c in (stem, normalize_key(stem))
    ):
        raise UnknownDatasetError(
            key, [], hint=f"only a few-shot prediction is here: latbench.load_predicted({stem!r})"
        )


def _alias_names() -> list[str]:
    return [normalize_key(a) for d in CATALOG.values() for a in d.aliases]


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    verify_file(path)  # bundled files are checked against data/manifest.json
    return _with_nb201_index(read_dataset(path))


def _with_nb201_index(df: pd.DataFrame) -> pd.DataFrame:
    """Fill ``nb201_index`` where the file left it null (files written before it was known)."""
    from latbench.space import nb201_indices

    col = df["nb201_index"]
    if col.isna().any():
        official = nb201_indices()[df["arch_id"].to_numpy(dtype="int64")]
        df["nb201_index"] = col.fillna(pd.Series(official, index=df.index)).astype("Int32")
    return df


INDEXES = (None, "arch_id", "nb201")
"""Values of ``load(..., index=)``: a fresh range index, ``arch_id`` or the official index."""


def _set_index(df: pd.DataFrame, index: str | None) -> pd.DataFrame:
    if index not in INDEXES:
        raise ValueError(f"index must be None, 'arch_id' or 'nb201', got {index!r}")
    if index is None:
        return df
    col = "arch_id" if index == "arch_id" else "nb201_index"
    out = df.set_index(col).sort_index()
    out.index = out.index.astype("int64")
    out.index.name = col
    return out


def _add_accuracy(
    df: pd.DataFrame, dataset: str | None, home: str | os.PathLike[str] | None
) -> pd.DataFrame:
    if dataset is None:
        return df
    from latbench.accuracy_table import accuracy as _accuracy

    acc = _accuracy(dataset, data_home=home)
    col = f"accuracy_{acc.attrs['dataset']}"
    df[col] = acc["accuracy"].reindex(df["arch_id"].to_numpy()).to_numpy()
    return df


def load(
    key: str,
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = False,
    index: str | None = None,
    accuracy: str | None = None,
) -> pd.DataFrame:
    """Load one dataset as a DataFrame (one row per architecture, ``arch_id`` order).

    ``nb201_index`` holds the official NAS-Bench-201 index of every row (filled on
    load where the file has none). ``index="nb201"`` indexes the rows by it (sorted),
    for joining with NAS-Bench-201, NATS-Bench or HELP data; ``index="arch_id"`` by
    ``arch_id``. ``accuracy="cifar100"`` (or ``cifar10``, ``imagenet16-120``) adds
    the column ``accuracy_<dataset>`` from the imported accuracy table
    (:func:`latbench.accuracy`).

    With ``download=True`` a published catalog dataset that is not present is
    downloaded, verified and imported into the data home first (as scikit-learn's
    ``fetch_*``): the LatBench release from its Google Drive folder, HELP's files from
    GitHub.

    >>> df = latbench.load("jetson_nano", download=True)  # doctest: +SKIP
    >>> df.loc[df.status == "ok", ["arch_str", "latency_ms", "flops"]]  # doctest: +SKIP
    """
    try:
        path = dataset_path(key, data_home)
    except DatasetNotFoundError:
        if not download:
            raise
        from latbench.importers.fetch import fetch_dataset

        path = fetch_dataset(key, data_home).path
    st = path.stat()
    df = _read_cached(str(path), st.st_mtime_ns, st.st_size)
    _check_holds(path, df.attrs["metadata"])
    out = df.copy()
    # deep copy: the metadata holds nested dicts that must not alias the cached frame's
    out.attrs = {"metadata": copy.deepcopy(df.attrs["metadata"]), "path": str(path)}
    return _set_index(_add_accuracy(out, accuracy, data_home), index)


def _check_holds(path: Path, metadata: dict) -> None:
    """Refuse a file named for one catalog dataset that holds another (a copy saved
    under the wrong name): its figures would be reported under the wrong device."""
    device = metadata.get("device")
    recorded = metadata.get("key") or (device.get("key") if isinstance(device, dict) else None)
    if not isinstance(recorded, str):
        return
    named, held = resolve(path.name.removesuffix(".parquet")), resolve(recorded)
    if named is not None and held is not None and named != held:
        from latbench.dataset import DatasetError

        raise DatasetError(
            f"{path}: the file holds dataset {held!r}, not {named!r} (a copy saved under"
            f" the wrong name?); import {named} again, or move the file away"
        )


def load_predicted(key: str, *, data_home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The few-shot prediction ``<key>.predicted.parquet`` (``latbench-measure --adapt``).

    One row per architecture: ``arch_id``, ``valid``, ``latency_pred_ms``, ``latency_lo_ms``,
    ``latency_hi_ms``, ``measured``; never mixed into :func:`load`'s measurements.
    """
    from latbench.predicted import PREDICTED_SUFFIX, predicted_path, read_predicted

    key = _require_key(key)
    if "/" in key or os.sep in key:
        raise DatasetNotFoundError(
            f"{key!r}: load_predicted takes a key; read a file with"
            " latbench.predicted.read_predicted(path)"
        )
    stem = key.removesuffix(PREDICTED_SUFFIX)
    for d in _search_dirs(data_home):
        for candidate in dict.fromkeys((stem, normalize_key(stem))):
            path = predicted_path(d, candidate)
            if path.is_file():
                return read_predicted(path)
    mine = normalize_key(stem) not in CATALOG  # a published dataset's key is not for yours
    raise DatasetNotFoundError(
        f"no prediction for {stem!r} in {_search_dirs(data_home)[-1]}; make one with:\n"
        f"    latbench-measure --device <profile> --adapt 10 --key"
        f" {normalize_key(stem) if mine else '<your key>'}"
    )


WIDE_VALUES = ("latency_ms", "latency_std_ms", "runs", "flops", "params")
"""The numeric columns :func:`load_wide` can tabulate."""


def load_wide(
    keys: str | Iterable[str] | None = None,
    *,
    value: str = "latency_ms",
    data_home: str | os.PathLike[str] | None = None,
    index: str = "arch_id",
    accuracy: str | None = None,
) -> pd.DataFrame:
    """Architectures x datasets table of ``value`` (default latency), ``arch_id`` index.

    ``keys=None`` takes every dataset available locally (one key is one column; two
    spellings of one dataset give one). ``value`` is one of :data:`WIDE_VALUES`.
    Entries that are not ``status="ok"`` are NaN. ``index="nb201"`` indexes rows by the official
    NAS-Bench-201 index instead; ``accuracy="cifar100"`` adds the column
    ``accuracy_cifar100`` (all 15,625 architectures, see :func:`load`).
    """
    if index not in ("arch_id", "nb201"):
        raise ValueError(f"index must be 'arch_id' or 'nb201', got {index!r}")
    if value not in WIDE_VALUES:
        raise ValueError(f"value must be one of {', '.join(WIDE_VALUES)}, got {value!r}")
    if isinstance(keys, str):
        keys = [keys]
    if keys is None:
        keys = sorted(_local_keys(data_home))
    cols, paths = {}, set()
    for key in keys:
        df = load(key, data_home=data_home)  # cached: a second spelling costs a copy
        if df.attrs["path"] in paths:  # two spellings of one dataset: one column
            continue
        series = df[value].where(df["status"] == "ok").astype("float64")
        series.index = df["arch_id"].to_numpy()
        cols[key] = series
        paths.add(df.attrs["path"])
    wide = pd.DataFrame(cols)
    if accuracy is not None:
        from latbench.accuracy_table import accuracy as _accuracy

        acc = _accuracy(accuracy, data_home=data_home)
        wide = wide.reindex(wide.index.union(acc.index))
        wide[f"accuracy_{acc.attrs['dataset']}"] = acc["accuracy"]
    wide.index.name = "arch_id"
    if index == "nb201":
        from latbench.space import nb201_indices

        wide.index = pd.Index(
            nb201_indices()[wide.index.to_numpy(dtype="int64")], name="nb201_index"
        )
        wide = wide.sort_index()
    return wide


def _measured_entry(key: str, path: Path) -> Dataset:
    import warnings

    from latbench.terminal import safe_line

    try:
        meta = read_metadata(path)
    except ValueError as exc:  # one bad file is reported on its own, never breaks the list
        warnings.warn(safe_line(str(exc)), SkippedDatasetWarning, stacklevel=3)
        return Dataset(key, "(unreadable: see the warning)", "", "", "", "", "unreadable")
    dev = meta.get("device", {}) if isinstance(meta.get("device"), dict) else {}
    rt = meta.get("runtime", {}) if isinstance(meta.get("runtime"), dict) else {}
    return Dataset(
        key=key,
        name=str(dev.get("name", key)),
        device_class=str(dev.get("class", "")),
        hardware=str(dev.get("hardware", "")),
        runtime=" ".join(str(x) for x in (rt.get("name", ""), rt.get("version", "")) if x),
        precision=str(meta.get("precision", "")),
        source=str(meta.get("source", "measured")),
        citation=str(meta.get("citation", "")),
        license=str(meta.get("license", "")),
    )


def devices(data_home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every known dataset: catalog entries plus datasets found on disk.

    Columns: key, name, class, hardware, runtime, precision, source, aliases,
    available, bundled, path.
    """
    local = _local_keys(data_home)
    entries = dict(CATALOG)
    found: dict[str, Path] = {}  # canonical key -> file; a file named by an alias counts
    for key, path in local.items():
        canonical = resolve(key)
        if canonical is None and key not in entries:
            entries[key] = _measured_entry(key, path)
        if canonical is None or canonical == key:
            found[key] = path
        else:
            found.setdefault(canonical, path)
    rows = []
    for key, d in entries.items():
        path = found.get(key)
        rows.append(
            {
                "key": key,
                "name": d.name,
                "class": d.device_class,
                "hardware": d.hardware,
                "runtime": d.runtime,
                "precision": d.precision,
                "source": d.source,
                "aliases": ", ".join(d.aliases),
                "available": path is not None,
                "bundled": d.bundled,
                "path": str(path) if path else None,
            }
        )
    return pd.DataFrame(rows)
