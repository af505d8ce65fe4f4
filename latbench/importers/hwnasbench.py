"""Import HW-NAS-Bench's NAS-Bench-201 part (``HW-NAS-Bench-v1_0.pickle``, MIT).

The file (RICE-EIC / GATECH-EIC ``HW-NAS-Bench``; read by its ``hw_nas_bench_api``) is
a pickle of ``{"nasbench201": {dataset: {metric: values, "config": configs}}, "fbnet":
...}``: ``dataset`` is ``cifar10``, ``cifar100`` or ``ImageNet16-120``; ``values[i]``
is the figure of NAS-Bench-201 architecture index ``i`` (15,625 of them) and
``configs[i]`` a dict whose ``arch_str`` names that architecture. Metrics:
``edgegpu_latency``/``_energy`` (Jetson TX2), ``raspi4_latency``, ``edgetpu_latency``,
``pixel3_latency``, ``eyeriss_latency``/``_energy``, ``fpga_latency``/``_energy``;
latency in ms, energy in mJ.

One dataset per device (``hwnasbench-<device>``), with an ``energy_mj`` column where
the device has energy figures. The three image datasets share their latencies, so one
(CIFAR-10) is imported; the metadata says whether the others were identical in the
file read. HW-NAS-Bench timed unpruned networks (every cell op, including ops that
cannot reach the output), so the 341 invalid architectures keep their published
latency with ``status="invalid"``, as for HELP. A non-positive or non-finite figure
(HW-NAS-Bench uses ``-1``) becomes ``status="failed"`` with the value in ``error``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench.dataset import LATENCY_RANGE_MS, skeleton_frame
from latbench.importers.common import (
    Imported,
    ImportFormatError,
    catalog_metadata,
    load_source_pickle,
    select_keys,
    source_problem,
)
from latbench.importers.registry import compact_name
from latbench.safepickle import (
    NUMPY_SCALARS,
    Limits,
    UnsafePickleError,
    register_buildable,
    short_repr,
)
from latbench.space import N_ARCHS, ArchError, arch_id, parse_arch

__all__ = [
    "DATASET",
    "DEVICES",
    "ENERGY_RANGE_MJ",
    "FILE_NAME",
    "HWNASBENCH_GLOBALS",
    "hwnasbench_key",
    "read_hwnasbench",
]

FILE_NAME = "HW-NAS-Bench-v1_0.pickle"
"""The published file's name."""
DATASET = "cifar10"
"""The image dataset whose entries are imported (the others share its latencies)."""
_OTHER_DATASETS = ("cifar100", "ImageNet16-120")
DEVICES: Mapping[str, bool] = {
    "edgegpu": True,
    "raspi4": False,
    "edgetpu": False,
    "pixel3": False,
    "eyeriss": True,
    "fpga": True,
}
"""HW-NAS-Bench device -> whether it publishes energy (mJ) as well as latency (ms)."""
ENERGY_RANGE_MJ = (1e-4, 1e7)
"""Energies an import accepts, in mJ per inference (as for latency: outside is corruption)."""
LIMITS = Limits(max_bytes=128 << 20, max_ops=8_000_000, max_items=1 << 20, max_depth=16)
"""What the HW-NAS-Bench pickle may cost: its NAS-Bench-201 and FBNet parts are dicts,
lists and tuples of numbers, strings and numpy arrays, at most a few levels deep."""


class _NDArrayName:
    """Stands for ``numpy.ndarray`` in the pickle: a name to check, never a class to call."""


@register_buildable
class _Array:
    """A numeric numpy array rebuilt from a pickle's raw bytes, nothing else."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # ndarray.__reduce__'s state: (version, shape, dtype, is_fortran, raw bytes)
        ok = type(state) is tuple and len(state) == 5 and type(state[1]) is tuple
        ok = ok and all(type(n) is int and 0 <= n <= 1 << 24 for n in state[1])
        ok = ok and type(state[3]) is bool and type(state[4]) is bytes
        dtype = getattr(state[2], "dtype", None) if ok else None
        if not ok or not callable(dtype):  # the dtype must be safepickle's guarded stand-in
            raise UnsafePickleError("numpy array state refused: only numeric arrays of raw bytes")
        dt = dtype()
        shape = state[1]
        if len(state[4]) != int(np.prod(shape)) * dt.itemsize:
            raise ImportFormatError(f"numpy array of shape {shape}: wrong number of bytes")
        order = "F" if state[3] else "C"
        self.value = np.frombuffer(state[4], dtype=dt).reshape(shape, order=order).copy()


def _ndarray_reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    # ndarray.__reduce__ emits _reconstruct(ndarray, (0,), b'b'), then BUILD with the
    # dtype and raw bytes; the dtype comes through safepickle's guarded numpy.dtype,
    # which refuses object dtypes, so no pickled Python object can ride inside.
    if cls is not _NDArrayName or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError(f"numpy array reconstruction {cls!r}{shape!r} refused")
    return _Array()


HWNASBENCH_GLOBALS: Mapping[tuple[str, str], Any] = {
    **NUMPY_SCALARS,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy", "ndarray"): _NDArrayName,
}
"""Allow-list for HW-NAS-Bench's pickle: numeric numpy scalars and arrays, no objects.

Its values were saved with ``np.array``/``np.save``, so a copy may hold numpy arrays
of numbers or plain lists; anything else (an object array, a class) is refused.
"""

_PROTOCOL = {
    "runs": None,
    "note": "as published by HW-NAS-Bench (measured on edgegpu, raspi4, edgetpu, pixel3;"
    " estimated by simulators for eyeriss and fpga); per-architecture runs not published",
    "networks": "unpruned NAS-Bench-201 networks (every cell op is executed)",
    "reference": "HW-NAS-Bench (ICLR 2021), HW-NAS-Bench-v1_0.pickle",
}


def hwnasbench_key(device: str) -> str:
    """Catalog key of an HW-NAS-Bench device (``raspi4`` -> ``hwnasbench-raspi4``)."""
    return f"hwnasbench-{device}"


def _get(obj: Any, key: str, what: str) -> Any:
    if not isinstance(obj, Mapping):
        raise ImportFormatError(f"{what}: expected a dict, got {type(obj).__name__}")
    if key not in obj:
        have = [short_repr(k, 40) for k in itertools.islice(obj, 8)]
        more = f" and {len(obj) - 8} more" if len(obj) > 8 else ""
        raise ImportFormatError(
            f"{what}: no {key!r} entry (it has: {', '.join(have) or 'nothing'}{more})"
        )
    return obj[key]


def _values(raw: Any, what: str, limits: tuple[float, float] | None = None) -> np.ndarray:
    """A 15,625-long float array from a list/tuple/array of numbers.

    With ``limits`` every positive finite value must lie inside them (non-positive
    or non-finite ones are HW-NAS-Bench's "no figure" and become failed rows).
    """
    if isinstance(raw, _Array):
        raw = raw.value
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "biuf":
            raise ImportFormatError(f"{what}: array of dtype {raw.dtype}, not numbers")
        arr = raw.astype(np.float64).reshape(-1)
    elif isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        for i, v in enumerate(raw):
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                raise ImportFormatError(f"{what}: entry {i} is {short_repr(v)}, not a number")
        arr = np.asarray(raw, dtype=np.float64)
    else:
        raise ImportFormatError(f"{what}: expected a list of numbers, got {type(raw).__name__}")
    if len(arr) != N_ARCHS:
        raise ImportFormatError(f"{what}: {len(arr)} values, expected {N_ARCHS}")
    if limits is not None:
        lo, hi = limits
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(arr) & (arr > 0) & ((arr < lo) | (arr > hi))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ImportFormatError(
                f"{what}: entry {i} is {float(arr[i])!r}, outside the plausible {lo:g}..{hi:g}"
            )
    return arr


def _arch_ids(configs: Any, what: str) -> np.ndarray:
    """``arch_id`` per NAS-Bench-201 index from the ``config`` list."""
    if not isinstance(configs, Sequence) or len(configs) != N_ARCHS:
        n = len(configs) if isinstance(configs, Sequence) else type(configs).__name__
        raise ImportFormatError(f"{what}: expected {N_ARCHS} network configs, got {n}")
    out = np.empty(N_ARCHS, dtype=np.int64)
    for i, cfg in enumerate(configs):
        arch_str = _get(cfg, "arch_str", f"{what}[{i}]")
        try:
            out[i] = arch_id(parse_arch(arch_str))
        except (ArchError, TypeError, ValueError) as exc:
            raise ImportFormatError(f"{what}[{i}]: {exc}") from None
    if len(np.unique(out)) != N_ARCHS:
        raise ImportFormatError(f"{what}: two indices name the same architecture")
    return out


def _frame(to_arch: np.ndarray, latency: np.ndarray, energy: np.ndarray | None) -> pd.DataFrame:
    df = skeleton_frame()
    lat = np.full(N_ARCHS, np.nan)
    lat[to_arch] = latency
    nb201 = np.empty(N_ARCHS, dtype=np.int64)
    nb201[to_arch] = np.arange(N_ARCHS)
    good = np.isfinite(lat) & (lat > 0)
    df["nb201_index"] = pd.array(nb201, dtype="Int32")
    df["latency_ms"] = np.where(good, lat, np.nan)
    df["status"] = np.where(~good, "failed", np.where(df["valid"], "ok", "invalid"))
    df["error"] = pd.array(
        [None if g else f"published latency {float(v)!r}" for g, v in zip(good, lat, strict=True)],
        dtype=df["error"].dtype,
    )
    df["timed_arch_id"] = df["arch_id"].astype("Int32").where(good, pd.NA)
    if energy is not None:
        e = np.full(N_ARCHS, np.nan)
        e[to_arch] = energy
        df["energy_mj"] = np.where(np.isfinite(e) & (e > 0), e, np.nan)
    return df


def _shared_with(nb201: Mapping[str, Any], metric: str, values: np.ndarray) -> dict[str, Any]:
    same, differ = [], []
    for other in _OTHER_DATASETS:
        raw = nb201.get(other, {}).get(metric) if isinstance(nb201.get(other), Mapping) else None
        if raw is None:
            continue
        try:
            o = _values(raw, other)
        except ImportFormatError:
            differ.append(other)
            continue
        (same if np.allclose(o, values, equal_nan=True, rtol=1e-9) else differ).append(other)
    return {"identical_in": same, "differs_in": differ}


def _published_file(folder: Path) -> Path:
    """The file in ``folder`` that is HW-NAS-Bench's, in any case, ``.pkl`` or `` (1)``."""
    if (folder / FILE_NAME).exists():
        return folder / FILE_NAME
    want = compact_name(FILE_NAME)
    found = sorted(p for p in folder.iterdir() if compact_name(p.name) == want)
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:4])
        raise ImportFormatError(f"{folder}: {names} all look like {FILE_NAME}; keep one of them")
    return found[0] if found else folder / FILE_NAME


def read_hwnasbench(
    path: str | os.PathLike[str], keys: Collection[str] | None = None
) -> list[Imported]:
    """Parse ``HW-NAS-Bench-v1_0.pickle`` (or a folder holding it) into six datasets.

    ``keys`` restricts the import (``hwnasbench-raspi4``, ...). Raises
    :class:`ImportFormatError` naming the first entry that breaks the documented
    layout, :class:`~latbench.safepickle.UnsafePickleError` for a pickle that names
    anything but numeric numpy data.
    """
    path = Path(path)
    if path.is_dir():
        path = _published_file(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (HW-NAS-Bench's file is {FILE_NAME})")
    problem = source_problem(path, LIMITS.max_bytes)
    if problem is not None:  # before opening: a FIFO would block
        raise ImportFormatError(f"{path}: {problem}")
    available = {hwnasbench_key(d): path for d in DEVICES}
    selected = select_keys(available, keys, path)
    root = load_source_pickle(path, HWNASBENCH_GLOBALS, LIMITS)
    nb201 = _get(root, "nasbench201", str(path))
    data = _get(nb201, DATASET, f"{path}: nasbench201")
    where = f"{path}: nasbench201/{DATASET}"
    to_arch = _arch_ids(_get(data, "config", where), f"{where}/config")
    out = []
    for device, has_energy in DEVICES.items():
        key = hwnasbench_key(device)
        if key not in selected:
            continue
        metric = f"{device}_latency"
        latency = _values(_get(data, metric, where), f"{where}/{metric}", LATENCY_RANGE_MS)
        energy = None
        if has_energy and f"{device}_energy" in data:
            energy = _values(data[f"{device}_energy"], f"{where}/{device}_energy", ENERGY_RANGE_MJ)
        df = _frame(to_arch, latency, energy)
        failed = int((df["status"] == "failed").sum())
        meta = catalog_metadata(
            key,
            path,
            "hwnasbench",
            protocol=_PROTOCOL,
            input_shape=[1, 3, 32, 32],
            extra={
                "dataset": DATASET,
                "metric": metric,
                "energy_metric": f"{device}_energy" if energy is not None else None,
                "units": "ms (latency), mJ (energy)",
                "latencies_shared": _shared_with(nb201, metric, latency),
                "failed_entries": failed,
            },
        )
        meta["networks"] = "unpruned: HW-NAS-Bench timed every cell op, reachable or not"
        meta["invalid_rows"] = "status 'invalid' rows keep HW-NAS-Bench's published latency_ms"
        if energy is not None:
            meta["energy_units"] = "mJ per inference"
        out.append(Imported(key, df, meta, path))
    return out
