"""Read untrusted pickles with a small opcode interpreter whose every resource is bounded.

Published latency files are pickles, and unpickling runs whatever callable a pickle
names. :func:`load_pickle` never uses :mod:`pickle`'s unpickler: it executes the
opcode stream itself, resolves a global only when ``(module, name)`` is in the
``allowed`` mapping (nothing by default) and refuses everything else with
:class:`UnsafePickleError` before any call happens. A :class:`Limits` (one per file
layout) bounds the bytes read, the opcodes run (each builds at most one object), the
container types and sizes, the memo (indices only as they are written), dict keys
(scalars or flat tuples of scalars, so hashing is linear) and the nesting and
reachable size of the result (a DAG of shared containers counts each time it is
reached); a broken limit is a :class:`CorruptPickleError` before anything past it is
built. Either error says how far the interpreter got in its ``progress`` (a
:class:`PickleProgress`: the opcodes run, the byte offset of the one that failed and
whether the data ended early or is corrupt there). :data:`NUMPY_SCALARS` is the
allow-list of the LatBench release pickles (numpy float scalars, docs/design.md §7),
and :func:`load_torch_zip` reads a ``torch.save`` zip of plain Python data without
PyTorch. Messages show file content only through :func:`short_repr`.
"""

from __future__ import annotations

import codecs
import copyreg
import os
import pickle
import reprlib
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "NUMPY_SCALARS",
    "CorruptPickleError",
    "DEFAULT_LIMITS",
    "Limits",
    "PickleProgress",
    "UnsafePickleError",
    "load_pickle",
    "register_buildable",
    "load_torch_zip",
    "short_repr",
]


@dataclass(frozen=True)
class PickleProgress:
    """How far the interpreter got in a pickle it did not load."""

    ops: int
    """Opcodes run to completion (STOP included when the whole pickle ran)."""
    offset: int
    """Byte offset of the opcode that failed; the data's length when it ended between
    opcodes, the pickle's end when the whole pickle ran."""
    damage: Literal["truncated", "corrupt"] | None
    """``"truncated"``: the data ends inside that opcode or before a STOP;
    ``"corrupt"``: that opcode or its argument is no pickle's (an unknown opcode byte, a
    bad literal, a stack or memo the opcode cannot run on, a global name that is no
    dotted identifier); ``None``: no damage found, a valid opcode refused (a limit, the
    allow-list, an allow-listed callable's checks) or a whole pickle refused (its result,
    bytes after its end)."""
    opcode: str | None
    """Name of the opcode at ``offset`` (``pickletools``' names); ``None`` past the data's
    end, after a whole pickle, or for a byte that is no opcode."""
    memo: int
    """Memo entries written by then."""


class _LoadError(ValueError):
    """A refused pickle; ``progress`` says how far the interpreter got in it, ``None``
    when it never ran (empty or oversized data, a torch zip holding no readable pickle)."""

    def __init__(self, message: str, progress: PickleProgress | None = None) -> None:
        super().__init__(message)
        self.progress = progress


class UnsafePickleError(_LoadError):
    """A pickle that references a global (or persistent id) outside the allow-list."""


class CorruptPickleError(_LoadError):
    """A pickle or torch zip that is truncated, corrupt or not a pickle at all."""


_BUILTIN_CODES = frozenset(["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"])
_BYTE_ORDERS = frozenset("<>|=")
_STRUCT_CODES = {
    "b1": "?", "f2": "e", "f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
    "u1": "B", "u2": "H", "u4": "I", "u8": "Q",
}  # fmt: skip
MAX_INT_BYTES = 16
"""Largest integer a pickle may hold, in bytes of two's complement (128 bits)."""


class _Dtype:
    """What the pickle's ``numpy.dtype(...)`` call builds: a builtin type code, no more.

    The real ``numpy.dtype`` accepts a BUILD state that adds a subarray shape or
    fields, after which ``scalar`` reads past its buffer. This stand-in accepts only
    the state numpy writes for a builtin dtype and keeps its byte order.
    """

    __slots__ = ("_dt", "_make", "_size", "_unpack", "code", "order")

    def __init__(self, code: str) -> None:
        self.code, self.order, self._dt = code, "=", None
        self._unpack: Any = None
        self._make: Any = None
        self._size = 0

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
            self._make, self._size = dt.type, dt.itemsize
        return self._dt

    def scalar(self, data: Any) -> Any:
        """The numpy scalar whose raw bytes are ``data`` (exactly ``itemsize`` bytes)."""
        if self._dt is None:
            self.dtype()
        if type(data) is not bytes or len(data) != self._size:
            raise CorruptPickleError(
                f"numpy scalar payload must be {self._size} bytes, got {type(data).__name__}"
                + (f" of {len(data)} bytes" if isinstance(data, bytes) else "")
            )
        return self._make(self._unpack(data)[0])


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    # The real constructor accepts object dtypes and arbitrary payloads; the release
    # files only ever hold plain numeric scalars built from raw bytes.
    if type(dtype) is not _Dtype:
        raise UnsafePickleError(
            f"numpy scalar of dtype {short_repr(dtype)} refused: only builtin numeric dtypes"
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


MAX_LATIN1_CHARS = 64
"""Longest string :func:`_latin1_bytes` turns into bytes (a numpy scalar's payload is at
most 8 bytes for the builtin codes allowed)."""

_LATIN1 = frozenset({"latin1", "latin-1"})


def _latin1_bytes(text: Any, encoding: Any = None, *rest: Any) -> bytes:
    # Pickle protocols 0-2 have no bytes opcode: they write ``b`` as
    # ``_codecs.encode(b.decode('latin1'), 'latin1')``, so a numpy scalar re-saved with
    # them carries its payload that way. Only that call is accepted: a short str, the
    # latin-1 codec named as pickle names it, no errors argument; the result is bytes.
    if rest or type(encoding) is not str or encoding not in _LATIN1:
        raise UnsafePickleError(
            f"_codecs.encode with arguments {short_repr((encoding, *rest))} refused: only"
            " (str, 'latin1'), as pickle protocols 0-2 write bytes"
        )
    if type(text) is not str:
        raise UnsafePickleError(
            f"_codecs.encode of a {type(text).__name__} refused: only a str, as pickle"
            " protocols 0-2 write bytes"
        )
    if len(text) > MAX_LATIN1_CHARS:
        raise _Refused(
            f"_codecs.encode of {len(text)} characters (over {MAX_LATIN1_CHARS}): only a"
            " numpy scalar's few bytes are read from a protocol 0-2 pickle; re-save the file"
            " with protocol 3 or later"
        )
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise CorruptPickleError(
            "_codecs.encode of a str holding a character past U+00FF: not bytes pickled by"
            " protocol 0-2"
        ) from None


NUMPY_SCALARS: Mapping[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}
"""Allow-list for pickled numpy numeric scalars, under numpy 1 and numpy 2 module names.

The callables are guarded stand-ins for the real ones that accept only numeric dtypes,
and (``_codecs.encode``) only the latin-1 round trip by which pickle protocols 0-2
store a scalar's raw bytes.
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


@dataclass(frozen=True)
class Limits:
    """What one pickle may cost: every resource :func:`load_pickle` spends is bounded here.

    Each opcode builds at most one object, so ``max_ops`` bounds the objects built and
    ``containers`` (no sets unless named) bounds each one's size (about 100 bytes, the
    largest being an empty dict), which bounds memory before anything is built.
    """

    max_bytes: int = 64 << 20
    """Longest pickle stream read (and largest ``data.pkl`` inflated from a zip)."""
    max_ops: int = 4_000_000
    """Most opcodes executed, hence most objects built."""
    max_items: int = 1 << 20
    """Most items in any one list, tuple, dict or set."""
    max_depth: int = 32
    """Deepest container nesting of the result."""
    max_nodes: int = 8_000_000
    """Most container items reachable from the result, a shared container counted each
    time it is reached (so a DAG of shared tuples cannot expand past this)."""
    containers: frozenset[type] = frozenset({tuple, list, dict})
    """Container types the layout may use."""


DEFAULT_LIMITS = Limits()
"""Limits of :func:`load_pickle` when a caller names none (a plain-data pickle)."""

_SCALAR_KEY = frozenset({str, int, float, bytes, bool, type(None)})
# Strings and bytes with a little-endian length prefix, by opcode byte value: its width
# (SHORT_BINBYTES, the most frequent, has a branch of its own).
_SIZED = {op: w for ops, w in ((b"U\x8c", 1), (b"TXB", 4)) for op in ops}
_SIZED8 = frozenset(b"\x8d\x8e")  # BINUNICODE8, BINBYTES8: 8-byte lengths
_REFUSED_OPS = {
    0x81: "NEWOBJ",
    0x92: "NEWOBJ_EX",
    0x6F: "OBJ",
    0x96: "BYTEARRAY8",
    0x97: "NEXT_BUFFER",
    0x98: "READONLY_BUFFER",
}


class _Refused(Exception):
    """An internal signal: the pickle breaks a limit (message says which)."""


class _Truncated(ValueError):
    """The data ends inside an opcode or before a STOP (reported as a ``ValueError``)."""


class _MalformedGlobal(UnsafePickleError):
    """A global outside the allow-list whose name no pickle writes (no dotted identifier):
    refused as unsafe, reported as corrupt."""


class _MemoGap(_Refused):
    """A memo index past those written so far: refused as a limit, reported as corrupt
    (picklers number memo entries 0, 1, 2, ...)."""


class _Stopped(Exception):
    """An internal signal: the interpreter failed (``cause``) after ``progress``."""

    def __init__(self, cause: Exception, progress: PickleProgress) -> None:
        super().__init__(cause)
        self.cause, self.progress = cause, progress


@cache
def _opnames() -> dict[int, str]:
    """Opcode byte to ``pickletools``' name; built on the first failure, not at import."""
    import pickletools

    return {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}


_BYTE_ARG = frozenset(b"Khq")  # BININT1, BINGET, BINPUT read their byte as data[i]


def _dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _progress(exc: Exception, data: bytes, at: int, ops: int, memo: int) -> PickleProgress:
    """The report of an interpreter that raised ``exc`` running the opcode at ``at``."""
    n = len(data)
    op = data[at] if at < n else None
    if isinstance(exc, _Truncated) or (type(exc) is IndexError and op in _BYTE_ARG and at + 1 >= n):
        damage: Literal["truncated", "corrupt"] | None = "truncated"
    elif isinstance(exc, _MalformedGlobal | _MemoGap) or not isinstance(
        exc, _Refused | UnsafePickleError | CorruptPickleError
    ):
        damage = "corrupt"
    else:  # a limit, the allow-list or an allow-listed stand-in refused a valid opcode
        damage = None
    return PickleProgress(ops, at, damage, None if op is None else _opnames().get(op), memo)


def _key_ok(key: Any) -> bool:
    # Keys are hashed as they are inserted: a scalar or a flat tuple of scalars is
    # hashed in time linear in its bytes, whereas a nested tuple may be a DAG whose
    # hash doubles per level (T = (T, T)) or nest deep enough to overflow the C stack.
    t = type(key)
    if t in _SCALAR_KEY:
        return True
    return t is tuple and _SCALAR_KEY.issuperset(map(type, key))


def _measure(root: Any, limits: Limits) -> None:
    """Walk the result iteratively; refuse nesting past ``max_depth`` or more than
    ``max_nodes`` reachable items (a shared container counts each time it is reached,
    so a cycle or a DAG is refused after at most ``max_nodes`` steps)."""
    containers = tuple(limits.containers)
    todo: list[tuple[Any, int]] = [(root, 0)]
    nodes = 0
    while todo:
        obj, depth = todo.pop()
        if not isinstance(obj, containers):
            continue
        if depth >= limits.max_depth:
            raise _Refused(f"containers nested deeper than {limits.max_depth} levels")
        nodes += len(obj)
        if nodes > limits.max_nodes:
            raise _Refused(
                f"more than {limits.max_nodes} items reachable (shared or cyclic containers?)"
            )
        # dict keys are scalars or flat tuples of scalars (checked as they were inserted)
        for item in obj.values() if type(obj) is dict else obj:
            if isinstance(item, containers):
                todo.append((item, depth + 1))


def _run(
    data: bytes, allowed: Mapping[tuple[str, str], Any], limits: Limits
) -> tuple[Any, PickleProgress]:
    """Execute the opcode stream with explicit, bounded state; returns the object and
    the progress of the whole run (its STOP's end is the pickle's).

    Raises :class:`_Stopped` whose ``cause`` is :class:`_Refused` (a limit),
    :class:`UnsafePickleError` (a global or construct outside the allow-list) or
    ``ValueError``/``IndexError``/``KeyError``... for malformed streams (the caller turns
    those into :class:`CorruptPickleError`), and whose ``progress`` says where.
    """
    stack: list[Any] = []
    marks: list[int] = []
    # pickle numbers memo entries 0, 1, 2, ... as it goes, so a list holds them
    memo: list[Any] = []
    n = len(data)
    i = 0
    max_ops, max_items = limits.max_ops, limits.max_items
    allowed_containers = limits.containers
    frombytes = int.from_bytes
    unpack_float = struct.Struct(">d").unpack_from
    unpack_u32 = struct.Struct("<I").unpack_from
    sized = _SIZED
    tuples_ok = tuple in allowed_containers
    push = stack.append

    def need(k: int) -> None:
        if i + k > n:
            raise _Truncated("truncated argument")

    def line() -> bytes:
        nonlocal i
        j = data.find(b"\n", i)
        if j < 0:
            raise _Truncated("truncated text argument")
        out = data[i:j]
        i = j + 1
        return out

    def pop_mark() -> list[Any]:
        if not marks:
            raise ValueError("container opcode without a MARK")
        k = marks.pop()
        if k > len(stack):
            raise ValueError("MARK above the stack")
        items = stack[k:]
        del stack[k:]
        if len(items) > max_items:
            raise _Refused(f"a container of {len(items)} items (over {max_items})")
        return items

    def container(kind: type) -> None:
        if kind not in allowed_containers:
            raise _Refused(f"a {kind.__name__}, which this file's layout never holds")

    def put(idx: int) -> None:
        m = len(memo)
        if idx == m:
            memo.append(stack[-1])
        elif 0 <= idx < m:
            memo[idx] = stack[-1]
        else:
            raise _MemoGap(f"memo index {idx} beyond the {m} entries written so far")

    def get(idx: int) -> Any:
        if not 0 <= idx < len(memo):
            raise ValueError(f"memo index {idx} was never written")
        return memo[idx]

    def setitems(d: Any, items: list[Any]) -> None:
        if type(d) is not dict or len(items) % 2:
            raise ValueError("SETITEMS on a non-dict or an odd item count")
        keys = items[::2]
        if not all(map(_key_ok, keys)):
            raise _Refused("a dict key nested deeper than a flat tuple of scalars")
        d.update(zip(keys, items[1::2], strict=True))
        if len(d) > max_items:
            raise _Refused(f"a dict of {len(d)} entries (over {max_items})")

    def add_items(kind: type, items: list[Any]) -> None:
        # APPEND(S) to the list, or ADDITEMS to the set, on top of the stack
        c = stack[-1]
        if type(c) is not kind:
            raise ValueError(f"adding items to a {type(c).__name__}, not a {kind.__name__}")
        if kind is set:
            if not all(map(_key_ok, items)):
                raise _Refused("a set item nested deeper than a flat tuple of scalars")
            c.update(items)
        else:
            c.extend(items)
        if len(c) > max_items:
            raise _Refused(f"a {kind.__name__} of {len(c)} items (over {max_items})")

    def resolve(module: Any, name: Any) -> Any:
        if type(module) is not str or type(name) is not str:
            raise ValueError("global name is not text")
        try:
            return allowed[(module, name)]
        except KeyError:
            names = ", ".join(f"{m}.{n}" for m, n in allowed) or "none"
            well_formed = _dotted(module) and _dotted(name)
            raise (UnsafePickleError if well_formed else _MalformedGlobal)(
                f"pickle references global {short_repr(module, 60)[1:-1]}."
                f"{short_repr(name, 60)[1:-1]}, which is not allowed (allowed: {names});"
                " refusing to load it"
            ) from None

    # Opcodes are compared as ints (``data[i]``), the most frequent in the release
    # pickles first; the loop's range is the opcode budget.
    at = ops = 0
    try:
        for ops in range(max_ops):
            at = i  # ``i`` is a closure cell: the opcode's start is read from a fast local
            op = data[at]  # past the end: IndexError, reported as no STOP below
            i = at + 1
            if op == 0x4B:  # BININT1; a one-byte read past the end raises IndexError
                push(data[i])
                i += 1
            elif op == 0x72:  # LONG_BINPUT
                if i + 4 > n:
                    raise _Truncated("truncated argument")
                idx = unpack_u32(data, i)[0]
                i += 4
                if idx == len(memo):
                    memo.append(stack[-1])
                else:
                    put(idx)
            elif op == 0x68:  # BINGET
                idx = data[i]
                i += 1
                push(memo[idx] if idx < len(memo) else get(idx))
            elif op == 0x28:  # MARK
                marks.append(len(stack))
            elif op == 0x74:  # TUPLE
                if not tuples_ok:
                    container(tuple)
                push(tuple(pop_mark()))
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                func = stack.pop()
                if type(args) is not tuple or not callable(func) or type(func) is type:
                    raise UnsafePickleError("REDUCE of something that is not an allowed callable")
                push(func(*args))
            elif op == 0x43:  # SHORT_BINBYTES
                if i >= n:
                    raise _Truncated("truncated argument")
                size = data[i]
                i += 1
                if i + size > n:
                    raise _Truncated(
                        f"a string or bytes argument claims {size} bytes, more than the data holds"
                    )
                push(data[i : i + size])
                i += size
            elif 0x85 <= op <= 0x87:  # TUPLE1, TUPLE2, TUPLE3
                if not tuples_ok:
                    container(tuple)
                k = op - 0x84
                if len(stack) < k or (marks and marks[-1] > len(stack) - k):
                    raise ValueError("tuple opcode on a short stack")
                items = stack[-k:]
                del stack[-k:]
                push(tuple(items))
            elif op == 0x94:  # MEMOIZE
                memo.append(stack[-1])
            elif op == 0x71:  # BINPUT
                put(data[i])
                i += 1
            elif op == 0x6A:  # LONG_BINGET
                need(4)
                stack.append(get(frombytes(data[i : i + 4], "little")))
                i += 4
            elif op == 0x47:  # BINFLOAT
                need(8)
                stack.append(unpack_float(data, i)[0])
                i += 8
            elif op in sized:  # the other strings and bytes with 1- or 4-byte lengths
                w = sized[op]
                need(w)
                size = frombytes(data[i : i + w], "little", signed=op == 0x54)
                i += w
                if size < 0 or i + size > n:  # a negative size is corrupt, not cut
                    raise (_Truncated if size >= 0 else ValueError)(
                        f"a string or bytes argument claims {size} bytes, more than the data holds"
                    )
                raw = data[i : i + size]
                i += size
                if op == 0x58 or op == 0x8C:  # BINUNICODE, SHORT_BINUNICODE
                    stack.append(raw.decode("utf-8", "surrogatepass"))
                elif op == 0x42:  # BINBYTES
                    stack.append(raw)
                else:  # BINSTRING, SHORT_BINSTRING
                    stack.append(raw.decode("ascii"))
            elif op == 0x75:  # SETITEMS
                items = pop_mark()
                setitems(stack[-1], items)
            elif op == 0x73:  # SETITEM
                v = stack.pop()
                k2 = stack.pop()
                setitems(stack[-1], [k2, v])
            elif op == 0x65 or op == 0x61:  # APPENDS, APPEND
                add_items(list, pop_mark() if op == 0x65 else [stack.pop()])
            elif op == 0x7D:  # EMPTY_DICT
                container(dict)
                stack.append({})
            elif op == 0x5D:  # EMPTY_LIST
                container(list)
                stack.append([])
            elif op == 0x29:  # EMPTY_TUPLE
                container(tuple)
                stack.append(())
            elif op == 0x8F:  # EMPTY_SET
                container(set)
                stack.append(set())
            elif op == 0x4D:  # BININT2
                need(2)
                stack.append(frombytes(data[i : i + 2], "little"))
                i += 2
            elif op == 0x4A:  # BININT
                need(4)
                stack.append(frombytes(data[i : i + 4], "little", signed=True))
                i += 4
            elif op == 0x4E:  # NONE
                stack.append(None)
            elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                stack.append(op == 0x88)
            elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
                w = 1 if op == 0x8A else 4
                need(w)
                size = frombytes(data[i : i + w], "little")
                i += w
                if size > MAX_INT_BYTES:
                    raise _Refused(f"an integer of {size} bytes (over {MAX_INT_BYTES})")
                need(size)
                stack.append(frombytes(data[i : i + size], "little", signed=True))
                i += size
            elif op in _SIZED8:  # BINUNICODE8, BINBYTES8
                need(8)
                size = frombytes(data[i : i + 8], "little")
                i += 8
                if i + size > n:
                    raise _Truncated(
                        f"a string or bytes argument claims {size} bytes, more than the data holds"
                    )
                raw = data[i : i + size]
                i += size
                stack.append(raw if op == 0x8E else raw.decode("utf-8", "surrogatepass"))
            elif op == 0x49 or op == 0x4C:  # INT, LONG
                digits = line()
                if len(digits) > 2 * MAX_INT_BYTES + 8:
                    raise _Refused(f"an integer of {len(digits)} digits")
                if op == 0x49 and digits in (b"00", b"01"):
                    stack.append(digits == b"01")
                else:
                    stack.append(int(digits.rstrip(b"L")))
            elif op == 0x46:  # FLOAT
                stack.append(float(line()))
            elif op == 0x53:  # STRING
                text = line()
                if len(text) < 2 or text[:1] != text[-1:] or text[:1] not in (b"'", b'"'):
                    raise ValueError("STRING argument is not quoted")
                stack.append(codecs.escape_decode(text[1:-1])[0].decode("ascii"))
            elif op == 0x56:  # UNICODE
                stack.append(line().decode("raw-unicode-escape"))
            elif op == 0x90:  # ADDITEMS
                add_items(set, pop_mark())
            elif op == 0x91:  # FROZENSET
                container(frozenset)
                items = pop_mark()
                if not all(map(_key_ok, items)):
                    raise _Refused("a frozenset item nested deeper than a flat tuple of scalars")
                stack.append(frozenset(items))
            elif op == 0x6C:  # LIST
                container(list)
                stack.append(pop_mark())
            elif op == 0x64:  # DICT
                container(dict)
                d: dict[Any, Any] = {}
                setitems(d, pop_mark())
                stack.append(d)
            elif op == 0x30:  # POP
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif op == 0x31:  # POP_MARK
                pop_mark()
            elif op == 0x32:  # DUP
                stack.append(stack[-1])
            elif op == 0x70:  # PUT
                put(int(line()))
            elif op == 0x67:  # GET
                stack.append(get(int(line())))
            elif op == 0x63:  # GLOBAL
                module = line().decode("utf-8")
                stack.append(resolve(module, line().decode("utf-8")))
            elif op == 0x93:  # STACK_GLOBAL
                name = stack.pop()
                stack.append(resolve(stack.pop(), name))
            elif op == 0x69:  # INST
                module = line().decode("utf-8")
                resolve(module, line().decode("utf-8"))
                raise UnsafePickleError("INST (build an object from a class) is refused")
            elif op == 0x62:  # BUILD
                state = stack.pop()
                obj = stack[-1]
                setstate = getattr(type(obj), "__setstate__", None)
                if type(obj) not in _BUILDABLE or setstate is None:
                    raise UnsafePickleError(f"BUILD of a {type(obj).__name__} is refused")
                setstate(obj, state)
            elif op == 0x80:  # PROTO
                need(1)
                if data[i] > pickle.HIGHEST_PROTOCOL:
                    raise ValueError(f"unsupported pickle protocol {data[i]}")
                i += 1
            elif op == 0x95:  # FRAME
                need(8)
                i += 8
            elif op == 0x2E:  # STOP
                if len(stack) != 1 or marks:
                    raise ValueError("STOP with a stack that is not exactly one object")
                return stack[0], PickleProgress(ops + 1, i, None, None, len(memo))
            elif op == 0x50 or op == 0x51:  # PERSID, BINPERSID
                pid = line() if op == 0x50 else stack.pop()
                raise UnsafePickleError(
                    f"pickle references external (persistent) object {short_repr(pid)}, e.g. a"
                    " tensor storage; only plain Python data is allowed"
                )
            elif 0x82 <= op <= 0x84:  # EXT1, EXT2, EXT4
                w = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                need(w)
                code = frombytes(data[i : i + w], "little")
                target = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
                if target is None:
                    raise UnsafePickleError(f"pickle references extension code {code}, not allowed")
                resolve(*target)
                raise UnsafePickleError("extension-registry globals are refused")
            elif op in _REFUSED_OPS:
                raise UnsafePickleError(f"opcode {_REFUSED_OPS[op]} is refused (never plain data)")
            else:
                raise ValueError(f"unknown opcode {short_repr(bytes([op]))}")
        at, ops = i, max_ops
        if i < n:
            raise _Refused(f"more than {max_ops} opcodes (objects) for this file's layout")
        raise _Truncated("no STOP opcode (truncated?)")
    except Exception as exc:  # the caller reports it, with how far the run got
        if type(exc) is IndexError and at >= n:  # the opcode byte itself is past the end
            exc = _Truncated("no STOP opcode (truncated?)")
        raise _Stopped(exc, _progress(exc, data, at, ops, len(memo))) from None


_BUILDABLE: set[type] = {_Dtype}
"""Types whose ``__setstate__`` a BUILD opcode may call (allow-listed stand-ins)."""


def register_buildable(cls: type) -> type:
    """Let BUILD call ``cls.__setstate__`` (for a guarded stand-in an allow-list returns)."""
    _BUILDABLE.add(cls)
    return cls


# Everything a malformed opcode stream can raise from the interpreter.
_CORRUPT = (
    EOFError,
    TypeError,
    ValueError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    UnicodeDecodeError,
    struct.error,
    MemoryError,
)


def _loads(
    data: bytes,
    allowed: Mapping[tuple[str, str], Any] | None,
    what: str,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    if not data:
        raise CorruptPickleError(f"{what}: empty, not a readable pickle (truncated or corrupt?)")
    if len(data) > limits.max_bytes:
        raise CorruptPickleError(
            f"{what}: refused: {len(data)} bytes, more than the {limits.max_bytes} this"
            " file's layout needs"
        )
    progress = None
    try:
        try:
            obj, progress = _run(data, allowed or {}, limits)
        except _Stopped as stop:
            progress = stop.progress
            raise stop.cause from None
        _measure(obj, limits)
    except _Refused as exc:
        raise CorruptPickleError(f"{what}: refused: {exc}", progress) from None
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{what}: {exc}", progress) from None
    except CorruptPickleError as exc:
        raise CorruptPickleError(f"{what}: {exc}", progress) from None
    except _CORRUPT as exc:
        kind = "ValueError" if type(exc) is _Truncated else type(exc).__name__
        raise CorruptPickleError(
            f"{what}: not a readable pickle (truncated or corrupt?): {kind}:"
            f" {short_repr(str(exc), 120)[1:-1]}",
            progress,
        ) from None
    if progress.offset != len(data):
        raise CorruptPickleError(
            f"{what}: {len(data) - progress.offset} unexpected byte(s) after the pickle's end",
            progress,
        )
    return obj


def _read_bounded(path: Path, cap: int) -> bytes:
    from latbench.files import FileTooLarge, NotRegularFile, read_capped

    try:
        return read_capped(path, cap)
    except FileTooLarge:
        raise CorruptPickleError(
            f"{path}: refused: larger than the {cap} bytes this file's layout needs"
        ) from None
    except NotRegularFile as exc:
        raise CorruptPickleError(f"{path}: refused: {exc}") from None


def load_pickle(
    source: str | os.PathLike[str] | bytes,
    allowed: Mapping[tuple[str, str], Any] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Unpickle a file path or ``bytes`` resolving only the globals in ``allowed``.

    ``allowed`` maps ``(module, name)`` to the object handed to the pickle (default:
    no globals at all); ``limits`` bounds what the file may cost. Raises
    :class:`UnsafePickleError` naming any other global and :class:`CorruptPickleError`
    for truncated or malformed data or a broken limit, before building past it.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _loads(bytes(source), allowed, "pickle data", limits)
    path = Path(source)
    return _loads(_read_bounded(path, limits.max_bytes), allowed, str(path), limits)


def load_torch_zip(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Any:
    """Read the plain Python object saved by ``torch.save`` in zip format, without torch.

    Only pickles of built-in data (lists, dicts, numbers, strings) load: every global
    and every tensor storage is refused with :class:`UnsafePickleError`; ``data.pkl``
    may claim at most ``limits.max_bytes`` and the archive four times that.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size > 4 * limits.max_bytes + (1 << 20):
        raise CorruptPickleError(
            f"{path}: refused: {size} bytes, far more than this file's layout needs"
        )
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
        if info.file_size > limits.max_bytes:
            raise CorruptPickleError(
                f"{path}: refused: {info.filename} claims {info.file_size} bytes, more than"
                f" the {limits.max_bytes} this file's layout needs"
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
    return _loads(data, None, f"{path} ({info.filename})", limits)
