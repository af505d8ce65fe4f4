"""Work planning: which architectures to measure, and which graphs to time.

Architectures that share a pruned graph are one network, so the plan times each
distinct :attr:`~latbench.graph.PrunedGraph.key` once, on the lowest ``arch_id`` that
has it (``timed_arch_id``), and gives the figure to every selected architecture with
that key. Shards split by graph key, never inside one, so ``--shard i/n`` runs
followed by ``merge`` equal one unsharded run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from latbench.graph import PrunedGraph
from latbench.space import N_ARCHS, Arch, ArchError, all_archs

__all__ = [
    "DEFAULT_SAMPLE",
    "GraphWork",
    "Plan",
    "make_plan",
    "parse_shard",
    "read_arch_file",
    "select_archs",
]

DEFAULT_SAMPLE = 20
"""Architectures measured when no selection is given (a quick look, not a campaign)."""


def read_arch_file(path: str | os.PathLike[str]) -> list[Arch]:
    """Architectures listed one NAS-Bench-201 string per line (``#`` comments, blanks ok).

    Raises :class:`~latbench.space.ArchError` naming the file and line of a bad entry.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchError(f"cannot read architecture list {path}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ArchError(f"{path}:{line}: not UTF-8 text (a binary file?)") from None
    out: list[Arch] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        try:
            if "\0" in s or not s.isascii():
                raise ArchError("holds NUL or non-ASCII characters (a binary file?)")
            out.append(Arch.parse(int(s)) if s.isdigit() else Arch.from_str(s[:200]))
        except ArchError as exc:
            raise ArchError(f"{path}:{lineno}: {exc}") from None
    if not out:
        raise ArchError(f"{path}: no architectures listed")
    return out


def select_archs(
    *,
    all: bool = False,  # noqa: A002 - mirrors the --all flag
    limit: int | None = None,
    archs: Sequence[Arch] | None = None,
    seed: int = 0,
    valid_only: bool = False,
) -> list[Arch]:
    """The selection: every architecture, a seeded sample of ``limit``, or ``archs``.

    With none of them, a seeded sample of :data:`DEFAULT_SAMPLE`. A sample draws from
    valid architectures only; ``all`` includes the invalid ones (recorded as such).
    """
    if sum(x is not None and x is not False for x in (all or None, limit, archs)) > 1:
        raise ValueError("choose one of --all, --limit and --archs")
    if archs is not None:
        seen: set[int] = set()
        out = [a for a in archs if not (a.id in seen or seen.add(a.id))]
        return [a for a in out if a.valid] if valid_only else out
    everything = [a for a in all_archs() if a.valid or not valid_only]
    if all:
        return everything
    n = DEFAULT_SAMPLE if limit is None else limit
    valid = [a for a in everything if a.valid]
    if not 0 < n <= len(valid):
        raise ValueError(f"--limit must be between 1 and {len(valid)}, got {n}")
    picked = random.Random(seed).sample(valid, n)
    return sorted(picked, key=lambda a: a.id)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (1-based) into ``(i, n)``; the rules are :func:`options.check_shard`'s."""
    from latbench.harness.options import check_shard

    return check_shard(text)


@dataclass(frozen=True)
class GraphWork:
    """One distinct pruned graph to time, and the architectures that get its figure."""

    graph: PrunedGraph
    timed_arch_id: int
    arch_ids: tuple[int, ...]

    @property
    def key(self) -> str:
        return self.graph.key


@dataclass(frozen=True)
class Plan:
    """What one run measures: graphs to time and invalid architectures to record."""

    work: tuple[GraphWork, ...]
    invalid: tuple[int, ...]
    selection_digest: str
    shard: tuple[int, int] = (1, 1)
    arch_ids: tuple[int, ...] = field(default=())

    @property
    def n_archs(self) -> int:
        return len(self.arch_ids)


def _digest(ids: Iterable[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def with_earlier(plan: Plan, earlier: Iterable[int]) -> Plan:
    """``plan`` grown by the architectures ``earlier`` (those an earlier run of the same
    dataset measured) outside it: a rerun with a smaller or other selection keeps every
    row already measured (``--fresh`` replaces them). They belong to ``plan``'s shard
    already, since they came from its dataset."""
    extra = {int(x) for x in earlier} - set(plan.arch_ids)
    if not extra:
        return plan
    ids = sorted(set(plan.arch_ids) | extra)
    grown = make_plan([Arch.from_id(x) for x in ids])  # one shard: no dealing again
    return dataclasses.replace(grown, shard=plan.shard)


def make_plan(archs: Sequence[Arch], shard: tuple[int, int] = (1, 1)) -> Plan:
    """Group ``archs`` by pruned graph and keep the part that belongs to ``shard``."""
    i, n = shard
    ids = sorted({a.id for a in archs})
    if any(not 0 <= x < N_ARCHS for x in ids):
        raise ValueError("architecture id out of range")
    groups: dict[str, list[Arch]] = {}
    invalid: list[int] = []
    for a in sorted(archs, key=lambda a: a.id):
        if a.valid:
            groups.setdefault(a.graph.key, []).append(a)
        elif a.id % n == i - 1:
            invalid.append(a.id)
    work = []
    # Graph keys are dealt round-robin in order of their lowest arch_id, so every
    # shard gets a similar mix of graphs and no graph is split between shards.
    for k, members in enumerate(groups.values()):
        if k % n == i - 1:
            uniq = sorted({m.id for m in members})
            work.append(GraphWork(members[0].graph, uniq[0], tuple(uniq)))
    mine = sorted([*invalid, *(x for w in work for x in w.arch_ids)])
    return Plan(tuple(work), tuple(invalid), _digest(ids), (i, n), tuple(mine))
