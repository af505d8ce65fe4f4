"""Read untrusted pickles: a restricted unpickler that resolves only allow-listed globals.

Published latency files are pickles, and unpickling runs whatever callable a pickle
names. :func:`load_pickle` resolves a global only when ``(module, name)`` is in the
``allowed`` mapping (nothing by default) and refuses everything else with
:class:`UnsafePickleError` before any call happens. :data:`NUMPY_SCALARS` is the
allow-list of the LatBench release pickles (numpy float scalars, docs/design.md §7), and
:func:`load_torch_zip` reads a ``torch.save`` zip of plain Python data without PyTorch.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import reprlib
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
    "short_repr",
]

MAX_ZIP_MEMBER_BYTES = 1 << 28
"""Largest ``data.pkl`` :func:`load_torch_zip` inflates (guards against zip bombs)."""


class UnsafePickleError(ValueError):
    """A pickle that references a global (or persistent id) outside the allow-list."""


class CorruptPickleError(ValueError):
    """A pickle or torch zip that is truncated, corrupt or not a pickle at all."""


_BUILTIN_CODES = frozenset(["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"])
_BYTE_ORDERS = frozenset("<>|=")
_STRUCT_CODES = {
    "b1": "?", "f2": "e", "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
    "u1": "B", "u2": "H", "u4": "I", "u8": "Q",
}  # fmt: skip
MAX_DEPTH = 64
"""Deepest container nesting a pickle may build (hashing deeper tuples crashes CPython)."""
MAX_INT_BYTES = 16
"""Largest integer a pickle may hold, in bytes of two's complement (128 bits)."""


class _Dtype:
    """What the pickle's ``numpy.dtype(...)`` call builds: a builtin type code, no more.

    The real ``numpy.dtype`` accepts a BUILD state that adds a subarray shape or
    fields, after which ``scalar`` reads past its buffer. This stand-in accepts only
    the state numpy writes for a builtin dtype and keeps its byte order.
    """

    __slots__ = ("_dt", "_unpack", "code", "order")

    def __init__(self, code: str) -> None:
        self.code, self.order, self._dt = code, "=", None
        self._unpack: Any = None

    def __setstate__(self, state: Any) -> None:
        ok = (
            type(state) is tuple
            and len(state) == 8
            and type(state[1]) is str
            and state[1] in _BYTE_ORDERS
            and all(type(x) is int for x in (state[0], *state[5:]))
            and (state[0], *state[2:]) == (3, None, None, None, -1, -1, 0)
        )
        if not ok:
            raise UnsafePickleError(
                f"numpy dtype state {short_repr(state)} refused: only builtin scalar"
                " dtypes (no subarray shape, fields or custom sizes)"
            )
        self.order, self._dt = state[1], None

    def __repr__(self) -> str:
        return f"numpy.dtype({self.code!r})"

    def dtype(self) -> np.dtype:
        if self._dt is None:
            dt = np.dtype(self.code)
            self._dt = dt if self.order in "=|" else dt.newbyteorder(self.order)
            # struct reads the bytes exactly as numpy would, without an array per call
            order = {"|": "<", "=": "="}.get(self.order, self.order)
            self._unpack = struct.Struct(order + _STRUCT_CODES[self.code]).unpack
        return self._dt

    def scalar(self, data: bytes) -> Any:
        dt = self.dtype()
        return dt.type(self._unpack(data)[0])


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    # The real constructor accepts object dtypes and arbitrary payloads; the release
    # files only ever hold plain numeric scalars built from raw bytes.
    if type(dtype) is not _Dtype:
        raise UnsafePickleError(
            f"numpy scalar of dtype {short_repr(dtype)} refused: only builtin numeric dtypes"
        )
    dt = dtype.dtype()
    if type(data) is not bytes or len(data) != dt.itemsize:
        raise CorruptPickleError(
            f"numpy scalar payload must be {dt.itemsize} bytes, got {type(data).__name__}"
            + (f" of {len(data)} bytes" if isinstance(data, bytes) else "")
        )
    return dtype.scalar(data)


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = False) -> _Dtype:
    # ``copy`` is ignored: the stand-in is never shared with numpy's dtype cache.
    if type(spec) is not str or spec not in _BUILTIN_CODES:
        raise UnsafePickleError(
            f"numpy dtype {short_repr(spec)} refused: only builtin numeric type codes"
            f" ({', '.join(sorted(_BUILTIN_CODES))})"
        )
    if type(align) not in (bool, int) or align not in (0, 1):
        raise UnsafePickleError(f"numpy dtype align flag {short_repr(align)} refused")
    return _Dtype(spec)


NUMPY_SCALARS: Mapping[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}
"""Allow-list for pickled numpy numeric scalars, under numpy 1 and numpy 2 module names.

The callables are guarded stand-ins for the real ones that accept only numeric dtypes.
"""


def short_repr(obj: Any, limit: int = 80) -> str:
    """``repr`` of a hostile object, cut to ``limit`` characters and a few levels deep."""
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlong = 3, limit, limit, 40
    r.maxtuple = r.maxlist = r.maxdict = r.maxset = r.maxfrozenset = 6
    try:
        text = r.repr(obj)
    except Exception:  # a repr that raises (huge int, broken object): name the type
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Opcode argument layouts (pickletools names): fixed byte counts, newline-terminated
# text, or a little-endian length prefix of 1, 4 or 8 bytes followed by that many bytes.
_FIXED = {b"K": 1, b"M": 2, b"J": 4, b"G": 8, b"\x82": 1, b"\x83": 2, b"\x84": 4}
_SIZED = {b"U": 1, b"C": 1, b"\x8c": 1, b"T": 4, b"X": 4, b"B": 4}
_SIZED8 = b"\x8d\x8e\x96"
_PUSH0 = b"N\x88\x89\x97"  # push one scalar, no argument
_EMPTY = b")]}\x8f"  # push an empty container
_TEXT_SCALAR = b"FSVP"  # one line of text -> one scalar (P: a persistent id, refused later)


# Runs of opcodes whose effect is known without simulating each one: the layouts of
# the real files. A release pickle's entries are ``(o1..o6)`` -> a float or
# ``scalar(dtype, 8 bytes)``: keys of depth 1, scalar values, whatever the memo holds.
# A HELP ``data.pkl`` is runs of floats. Such a run is modelled as a depth-1 key and
# a scalar (or one scalar): every real item is that shallow, so no depth is missed.
_PUT = rb"(?:q.|r.{4})?"
_GET = rb"(?:h.|j.{4})"
_INT = rb"(?:K.|M..|J.{4})"
_KEY = rb"\(" + _INT + rb"{6}t" + _PUT
_VALUE = rb"(?:G.{8}|" + _GET + _GET + rb"C\x08.{8}" + _PUT + rb"\x86" + _PUT + rb"R)" + _PUT
_ENTRY_RUN = re.compile(rb"(?:" + _KEY + _VALUE + rb")+", re.DOTALL)
_SCALAR_RUN = re.compile(rb"(?:G.{8}|" + _INT + rb")+", re.DOTALL)


def _check_structure(data: bytes, what: str) -> None:
    """Walk the opcode stream (no objects built) and refuse what the C unpickler or
    later code could not survive: nesting deeper than :data:`MAX_DEPTH` (hashing a
    deeply nested tuple overflows the C stack), integers over :data:`MAX_INT_BYTES`,
    and length prefixes that claim more bytes than the data holds.
    """
    # Each stack entry is the nesting depth of the object there (0 for scalars);
    # ``marks`` holds stack heights at MARK opcodes.
    stack: list[int] = []
    marks: list[int] = []
    memo: dict[int, int] = {}
    n = len(data)
    i = 0
    fixed, sized, sized8 = _FIXED, _SIZED, _SIZED8
    push0, empty, text_scalar = _PUSH0, _EMPTY, _TEXT_SCALAR
    frombytes = int.from_bytes

    def fail(msg: str, limit: bool = False) -> None:
        why = "refused" if limit else "not a readable pickle (truncated or corrupt?)"
        raise CorruptPickleError(f"{what}: {why}: {msg} (at byte {i})")

    def line() -> bytes:
        nonlocal i
        j = data.find(b"\n", i)
        if j < 0:
            fail("truncated text argument")
        out = data[i:j]
        i = j + 1
        return out

    def pop_mark() -> list[int]:
        if not marks:
            fail("container opcode without a MARK")
        k = marks.pop()
        items = stack[k:]
        del stack[k:]
        return items

    def deeper(items: list[int]) -> int:
        d = 1 + max(items, default=0)
        if d > MAX_DEPTH:
            fail(f"containers nested deeper than {MAX_DEPTH} levels", limit=True)
        return d

    try:
        while i < n:
            op = data[i : i + 1]
            i += 1
            if op in fixed:
                if op == b"G" or op == b"K":
                    i = _SCALAR_RUN.match(data, i - 1).end()
                else:  # other ints, and EXT codes (registered globals)
                    i += fixed[op]
                stack.append(0)
            elif op == b"r" or op == b"q":
                idx = frombytes(data[i : i + (4 if op == b"r" else 1)], "little")
                i += 4 if op == b"r" else 1
                memo[idx] = stack[-1]
            elif op == b"h" or op == b"j":
                idx = frombytes(data[i : i + (4 if op == b"j" else 1)], "little")
                i += 4 if op == b"j" else 1
                stack.append(memo.get(idx, 1))  # memo set inside a fast run: a key
            elif op == b"(":
                m = _ENTRY_RUN.match(data, i - 1)
                if m is None:
                    marks.append(len(stack))
                else:
                    stack += (1, 0)
                    i = m.end()
            elif op == b"t" or op == b"l" or op == b"d" or op == b"\x91":
                stack.append(deeper(pop_mark()))
            elif op == b"\x85" or op == b"\x86" or op == b"\x87":
                k = op[0] - 0x84
                if len(stack) < k:
                    fail("tuple opcode on a short stack")
                items = stack[-k:]
                del stack[-k:]
                stack.append(deeper(items))
            elif op == b"R" or op == b"\x81":  # REDUCE / NEWOBJ: callable and args -> object
                del stack[-2:]
                stack.append(0)
            elif op in sized:
                w = sized[op]
                size = frombytes(data[i : i + w], "little", signed=op == b"T")
                i += w
                if size < 0 or i + size > n:
                    fail(
                        f"a string or bytes argument claims {size} bytes, more than the data holds"
                    )
                i += size
                stack.append(0)
            elif op == b"u" or op == b"e" or op == b"\x90":
                items = pop_mark()
                stack[-1] = max(stack[-1], deeper(items))
            elif op == b"s":
                v, k2 = stack.pop(), stack.pop()
                stack[-1] = max(stack[-1], deeper([k2, v]))
            elif op == b"a":
                v = stack.pop()
                stack[-1] = max(stack[-1], deeper([v]))
            elif op in empty:
                stack.append(1)
            elif op in push0:
                stack.append(0)
            elif op == b"\x8a" or op == b"\x8b":
                w = 1 if op == b"\x8a" else 4
                size = frombytes(data[i : i + w], "little")
                i += w
                if size > MAX_INT_BYTES:
                    fail(f"an integer of {size} bytes (over {MAX_INT_BYTES})", limit=True)
                i += size
                stack.append(0)
            elif op in sized8:
                size = frombytes(data[i : i + 8], "little")
                i += 8
                if i + size > n:
                    fail(
                        f"a string or bytes argument claims {size} bytes, more than the data holds"
                    )
                i += size
                stack.append(0)
            elif op == b"I" or op == b"L":
                digits = line()
                if len(digits) > 2 * MAX_INT_BYTES + 8:
                    fail(f"an integer of {len(digits)} digits", limit=True)
                stack.append(0)
            elif op in text_scalar:
                line()
                stack.append(0)
            elif op == b"b":  # BUILD: the state is consumed, the object stays
                stack.pop()
            elif op == b"\x94":
                memo[len(memo)] = stack[-1]
            elif op == b"p":
                memo[int(line())] = stack[-1]
            elif op == b"g":
                stack.append(memo.get(int(line()), 1))
            elif op == b"c":
                line()
                line()
                stack.append(0)
            elif op == b"\x93":  # STACK_GLOBAL: module and name -> global
                del stack[-2:]
                stack.append(0)
            elif op == b"Q":
                stack[-1] = 0
            elif op == b"\x92":  # NEWOBJ_EX: cls, args, kwargs
                del stack[-3:]
                stack.append(0)
            elif op == b"i" or op == b"o":
                if op == b"i":
                    line()
                    line()
                pop_mark()
                stack.append(0)
            elif op == b"0":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif op == b"1":
                pop_mark()
            elif op == b"2":
                stack.append(stack[-1])
            elif op == b"\x80":
                i += 1
            elif op == b"\x95":
                i += 8
            elif op == b"\x98":
                pass
            elif op == b".":
                return
            else:
                fail(f"unknown opcode {op!r}")
    except IndexError:
        fail("opcode on an empty stack")
    except ValueError as exc:
        if isinstance(exc, CorruptPickleError):
            raise
        fail(f"malformed argument: {short_repr(str(exc))}")
    fail("no STOP opcode (truncated?)")


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
                f"pickle references global {short_repr(module, 60)[1:-1]}."
                f"{short_repr(name, 60)[1:-1]}, which is not allowed"
                f" (allowed: {allowed}); refusing to load it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"pickle references external (persistent) object {short_repr(pid)}, e.g. a tensor"
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
    if not data:
        raise CorruptPickleError(f"{what}: empty, not a readable pickle (truncated or corrupt?)")
    _check_structure(data, what)
    stream = io.BytesIO(data)
    try:
        obj = RestrictedUnpickler(stream, allowed).load()
    except (UnsafePickleError, CorruptPickleError) as exc:
        raise type(exc)(f"{what}: {exc}") from None
    except _CORRUPT as exc:
        raise CorruptPickleError(
            f"{what}: not a readable pickle (truncated or corrupt?): {type(exc).__name__}:"
            f" {short_repr(str(exc), 120)[1:-1]}"
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
    except Exception as exc:  # BadZipFile, OSError, ValueError, struct.error, ...
        raise CorruptPickleError(
            f"{path}: not a torch.save zip archive (truncated, corrupt or the legacy"
            f" non-zip format?): {short_repr(str(exc), 120)[1:-1]}"
        ) from None
    with zf:
        # torch names the archive's top folder after the file it saved to ("archive"
        # by default), so accept any single top-level folder holding data.pkl.
        members = [i for i in zf.infolist() if i.filename.count("/") == 1]
        members = [i for i in members if i.filename.endswith("/data.pkl")]
        if len(members) != 1:
            names = [short_repr(i.filename, 60) for i in members[:5]]
            raise CorruptPickleError(
                f"{path}: expected exactly one '<folder>/data.pkl' in the zip, found"
                f" {', '.join(names) or 'none'}"
            )
        info = members[0]
        folder = info.filename.split("/", 1)[0]
        if folder in ("", ".", "..") or "\\" in folder or ":" in folder:
            raise CorruptPickleError(
                f"{path}: member {short_repr(info.filename, 60)} is not a torch.save name"
            )
        if info.flag_bits & 0x1:
            raise CorruptPickleError(f"{path}: {info.filename} is encrypted; torch.save never is")
        if info.file_size > MAX_ZIP_MEMBER_BYTES:
            raise CorruptPickleError(
                f"{path}: {info.filename} claims {info.file_size} bytes, more than the"
                f" {MAX_ZIP_MEMBER_BYTES} allowed"
            )
        try:
            # zipfile stops inflating at the claimed size and checks the CRC-32, so a
            # member that inflates further (a zip bomb) or was altered is refused.
            data = zf.read(info)
        except Exception as exc:  # zlib.error, lzma.LZMAError, NotImplementedError, ...
            raise CorruptPickleError(
                f"{path}: cannot read {info.filename} ({type(exc).__name__}:"
                f" {short_repr(str(exc), 120)[1:-1]}); the archive is corrupt"
            ) from None
    return _loads(data, None, f"{path} ({info.filename})")
