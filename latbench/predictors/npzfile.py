"""Read a predictor, prior or cache ``.npz`` that may be damaged or hostile, in bounded memory.

:func:`read_npz` checks every member's ``.npy`` header (numeric dtype, declared size)
before reading it, so a member that claims a petabyte, an object array or a
truncated archive is one :class:`NpzError` naming the file; :func:`json_header`
decodes a JSON header string of bounded size and nesting into a dict.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["MAX_MEMBER_BYTES", "MemberCheck", "NpzError", "json_header", "read_npz"]

MAX_MEMBER_BYTES = 1 << 28
"""Largest array a member may declare (256 MiB; a GCN's weights take a few MB)."""
MAX_HEADER_CHARS = 1 << 20
"""Longest JSON header string read."""
MAX_HEADER_DEPTH = 16
"""Deepest nesting of a JSON header (a real one nests three levels)."""


class NpzError(ValueError):
    """A ``.npz`` that is truncated, corrupt, or declares more than it may hold."""


MemberCheck = Callable[[zipfile.ZipInfo, tuple[int, ...], np.dtype], str | None]
"""``check(info, shape, dtype)``: a member's problem in words, or None when it may be read."""


def _member_header(fh: IO[bytes]) -> tuple[Any, ...]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _member_data(fh: IO[bytes], shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> Any:
    # numpy.lib.format.read_array's path for a file-like member, minus the header it
    # would parse a second time; the size was bounded before this reads a byte.
    count = int(np.prod(shape, dtype=np.int64))
    array = np.ndarray(count, dtype=dtype)  # np.empty mishandles zero-width strings
    size = count * dtype.itemsize
    if size:
        data = fh.read(size)
        if len(data) != size:
            raise EOFError(f"array data: expected {size} bytes, got {len(data)}")
        array[:] = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def read_npz(
    path: str | os.PathLike[str],
    what: str = "file",
    check: MemberCheck | None = None,
    max_members: int | None = None,
) -> dict[str, np.ndarray]:
    """Every array of ``path`` by name; :class:`NpzError` (one line) when damaged.

    Each member must be a numeric or string ``.npy`` (no object arrays) declaring at
    most :data:`MAX_MEMBER_BYTES` and no more than the member holds; nothing larger is
    allocated or read. The archive is opened once and each member's header read once.
    ``check`` (a file layout's own bounds) sees every member's header before its data
    is read, other members included (a non-``.npy`` one fails as not an array);
    ``max_members`` bounds their number.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if max_members is not None and len(infos) > max_members:
                raise NpzError(f"{len(infos)} members; it has at most {max_members}")
            arrays = {}
            for info in infos:
                if check is None and not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    shape, fortran, dtype = _member_header(fh)
                    problem = check(info, tuple(shape), dtype) if check else None
                    if problem:
                        raise NpzError(problem)
                    if dtype.hasobject:
                        raise NpzError(f"member {info.filename[:60]!r} is an object array")
                    size = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                    if size > MAX_MEMBER_BYTES or info.file_size > MAX_MEMBER_BYTES + 4096:
                        raise NpzError(
                            f"member {info.filename[:60]!r} declares {size:.3g} bytes"
                            f" (over {MAX_MEMBER_BYTES})"
                        )
                    if size > info.file_size:  # would allocate all, then read too little
                        raise NpzError(f"member {info.filename[:60]!r} is shorter than its shape")
                    if info.filename.endswith(".npy"):
                        arrays[info.filename[:-4]] = _member_data(fh, shape, fortran, dtype)
            return arrays
    except NpzError as exc:
        raise NpzError(f"{path}: not a LatBench {what}: {exc}") from None
    except (
        OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, MemoryError
    ) as exc:  # fmt: skip
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise NpzError(f"{path}: not a LatBench {what} (truncated or corrupt?): {text}") from None


def _depth(obj: Any) -> int:
    depth, level = 0, [obj]
    while level:  # breadth-first: no recursion on hostile nesting
        depth += 1
        if depth > MAX_HEADER_DEPTH:
            return depth
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        level = nxt
    return depth


def json_header(value: Any, path: str | os.PathLike[str], what: str = "file") -> dict[str, Any]:
    """The dict a 0-d string array holds as JSON; :class:`NpzError` (one line) otherwise."""
    try:
        text = value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else None
    except (IndexError, ValueError):
        text = None
    if not isinstance(text, str):
        raise NpzError(f"{path}: not a LatBench {what}: its header is not one JSON string")
    if len(text) > MAX_HEADER_CHARS:
        raise NpzError(f"{path}: not a LatBench {what}: header over {MAX_HEADER_CHARS} chars")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        msg = " ".join(str(exc).split())[:80] or type(exc).__name__
        raise NpzError(f"{path}: not a LatBench {what}: header is not JSON ({msg})") from None
    if not isinstance(header, dict):
        kind = type(header).__name__
        raise NpzError(f"{path}: not a LatBench {what}: header is a JSON {kind}, not an object")
    if _depth(header) > MAX_HEADER_DEPTH:
        raise NpzError(f"{path}: not a LatBench {what}: header nested too deep")
    return header
