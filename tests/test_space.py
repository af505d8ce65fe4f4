"""The NAS-Bench-201 search space: strings, vectors, ids, validity (docs/design.md §2)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latbench.space import (
    EDGES,
    N_ARCHS,
    N_VALID,
    OPS,
    Arch,
    ArchError,
    all_archs,
    arch_id,
    format_arch,
    from_id,
    is_valid,
    parse_arch,
)

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_ops_and_edges_follow_design():
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    # O1 is 0->1, O2 0->2, O3 1->2, O4 0->3, O5 1->3, O6 2->3
    assert EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


def test_string_format_of_a_known_arch():
    # Spelled out by hand from the NAS-Bench-201 template |O1~0|+|O2~0|O3~1|+|O4~0|O5~1|O6~2|.
    v = (1, 2, 3, 4, 0, 1)
    s = "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"
    assert format_arch(v) == s
    assert parse_arch(s) == v
    assert parse_arch(ALL_CONV3) == (3,) * 6


def test_enumeration_counts():
    archs = list(all_archs())
    assert len(archs) == N_ARCHS == 15_625 == 5**6
    assert [a.id for a in archs] == list(range(N_ARCHS))
    assert len({a.vector for a in archs}) == N_ARCHS
    assert sum(a.valid for a in archs) == N_VALID == 15_284


def _valid_by_paths(v):
    # Independent validity check: enumerate the 4 input->output paths of the cell,
    # 0->3, 0->1->3, 0->2->3, 0->1->2->3 (edge indices into the vector), and ask
    # whether one of them has no 'none' op on it.
    paths = [(3,), (0, 4), (1, 5), (0, 2, 5)]
    return any(all(v[e] != 0 for e in p) for p in paths)


def test_validity_matches_path_enumeration():
    vectors = list(itertools.product(range(5), repeat=6))
    got = [is_valid(v) for v in vectors]
    assert got == [_valid_by_paths(v) for v in vectors]
    # Invalid count by inclusion-exclusion on ops being 'none' (0) or not: a cell is
    # invalid iff each of the 4 paths holds a zero. Count zero-patterns z (6 bits) that
    # block all paths, weight each by 4^(number of non-zero edges).
    invalid = 0
    for z in itertools.product((True, False), repeat=6):  # True = op is 'none'
        if not _valid_by_paths([0 if zero else 1 for zero in z]):
            invalid += 4 ** sum(not zero for zero in z)
    assert invalid == N_ARCHS - N_VALID == 341


def test_every_string_round_trips():
    for a in all_archs():
        s = a.str
        assert parse_arch(s) == a.vector
        assert Arch.from_str(s) == a
        assert format_arch(parse_arch(s)) == s


def test_every_vector_and_id_round_trips():
    for v in itertools.product(range(5), repeat=6):
        aid = arch_id(v)
        assert from_id(aid) == v
        assert Arch.from_vector(list(v)).vector == v
        assert Arch.from_id(aid).vector == v


def test_arch_id_is_base5_with_o1_most_significant():
    assert arch_id((0, 0, 0, 0, 0, 0)) == 0
    assert arch_id((0, 0, 0, 0, 0, 1)) == 1  # O6 is the least significant digit
    assert arch_id((1, 0, 0, 0, 0, 0)) == 5**5 == 3125  # O1 is the most significant
    assert arch_id((4,) * 6) == 15_624
    assert arch_id((1, 2, 3, 4, 0, 1)) == 1 * 3125 + 2 * 625 + 3 * 125 + 4 * 25 + 0 * 5 + 1
    assert from_id(3125 + 1) == (1, 0, 0, 0, 0, 1)
    # id order = lexicographic order of vectors
    assert [arch_id(v) for v in itertools.product(range(5), repeat=6)] == list(range(N_ARCHS))


def test_arch_parse_accepts_all_forms():
    v = (1, 2, 3, 4, 0, 1)
    a = Arch(v)
    aid = 1 * 3125 + 2 * 625 + 3 * 125 + 4 * 25 + 1
    assert Arch.parse(a) is a
    assert Arch.parse(a.str) == a
    assert Arch.parse(aid) == a
    assert Arch.parse(np.int64(aid)) == a
    assert Arch.parse(np.int32(aid)) == a
    assert Arch.parse(list(v)) == a
    assert Arch.parse(np.array(v)) == a
    assert Arch.parse(np.array(v, dtype=np.uint8)) == a
    assert Arch.parse(f"  {a.str}\n") == a  # surrounding whitespace is tolerated
    assert a.ops == (
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "none",
        "skip_connect",
    )
    assert str(a) == a.str
    assert a.id == aid
    assert from_id(np.int16(7)) == (0, 0, 0, 0, 1, 2)


def test_arch_is_hashable_and_equal_by_vector():
    assert Arch([3] * 6) == Arch.from_str(ALL_CONV3)
    assert len({Arch([3] * 6), Arch.from_str(ALL_CONV3), Arch.from_id(arch_id((3,) * 6))}) == 1


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_bools_are_rejected_as_ids(value):
    with pytest.raises(ArchError, match="bool"):
        Arch.parse(value)
    with pytest.raises(ArchError):
        from_id(value)


@pytest.mark.parametrize(
    ("vector", "match"),
    [
        ((0, 0, 0, 0, 0, 5), r"entry 5 = 5 is not an op index 0\.\.4"),
        ((0, -1, 0, 0, 0, 0), r"entry 1 = -1 is not an op index"),
        ((0, 0, 1.5, 0, 0, 0), r"entry 2 = 1\.5 is not an op index"),
        ((True, 0, 0, 0, 0, 0), r"entry 0 = True"),
        ((0, 0, 0, np.bool_(True), 0, 0), r"entry 3"),
        ((1, 2, 3), r"must have 6 entries, got 3"),
        ((1,) * 7, r"must have 6 entries, got 7"),
        ((), r"must have 6 entries, got 0"),
        (("a", 0, 0, 0, 0, 0), r"must hold 6 integers"),
        ((None, 0, 0, 0, 0, 0), r"must hold 6 integers"),
        (("3", 0, 0, 0, 0, 0), r"entry 0 = '3'"),
        (3.5, r"must hold 6 integers"),
        (None, r"must hold 6 integers"),
    ],
)
def test_bad_vectors(vector, match):
    with pytest.raises(ArchError, match=match):
        Arch.parse(vector)
    with pytest.raises(ArchError, match=match):
        arch_id(vector)


@pytest.mark.parametrize(
    ("aid", "match"),
    [
        (-1, r"arch_id -1 is outside 0\.\.15624"),
        (15_625, r"arch_id 15625 is outside"),
        (np.int64(10**9), r"outside"),
    ],
)
def test_bad_ids(aid, match):
    with pytest.raises(ArchError, match=match):
        Arch.parse(aid)
    with pytest.raises(ArchError, match=match):
        from_id(aid)


@pytest.mark.parametrize("aid", [1.0, "12", None])
def test_non_integer_ids_rejected_by_from_id(aid):
    with pytest.raises(ArchError, match="must be an integer"):
        from_id(aid)


GOOD = ALL_CONV3
# (label, malformed string, regex the message must match: what is wrong and where)
MALFORMED = [
    ("empty", "", r"empty architecture string"),
    ("blank", "   ", r"empty architecture string"),
    (
        "two nodes",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
        r"expected 3 nodes .*found 2",
    ),
    ("four nodes", GOOD + "+|none~0|", r"expected 3 nodes .*found 4"),
    (
        "missing leading bar",
        "nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 1 .*must start and end with '\|'",
    ),
    (
        "missing trailing bar",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2",
        r"node 3 .*must start and end with '\|'",
    ),
    (
        "too few edges in node 2",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 2 must have 2 input edge\(s\), found 1",
    ),
    (
        "too many edges in node 3",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|none~3|",
        r"node 3 must have 3 input edge\(s\), found 4",
    ),
    (
        "unknown op with suggestion",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_5x5~1|nor_conv_3x3~2|",
        r"node 3, edge 2: unknown op 'nor_conv_5x5'.*did you mean 'nor_conv_3x3'",
    ),
    (
        "wrong input index",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 2, edge 2: input index 0, expected 1",
    ),
    (
        "negative input index",
        "|nor_conv_3x3~-1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 1, edge 1: input index -1, expected 0",
    ),
    (
        "missing tilde",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3 0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 3, edge 1: 'nor_conv_3x3 0' is not 'op~input'",
    ),
    (
        "missing index",
        "|nor_conv_3x3~|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 1, edge 1: 'nor_conv_3x3~' is not 'op~input'",
    ),
    (
        "empty edge",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0||+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 2, edge 2: '' is not 'op~input'",
    ),
    (
        "op in upper case",
        "|NOR_CONV_3X3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        r"node 1, edge 1: unknown op 'NOR_CONV_3X3'",
    ),
    ("not a string (bytes)", GOOD.encode(), r"must be a string, got bytes"),
    ("not a string (list)", ["|none~0|"], r"must be a string, got list"),
]


@pytest.mark.parametrize(("label", "text", "match"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_strings(label, text, match):
    with pytest.raises(ArchError, match=match) as info:
        parse_arch(text)
    assert isinstance(info.value, ValueError)  # documented: ArchError is a ValueError
    if isinstance(text, str) and text.strip():
        assert repr(text) in str(info.value)  # the message quotes the offending string


def test_malformed_string_through_arch_parse():
    with pytest.raises(ArchError, match="unknown op 'conv3x3'"):
        Arch.parse("|conv3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_arch_is_immutable():
    a = Arch((3,) * 6)
    with pytest.raises(AttributeError):
        a.vector = (0,) * 6  # type: ignore[misc]


def test_an_overlong_string_is_refused_with_a_short_message():
    from latbench.space import MAX_ARCH_CHARS

    huge = "|nor_conv_3x3~0|" * 100_000
    with pytest.raises(ArchError) as err:
        parse_arch(huge)
    assert len(str(err.value)) < 200 and str(len(huge)) in str(err.value)
    longest = "+".join(
        "|" + "|".join(f"nor_conv_3x3~{i}" for i in range(n)) + "|" for n in (1, 2, 3)
    )
    assert len(longest) < MAX_ARCH_CHARS and parse_arch(longest) == (3,) * 6
