"""Read untrusted pickles: a restricted unpickler that resolves only allow-listed globals.

Published latency files are pickles, and unpickling runs whatever callable a pickle
names. :func:`load_pickle` resolves a global only when ``(module, name)`` is in the
``allowed`` mapping (nothing by default) and refuses everything else with
:class:`UnsafePickleError` before any call happens. :data:`NUMPY_SCALARS` is the
allow-list of the LatBench release pickles (numpy float scalars, DESIGN §7), and
:func:`load_torch_zip` reads a ``torch.save`` zip of plain Python data without PyTorch.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NUMPY_SCALARS",
    "CorruptPickleError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "load_pickle",
    "load_torch_zip",
]

MAX_ZIP_MEMBER_BYTES = 1 << 30
"""Largest ``data.pkl`` :func:`load_torch_zip` inflates (guards against zip bombs)."""


class UnsafePickleError(ValueError):
    """A pickle that references a global (or persistent id) outside the allow-list."""


class CorruptPickleError(ValueError):
    """A pickle or torch zip that is truncated, corrupt or not a pickle at all."""


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    # The real constructor accepts object dtypes and arbitrary payloads; the release
    # files only ever hold plain numeric scalars built from raw bytes.
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biuf":
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} refused: only numeric dtypes")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CorruptPickleError(
            f"numpy scalar payload must be {dtype.itemsize} bytes, got {type(data).__name__}"
        )
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str) or len(spec) > 3:
        raise UnsafePickleError(f"numpy dtype {spec!r} refused: only simple type codes")
    dt = np.dtype(spec, bool(align), bool(copy))
    if dt.hasobject or dt.kind not in "biuf":
        raise UnsafePickleError(f"numpy dtype {spec!r} refused: only numeric dtypes")
    return dt


NUMPY_SCALARS: Mapping[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}
"""Allow-list for pickled numpy numeric scalars, under numpy 1 and numpy 2 module names.

The callables are guarded stand-ins for the real ones that accept only numeric dtypes.
"""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``allowed`` and no persistent ids."""

    def __init__(
        self, file: Any, allowed: Mapping[tuple[str, str], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(file, **kwargs)
        self._allowed = dict(allowed or {})

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in self._allowed) or "none"
            raise UnsafePickleError(
                f"pickle references global {module}.{name}, which is not allowed"
                f" (allowed: {allowed}); refusing to load it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"pickle references external (persistent) object {pid!r}, e.g. a tensor"
            " storage; only plain Python data is allowed"
        )


# Everything a malformed opcode stream can raise from the C unpickler.
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    TypeError,
    ValueError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    struct.error,
)


def _loads(data: bytes, allowed: Mapping[tuple[str, str], Any] | None, what: str) -> Any:
    stream = io.BytesIO(data)
    try:
        obj = RestrictedUnpickler(stream, allowed).load()
    except (UnsafePickleError, CorruptPickleError) as exc:
        raise type(exc)(f"{what}: {exc}") from None
    except _CORRUPT as exc:
        raise CorruptPickleError(
            f"{what}: not a readable pickle (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None
    if stream.tell() != len(data):
        raise CorruptPickleError(
            f"{what}: {len(data) - stream.tell()} unexpected byte(s) after the pickle's end"
        )
    return obj


def load_pickle(
    source: str | os.PathLike[str] | bytes,
    allowed: Mapping[tuple[str, str], Any] | None = None,
) -> Any:
    """Unpickle a file path or ``bytes`` resolving only the globals in ``allowed``.

    ``allowed`` maps ``(module, name)`` to the object handed to the pickle (default:
    no globals at all). Raises :class:`UnsafePickleError` naming any other global and
    :class:`CorruptPickleError` for truncated or malformed data.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _loads(bytes(source), allowed, "pickle data")
    path = Path(source)
    return _loads(path.read_bytes(), allowed, str(path))


def load_torch_zip(path: str | os.PathLike[str]) -> Any:
    """Read the plain Python object saved by ``torch.save`` in zip format, without torch.

    Only pickles of built-in data (lists, dicts, numbers, strings) load: every global
    and every tensor storage is refused with :class:`UnsafePickleError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptPickleError(
            f"{path}: not a torch.save zip archive (truncated, corrupt or the legacy"
            f" non-zip format?): {exc}"
        ) from None
    with zf:
        # torch names the archive's top folder after the file it saved to ("archive"
        # by default), so accept any single top-level folder holding data.pkl.
        members = [i for i in zf.infolist() if i.filename.count("/") == 1]
        members = [i for i in members if i.filename.endswith("/data.pkl")]
        if len(members) != 1:
            raise CorruptPickleError(
                f"{path}: expected exactly one '<folder>/data.pkl' in the zip, found"
                f" {[i.filename for i in members] or 'none'}"
            )
        info = members[0]
        if info.file_size > MAX_ZIP_MEMBER_BYTES:
            raise CorruptPickleError(
                f"{path}: {info.filename} claims {info.file_size} bytes, more than the"
                f" {MAX_ZIP_MEMBER_BYTES} allowed"
            )
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptPickleError(f"{path}: cannot read {info.filename}: {exc}") from None
    return _loads(data, None, f"{path} ({info.filename})")
