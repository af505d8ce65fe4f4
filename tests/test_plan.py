"""Work planning: selection, graph de-duplication and sharding."""

from __future__ import annotations

import pytest

from latbench.harness.plan import (
    DEFAULT_SAMPLE,
    make_plan,
    parse_shard,
    read_arch_file,
    select_archs,
)
from latbench.space import N_ARCHS, N_VALID, Arch, ArchError, all_archs

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ONE_SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


def test_default_sample_is_seeded_and_valid():
    a = select_archs(seed=3)
    b = select_archs(seed=3)
    c = select_archs(seed=4)
    assert [x.id for x in a] == [x.id for x in b]
    assert [x.id for x in a] != [x.id for x in c]
    assert len(a) == DEFAULT_SAMPLE and all(x.valid for x in a)


def test_all_includes_invalid():
    archs = select_archs(all=True)
    assert len(archs) == N_ARCHS
    assert sum(a.valid for a in archs) == N_VALID


@pytest.mark.parametrize("limit", [0, -1, N_VALID + 1])
def test_bad_limit(limit):
    with pytest.raises(ValueError, match="--limit"):
        select_archs(limit=limit)


def test_one_selection_only():
    with pytest.raises(ValueError, match="one of"):
        select_archs(all=True, limit=3)


def test_arch_file(tmp_path):
    f = tmp_path / "archs.txt"
    f.write_text(f"# header\n{ALL_SKIP}\n\n  {ONE_SKIP}  # trailing comment\n42\n")
    archs = read_arch_file(f)
    assert [a.str for a in archs[:2]] == [ALL_SKIP, ONE_SKIP]
    assert archs[2].id == 42


def test_arch_file_bad_line_names_file_and_line(tmp_path):
    f = tmp_path / "archs.txt"
    f.write_text(f"{ALL_SKIP}\n|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    with pytest.raises(ArchError, match=r"archs\.txt:2:.*unknown op 'conv'"):
        read_arch_file(f)


def test_arch_file_missing_or_empty(tmp_path):
    with pytest.raises(ArchError, match="cannot read"):
        read_arch_file(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ArchError, match="no architectures"):
        read_arch_file(tmp_path / "empty.txt")


@pytest.mark.parametrize("text", ["1", "0/3", "4/3", "a/b", "1/2/3"])
def test_bad_shard(text):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)


def test_plan_times_each_graph_once_on_lowest_id():
    archs = list(all_archs())
    plan = make_plan(archs)
    keys = [w.key for w in plan.work]
    assert len(keys) == len(set(keys))
    assert len(plan.invalid) == N_ARCHS - N_VALID
    covered = sorted([*plan.invalid, *(i for w in plan.work for i in w.arch_ids)])
    assert covered == list(range(N_ARCHS))
    for w in plan.work:
        assert w.timed_arch_id == min(w.arch_ids)
        assert all(Arch.from_id(i).graph.key == w.key for i in w.arch_ids)


def test_shards_partition_graphs_and_archs():
    archs = select_archs(limit=300, seed=1) + [Arch.from_str(ONE_SKIP)]
    full = make_plan(archs)
    shards = [make_plan(archs, (i, 3)) for i in (1, 2, 3)]
    keys = [w.key for s in shards for w in s.work]
    assert sorted(keys) == sorted(w.key for w in full.work)
    ids = sorted(i for s in shards for i in s.arch_ids)
    assert ids == sorted(full.arch_ids)
    by_key = {w.key: w for w in full.work}
    for s in shards:
        assert s.selection_digest == full.selection_digest
        for w in s.work:
            assert w.timed_arch_id == by_key[w.key].timed_arch_id
            assert w.arch_ids == by_key[w.key].arch_ids
