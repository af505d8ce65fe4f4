"""A pickle the interpreter does not load says how far it got: the error's ``progress``.

The expected opcode counts and offsets come from :mod:`pickletools`' own parse of the
intact pickle, not from the interpreter under test.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct

import numpy as np
import pytest

from latbench.safepickle import (
    NUMPY_SCALARS,
    CorruptPickleError,
    Limits,
    PickleProgress,
    UnsafePickleError,
    load_pickle,
)

OBJ = {
    "floats": [1.5, -2.25, 1e300],
    "ints": [0, 7, 300, 70000, -5, 2**40, 12345678901234567890],
    (3, 3, 0, 1, 4, 2): (None, True, False),
    "text": "caf\u00e9 'quoted' \"x\"\n",
    "nested": {"k": [(1, 2), ("a", "b")], "empty": ([], {}, ())},
}
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
BYTES = {"bytes": b"\x00\xff" * 3}  # protocols 0 to 2 pickle bytes by calling a global


def _dumps(protocol: int) -> tuple[bytes, dict]:
    obj = OBJ | BYTES if protocol >= 3 else OBJ
    return pickle.dumps(obj, protocol=protocol), obj


MEMO_WRITES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})


def _ops(data: bytes) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of each opcode of an intact pickle, by pickletools."""
    ops = list(pickletools.genops(data))
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    return [(op.name, pos, end) for (op, _, pos), end in zip(ops, ends, strict=True)]


def _progress(data: bytes, *args, error=CorruptPickleError) -> PickleProgress:
    with pytest.raises(error) as info:
        load_pickle(data, *args)
    assert info.value.progress is not None, str(info.value)
    return info.value.progress


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_truncation_reports_the_opcode_it_cuts_and_the_opcodes_before(protocol):
    data, obj = _dumps(protocol)
    ops = _ops(data)
    assert load_pickle(data) == obj
    wrong = []
    for cut in range(1, len(data)):
        done = [op for op in ops if op[2] <= cut]
        nxt = ops[len(done)]  # the opcode the cut falls in, or the one after the cut
        inside = nxt[1] < cut
        want = PickleProgress(
            ops=len(done),
            offset=nxt[1] if inside else cut,
            damage="truncated",
            opcode=nxt[0] if inside else None,
            memo=sum(name in MEMO_WRITES for name, _, _ in done),
        )
        got = _progress(data[:cut])
        if got != want:
            wrong.append((cut, got, want))
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_byte_that_is_no_opcode_is_corrupt_where_it_stands(protocol):
    data, _ = _dumps(protocol)
    ops = _ops(data)
    for k, (_, start, _) in enumerate(ops):
        bad = data[:start] + b"\xff" + data[start + 1 :]
        got = _progress(bad)
        memo = sum(name in MEMO_WRITES for name, _, _ in ops[:k])
        assert got == PickleProgress(k, start, "corrupt", None, memo), (start, got)


def test_the_corrupt_opcode_in_a_protocol_0_pickle_is_found_where_it_stands():
    data = pickle.dumps(OBJ, protocol=0)
    ops = _ops(data)
    k = [k for k, op in enumerate(ops) if op[0] == "FLOAT"][-1]
    start = ops[k][1]
    got = _progress(data[:start] + b"~" + data[start + 1 :])  # ~ is no opcode
    assert (got.ops, got.offset, got.damage, got.opcode) == (k, start, "corrupt", None)


@pytest.mark.parametrize(
    ("data", "want"),
    [
        # literals that do not parse, after a MARK
        (b"(Fx.5\nl.", PickleProgress(1, 1, "corrupt", "FLOAT", 0)),
        (b"(I12a\nl.", PickleProgress(1, 1, "corrupt", "INT", 0)),
        (b"(S'unquoted\nl.", PickleProgress(1, 1, "corrupt", "STRING", 0)),
        # BINSTRING claiming a negative size is corrupt, not cut short
        (
            b"\x80\x02T" + struct.pack("<i", -3) + b"abc.",
            PickleProgress(1, 2, "corrupt", "BINSTRING", 0),
        ),
        # a memo read of an entry never written
        (b"\x80\x02]q\x00h\x05.", PickleProgress(3, 5, "corrupt", "BINGET", 1)),
        # a memo write past those written so far: refused, reported as corrupt
        (b"\x80\x02]q\x03.", PickleProgress(2, 3, "corrupt", "BINPUT", 0)),
        # APPEND on an empty stack at the last byte: corrupt, although nothing follows
        (b"N0a", PickleProgress(2, 2, "corrupt", "APPEND", 0)),
        # STOP with two objects on the stack
        (b"NN.", PickleProgress(2, 2, "corrupt", "STOP", 0)),
        # an unsupported protocol number is a bad argument
        (b"\x80\x09N.", PickleProgress(0, 0, "corrupt", "PROTO", 0)),
    ],
    ids=["float", "int", "string", "negative size", "get", "put gap", "append", "stop", "proto"],
)
def test_a_bad_argument_is_corrupt_at_its_opcode(data, want):
    assert _progress(data) == want


@pytest.mark.parametrize(
    ("data", "want"),
    [
        # one-byte arguments read past the end (BININT1, BINGET, BINPUT)
        (b"\x80\x02]K", PickleProgress(2, 3, "truncated", "BININT1", 0)),
        (b"\x80\x02]q\x00h", PickleProgress(3, 5, "truncated", "BINGET", 1)),
        (b"\x80\x02]q", PickleProgress(2, 3, "truncated", "BINPUT", 0)),
        # a length that claims more than the data holds
        (b"\x80\x02X\x10\x00\x00\x00abc", PickleProgress(1, 2, "truncated", "BINUNICODE", 0)),
        # a text argument with no newline
        (b"(lp0\nI12", PickleProgress(3, 5, "truncated", "INT", 1)),
        # the data ends between opcodes, before a STOP
        (b"(lp0\n", PickleProgress(3, 5, "truncated", None, 1)),
    ],
    ids=["binint1", "binget", "binput", "claimed length", "text line", "no stop"],
)
def test_the_data_ending_early_is_truncated(data, want):
    assert _progress(data) == want


def test_a_truncation_keeps_its_message():
    with pytest.raises(CorruptPickleError) as info:
        load_pickle(b"\x80\x02X\x10\x00\x00\x00abc")
    msg = str(info.value)
    assert "(truncated or corrupt?): ValueError: a string or bytes argument claims 16" in msg


def test_a_limit_refuses_valid_opcodes_without_calling_them_damage():
    data = pickle.dumps({"a": [1.0]}, protocol=2)
    ops = _ops(data)
    k = next(k for k, op in enumerate(ops) if op[0] == "EMPTY_LIST")
    got = _progress(data, None, Limits(containers=frozenset({dict})))
    assert got == PickleProgress(k, ops[k][1], None, "EMPTY_LIST", 2)
    # a result that breaks a limit: the whole pickle ran
    deep = pickle.dumps([[[[1]]]], protocol=2)
    got = _progress(deep, None, Limits(max_depth=2))
    assert got == PickleProgress(len(_ops(deep)), len(deep), None, None, 4)


def test_bytes_after_a_whole_pickle_report_its_end():
    data, _ = _dumps(4)
    got = _progress(data + b"junk")
    assert got == PickleProgress(len(_ops(data)), len(data), None, None, got.memo)
    assert got.memo == sum(op[0] in MEMO_WRITES for op in _ops(data))


def test_a_refused_global_is_not_damage_but_a_malformed_name_is():
    data = pickle.dumps(os.system, protocol=2)  # PROTO, then GLOBAL at byte 2
    assert _progress(data, error=UnsafePickleError) == PickleProgress(1, 2, None, "GLOBAL", 0)
    got = _progress(b"cos\nsystem\n(S'x'\ntR.", error=UnsafePickleError)
    assert got == PickleProgress(0, 0, None, "GLOBAL", 0)
    # a CSV header read as GLOBAL: still refused as unsafe, but no pickle's name
    got = _progress(b"cpu,latency_ms\n1,2.5\n", error=UnsafePickleError)
    assert got == PickleProgress(0, 0, "corrupt", "GLOBAL", 0)


def test_an_allow_listed_callable_that_refuses_its_arguments_is_not_damage():
    data = pickle.dumps(np.float64(1.5), protocol=3)
    ops = _ops(data)
    k = [k for k, op in enumerate(ops) if op[0] == "REDUCE"][-1]  # scalar(dtype, payload)
    # an 8-byte payload cut to 7 bytes by editing its length byte and removing one byte
    at = data.index(struct.pack("<d", 1.5))
    short = data[: at - 1] + b"\x07" + data[at : at + 7] + data[at + 8 :]
    got = _progress(short, NUMPY_SCALARS)
    assert (got.ops, got.damage, got.opcode) == (k, None, "REDUCE")
    assert got.offset == ops[k][1] - 1


def test_no_progress_when_the_interpreter_never_ran():
    for data, limits in ((b"", Limits()), (b"N." * 10, Limits(max_bytes=8))):
        with pytest.raises(CorruptPickleError) as info:
            load_pickle(data, None, limits)
        assert info.value.progress is None


def test_progress_survives_the_file_path_and_names_the_file(tmp_path):
    f = tmp_path / "x.pickle"
    f.write_bytes(pickle.dumps([1, 2], protocol=2)[:-3])
    with pytest.raises(CorruptPickleError, match="x.pickle") as info:
        load_pickle(f)
    assert info.value.progress.damage == "truncated"
