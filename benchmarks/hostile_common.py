"""Hostile files and a capped subprocess runner, one copy for the campaigns and the tests.

The hostile-input campaigns (``hostile_inputs.py``, ``hostile_values.py``, ``faults.py``)
and the tests that check the same cases (through ``tests/hostile.py``) build their files
and run the commands under test with these, so a case means the same thing in both.
Needs numpy (and latbench, pandas and pyarrow for the dataset helpers).
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MEMORY_LIMIT",
    "bombed_prior",
    "forge_dataset",
    "ok_frame",
    "petabyte_npz",
    "run_capped",
]

MEMORY_LIMIT = 1 << 30
"""Bytes of address space for a child reading a hostile file (a bomb fails, never swaps)."""


def run_capped(
    cmd: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    memory: int | None = MEMORY_LIMIT,
    file_size: int | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd)`` with text output captured and the child's resources capped.

    ``memory``: address space in bytes (None: no cap); ``file_size``: largest file the
    child may write, past which a write fails with EFBIG as on a full disk (SIGXFSZ
    ignored). Raises :class:`subprocess.TimeoutExpired` past ``timeout`` seconds.
    """

    def cap() -> None:
        import resource
        import signal

        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        preexec_fn=cap,
        cwd=cwd,
    )


def ok_frame(
    n: int = 400, step: int = 25, seed: int = 0, low: float = 0.5, high: float = 5.0
) -> Any:
    """A dataset frame of architectures ``0, step, ..., step (n - 1)``: the valid ones
    ``ok``, latencies uniform in ``[low, high)`` ms (seeded), 100 runs, each timed itself."""
    from latbench.dataset import skeleton_frame

    df = skeleton_frame(list(range(0, step * n, step)))
    rng = np.random.default_rng(seed)
    ok = df["valid"].to_numpy()
    df.loc[ok, "status"] = "ok"
    df.loc[ok, "latency_ms"] = rng.uniform(low, high, int(ok.sum()))
    df.loc[ok, "runs"] = 100
    df.loc[ok, "timed_arch_id"] = df.loc[ok, "arch_id"]
    return df


def forge_dataset(
    path: Path,
    frame: Any,
    meta: Mapping[str, Any],
    mutate: Callable[[Any], Any] | None = None,
    raw_meta: bytes | None = None,
) -> Path:
    """A dataset edited after validation whose digest is recomputed, as anyone can:
    ``mutate(table) -> table``; ``raw_meta`` replaces the metadata bytes whole."""
    from latbench.dataset import DIGEST_EXCLUDES, METADATA_KEY, to_table
    from latbench.integrity import write_verified

    table = to_table(frame, dict(meta))
    if mutate is not None:
        table = mutate(table)
    if raw_meta is not None:
        table = table.replace_schema_metadata({METADATA_KEY: raw_meta})
    write_verified(table, path, exclude=DIGEST_EXCLUDES, compression="zstd")
    return path


def bombed_prior(src: Path, path: Path, shape: tuple[int, int], real: bool) -> Path:
    """The prior ``src`` with ``factors`` declaring ``shape``: deflated zeros (``real``)
    or a header alone (numpy would allocate the array before reading a byte)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "factors.npy":
                zout.writestr(info.filename, zin.read(info))
                continue
            header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1), np.float32))
            header["shape"] = shape
            with zout.open("factors.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                if real:
                    zero = bytes(1 << 22)
                    for _ in range(shape[0] * shape[1] * 4 // len(zero)):
                        fh.write(zero)
    return path


def petabyte_npz() -> bytes:
    """A ``.npz`` whose one member, ``__header__.npy``, declares 2^47 float64 (1 PB)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (1 << 47,)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__header__.npy", head.getvalue() + b"\0" * 64)
    return buf.getvalue()
