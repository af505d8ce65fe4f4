"""The NAS-Bench-201 search space: operations, architecture strings, vectors and ids.

An architecture is six operations, one per edge of a 4-node cell, in the order of the
NAS-Bench-201 string ``|O1~0|+|O2~0|O3~1|+|O4~0|O5~1|O6~2|`` (docs/design.md §2). Its *vector*
holds the op indices in that order (the published LatBench order) and its ``arch_id``
is that vector read as a base-5 number with ``O1`` most significant.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latbench.graph import PrunedGraph

__all__ = [
    "EDGES",
    "MAX_ARCH_CHARS",
    "N_ARCHS",
    "N_VALID",
    "OPS",
    "Arch",
    "ArchError",
    "all_archs",
    "arch_id",
    "format_arch",
    "from_id",
    "is_valid",
    "nb201_index",
    "nb201_indices",
    "parse_arch",
]

OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
"""The five candidate operations, indexed as in the architecture vector."""

EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""Cell edges ``(source, target)`` in vector order."""

N_ARCHS = 5**6
"""Number of architectures in the space (15,625)."""

N_VALID = 15_284
"""Number of architectures whose output is reachable from the input."""

NB201_INDEX_FILE = "nb201_index.npy"
NB201_INDEX_SHA256 = "11050a66fbacaa02d440938bf57aab2d4ee697dd1352352e7f789e0adc538b38"
"""SHA-256 of the index array's bytes (little-endian uint16, ``arch_id`` order)."""

_OP_INDEX = {op: i for i, op in enumerate(OPS)}
# [0-9], not \d: "\d" also matches non-ASCII digits such as "１" or "٣"
_TOKEN = re.compile(r"^(?P<op>[A-Za-z0-9_]+)~(?P<src>-?[0-9]+)$")


class ArchError(ValueError):
    """An architecture string, vector or id that is not in the NAS-Bench-201 space."""


def _close_ops(op: str) -> str:
    import difflib

    close = difflib.get_close_matches(op, OPS, n=2, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


MAX_ARCH_CHARS = 256
"""Longest string :func:`parse_arch` reads; a valid one has at most ~100 characters."""


def parse_arch(arch_str: str) -> tuple[int, ...]:
    """Parse a NAS-Bench-201 string into its 6-op vector.

    Raises :class:`ArchError` naming the node, position and problem for any
    malformed string, unknown op, wrong input index or wrong node count.
    """
    if not isinstance(arch_str, str):
        raise ArchError(f"architecture must be a string, got {type(arch_str).__name__}")
    s = arch_str.strip()
    if not s:
        raise ArchError("empty architecture string")
    if len(s) > MAX_ARCH_CHARS:  # every message below quotes the string: keep it short
        raise ArchError(
            f"{arch_str[:40]!r}... ({len(arch_str)} characters) is not a NAS-Bench-201"
            f" architecture string (at most {MAX_ARCH_CHARS})"
        )
    nodes = s.split("+")
    if len(nodes) != 3:
        raise ArchError(f"{arch_str!r}: expected 3 nodes separated by '+', found {len(nodes)}")
    vector: list[int] = []
    for n, node in enumerate(nodes, start=1):
        if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
            raise ArchError(f"{arch_str!r}: node {n} ({node!r}) must start and end with '|'")
        tokens = node[1:-1].split("|")
        if len(tokens) != n:
            raise ArchError(
                f"{arch_str!r}: node {n} must have {n} input edge(s), found {len(tokens)}"
            )
        for src, token in enumerate(tokens):
            m = _TOKEN.match(token)
            if m is None:
                raise ArchError(
                    f"{arch_str!r}: node {n}, edge {src + 1}: {token!r} is not 'op~input'"
                )
            op, got = m.group("op"), int(m.group("src"))
            if op not in _OP_INDEX:
                raise ArchError(
                    f"{arch_str!r}: node {n}, edge {src + 1}: unknown op {op!r}"
                    f" (known: {', '.join(OPS)}){_close_ops(op)}"
                )
            if got != src:
                raise ArchError(
                    f"{arch_str!r}: node {n}, edge {src + 1}: input index {got}, expected {src}"
                )
            vector.append(_OP_INDEX[op])
    return tuple(vector)


def _check_vector(vector: Sequence[int]) -> tuple[int, ...]:
    try:
        v = tuple(int(x) for x in vector)
    except (TypeError, ValueError) as exc:
        raise ArchError(f"architecture vector must hold 6 integers, got {vector!r}") from exc
    if len(v) != 6:
        raise ArchError(f"architecture vector must have 6 entries, got {len(v)}: {v!r}")
    bools = (bool, _np_bool())
    for i, (x, raw) in enumerate(zip(v, vector, strict=True)):
        if isinstance(raw, bools) or x != raw or not 0 <= x < len(OPS):
            raise ArchError(
                f"architecture vector {v!r}: entry {i} = {raw!r} is not an op index 0..4"
            )
    return v


def format_arch(vector: Sequence[int]) -> str:
    """Format a 6-op vector as a NAS-Bench-201 string."""
    v = _check_vector(vector)
    names = [f"{OPS[op]}~{src}" for op, (src, _) in zip(v, EDGES, strict=True)]
    return f"|{names[0]}|+|{names[1]}|{names[2]}|+|{names[3]}|{names[4]}|{names[5]}|"


def arch_id(vector: Sequence[int]) -> int:
    """The vector read as a base-5 number, first op most significant (0..15624)."""
    out = 0
    for x in _check_vector(vector):
        out = out * 5 + x
    return out


def from_id(aid: int) -> tuple[int, ...]:
    """Inverse of :func:`arch_id`."""
    if isinstance(aid, bool) or not isinstance(aid, int | _np_integer()):
        raise ArchError(f"arch_id must be an integer, got {aid!r}")
    aid = int(aid)
    if not 0 <= aid < N_ARCHS:
        raise ArchError(f"arch_id {aid} is outside 0..{N_ARCHS - 1}")
    digits = []
    for _ in range(6):
        aid, d = divmod(aid, 5)
        digits.append(d)
    return tuple(reversed(digits))


def _np_integer() -> type:
    import numpy as np

    return np.integer


def _np_bool() -> type:
    import numpy as np

    return np.bool_


def is_valid(vector: Sequence[int]) -> bool:
    """True when the cell output is reachable from the input through non-zero ops."""
    v = _check_vector(vector)
    reach = {0}
    for op, (src, dst) in zip(v, EDGES, strict=True):
        if op != 0 and src in reach:
            reach.add(dst)
    return 3 in reach


@cache
def _nb201_table() -> Any:
    import hashlib
    from importlib import resources

    import numpy as np

    # The official index is NAS-Bench-201's own numbering (the order its authors trained
    # the cells in), not a function of the ops: it ships as data, checked here.
    path = resources.files("latbench").joinpath(NB201_INDEX_FILE)
    try:
        with path.open("rb") as fh:
            table = np.load(fh, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{path}: the packaged NAS-Bench-201 index is unreadable: {exc}"
        ) from None
    ok = table.dtype == np.dtype("<u2") and table.shape == (N_ARCHS,)
    if not ok or hashlib.sha256(table.tobytes()).hexdigest() != NB201_INDEX_SHA256:
        raise RuntimeError(
            f"{path}: the packaged NAS-Bench-201 index is damaged; reinstall latbench"
        )
    out = table.astype(np.int32)
    out.setflags(write=False)
    return out


def nb201_indices() -> Any:
    """The official NAS-Bench-201 index of every ``arch_id`` (int32 array, read-only).

    ``nb201_indices()[arch_id]`` is the architecture's index in NAS-Bench-201,
    NATS-Bench (topology space) and HELP; ``np.argsort(nb201_indices())`` maps back.
    """
    return _nb201_table()


def nb201_index(arch: str | int | Sequence[int] | Arch) -> int:
    """The official NAS-Bench-201 index (0..15624) of one architecture."""
    return int(_nb201_table()[Arch.parse(arch).id])


@dataclass(frozen=True)
class Arch:
    """One NAS-Bench-201 architecture.

    Build it with :meth:`from_str`, :meth:`from_vector`, :meth:`from_id` or
    :meth:`parse` (which accepts any of the three).
    """

    vector: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", _check_vector(self.vector))

    @classmethod
    def from_str(cls, arch_str: str) -> Arch:
        return cls(parse_arch(arch_str))

    @classmethod
    def from_vector(cls, vector: Sequence[int]) -> Arch:
        return cls(_check_vector(vector))

    @classmethod
    def from_id(cls, aid: int) -> Arch:
        return cls(from_id(aid))

    @classmethod
    def from_nb201_index(cls, index: int) -> Arch:
        """The architecture with this official NAS-Bench-201 index (0..15624), as
        NAS-Bench-201, NATS-Bench and HELP number them (not LatBench's ``arch_id``)."""
        import numpy as np

        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ArchError(f"a NAS-Bench-201 index is an integer, got {index!r}")
        if not 0 <= int(index) < N_ARCHS:
            raise ArchError(f"NAS-Bench-201 index {int(index)} is outside 0..{N_ARCHS - 1}")
        return cls.from_id(int(np.flatnonzero(_nb201_table() == int(index))[0]))

    @classmethod
    def parse(cls, value: str | int | Sequence[int] | Arch) -> Arch:
        """Accept an :class:`Arch`, a string, an ``arch_id`` or a vector."""
        if isinstance(value, Arch):
            return value
        if isinstance(value, bool | _np_bool()):
            raise ArchError(f"architecture must be a string, arch_id or vector, got bool {value!r}")
        if isinstance(value, str):
            return cls.from_str(value)
        if isinstance(value, int | _np_integer()) and not isinstance(value, bool):
            return cls.from_id(int(value))
        return cls.from_vector(value)

    @property
    def id(self) -> int:
        return arch_id(self.vector)

    @property
    def nb201_index(self) -> int:
        """The official NAS-Bench-201 index (see :func:`nb201_indices`)."""
        return int(_nb201_table()[self.id])

    @property
    def str(self) -> str:
        return format_arch(self.vector)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(OPS[i] for i in self.vector)

    @property
    def valid(self) -> bool:
        return is_valid(self.vector)

    @cached_property
    def graph(self) -> PrunedGraph:
        """The pruned op-node graph (docs/design.md §3)."""
        from latbench.graph import prune

        return prune(self.vector)

    def __str__(self) -> str:
        return self.str


def all_archs() -> Iterator[Arch]:
    """All 15,625 architectures in ``arch_id`` order."""
    for aid in range(N_ARCHS):
        yield Arch(from_id(aid))
