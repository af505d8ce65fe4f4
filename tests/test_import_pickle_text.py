"""A damaged protocol-0 pickle is text too: it must be called damaged, not a CSV or JSON.

Protocol-0 pickles are ASCII, so "is it text?" alone called a truncated or corrupt one
"text (a CSV or JSON file?), not a pickle". Its opcode structure tells them apart.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from test_import_hostile import _cli, _datasets, _one_line_refusal
from test_importers import _release

from latbench.importers import read_source
from latbench.importers.common import load_source_pickle
from latbench.safepickle import DEFAULT_LIMITS, CorruptPickleError, UnsafePickleError

TEXT = r"text \(a CSV or JSON file\?\), not a pickle"
DAMAGED = "damaged protocol-0 pickle"


def _p0_release(n: int = 40) -> bytes:
    """A release dict (plain floats, so the whole pickle is ASCII) in protocol 0."""
    return pickle.dumps({k: float(v) for k, v in _release(3, n=n).items()}, protocol=0)


def _refusal(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(CorruptPickleError) as info:
        load_source_pickle(path, {}, DEFAULT_LIMITS)
    return str(info.value)


def test_the_reported_truncated_protocol_0_pickle_is_damaged_not_text(tmp_path):
    data = pickle.dumps({"a": [1.0, 2.0]}, protocol=0)[:-5]
    assert data.isascii()
    msg = _refusal(tmp_path / "p0.pickle", data)
    # before: "p0.pickle: text (a CSV or JSON file?), not a pickle"
    assert DAMAGED in msg and "truncated" in msg and "text (a CSV" not in msg, msg


PLAIN = {
    "dict of lists": {"a": [1.0, 2.0], "b": [None, True, "x"]},
    "list": [1, 2, "three", 4.5, None],
    "nested": {"k": {"inner": [(1, 2), ("a", "b")]}, "n": 12345678901234567890},
    "tuple keys": {(3, 3, 3, 3, 3, 3): 1.5, (0, 1, 2, 3, 4, 0): 2.5},
    "tuple": (1, "a", [2.0]),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_every_truncation_of_a_protocol_0_container_is_a_damaged_pickle(tmp_path, name):
    data = pickle.dumps(PLAIN[name], protocol=0)
    assert data.isascii() and data[:1] == b"("
    wrong = []
    for cut in range(2, len(data)):  # "(" alone says nothing; from "(d", "(l", "(I" on
        msg = _refusal(tmp_path / "x.pickle", data[:cut])
        if DAMAGED not in msg or "truncated" not in msg:
            wrong.append((data[:cut], msg))
    assert not wrong, wrong[:3]


def test_a_corrupt_protocol_0_release_says_where(tmp_path):
    data = _p0_release()
    i = data.index(b"\nF", 200) + 1  # a float opcode in the middle, replaced by junk
    bad = data[:i] + b"~" + data[i + 1 :]
    f = tmp_path / "mine.pickle"
    f.write_bytes(bad)
    with pytest.raises(CorruptPickleError, match=DAMAGED) as info:
        read_source("eagle", f, key="mine")  # before: "text (a CSV or JSON file?)"
    assert f"corrupt at byte {i}" in str(info.value)


def test_cli_import_of_a_truncated_protocol_0_release_is_one_line_and_writes_nothing(
    tmp_path, capsys
):
    data = _p0_release()
    src = tmp_path / "src"
    src.mkdir()
    f = src / "mine.pickle"
    f.write_bytes(data[: len(data) // 2])
    home = tmp_path / "home"
    rc, out, err = _cli(
        capsys, "import", "eagle", str(f), "--key", "mine", "--data-home", str(home)
    )
    _one_line_refusal(rc, err, DAMAGED, "truncated", "mine.pickle")
    assert "text (a CSV" not in err and _datasets(home) == []


def test_a_whole_protocol_0_pickle_of_another_layout_keeps_the_loaders_reason(tmp_path):
    f = tmp_path / "mine.pickle"
    f.write_bytes(pickle.dumps([1.0, 2.0], protocol=0))  # a list: the release is a dict
    with pytest.raises(CorruptPickleError) as info:
        read_source("eagle", f, key="mine")
    msg = str(info.value)
    assert "refused: a list" in msg  # before: "text (a CSV or JSON file?), not a pickle"
    assert "text (a CSV" not in msg and DAMAGED not in msg


# CSV and JSON files, some opening with a letter that is also a pickle opcode (V: a
# text string, N: None, I: an int, F: a float, S: a quoted string, g: a memo read, l: a
# list): none of them is a pickle's opcode sequence.
TEXTS = {
    "csv": b"arch,latency_ms\n3,3,3,3,3,3,1.5\n",
    "json object": b'{"3,3,3,3,3,3": 1.5}',
    "json list": b"[[3, 3, 3, 3, 3, 3, 1.5]]\n",
    "V header": b"Value,x\n1,2\n",
    "N header": b"Name,latency\na,1\n",
    "I header": b"ID,latency\n1,2.5\n",
    "F header": b"FLOPs,latency\n1,2\n",
    "S header": b"Status,latency\nok,1\n",
    "g header": b"graph_key,latency_ms\nabc,1.5\n",
    "l header": b"latency_ms\n1.5\n2.5\n",
    "V line, N line": b"Vx\nN\n",
    "one V line": b"Value",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_csv_and_json_stay_text_while_the_same_content_pickled_is_damaged(tmp_path, name):
    text = TEXTS[name]
    assert "text (a CSV" in _refusal(tmp_path / "t.pickle", text)
    # the same content in a protocol-0 pickle, truncated: a damaged pickle, not text
    pickled = pickle.dumps({"file": text.decode(), "rows": text.decode().splitlines()}, 0)
    msg = _refusal(tmp_path / "p.pickle", pickled[:-3])
    assert DAMAGED in msg and "text (a CSV" not in msg, msg


def test_protocol_1_pickles_truncated_anywhere_are_never_called_text(tmp_path):
    # their first bytes can be printable ("}q", "]q", "(K"): before, called text
    wrong = []
    for obj in PLAIN.values():
        data = pickle.dumps(obj, protocol=1)
        for cut in range(2, len(data)):
            msg = _refusal(tmp_path / "x.pickle", data[:cut])
            if "text (a CSV" in msg:
                wrong.append((data[:cut], msg))
    assert not wrong, wrong[:3]


@pytest.mark.parametrize(
    "text",
    [b"cpu,latency_ms\n1,2.5\n", b"Value,x\nNone,1\n", b"class,n\nconv,3\n"],
    ids=["c: no class name", "V, N, then o: OBJ", "c: no class name 2"],
)
def test_text_the_loader_calls_unsafe_is_text_but_a_class_reference_stays_unsafe(tmp_path, text):
    f = tmp_path / "x.pickle"
    f.write_bytes(text)
    # before: "pickle references global pu,latency_ms.1,2.5" / "opcode OBJ is refused"
    with pytest.raises(CorruptPickleError, match=TEXT):
        load_source_pickle(f, {}, DEFAULT_LIMITS)
    for unsafe in (
        b"cos\nsystem\n(S'echo hi'\ntR.",  # whole
        b"cos\nsystem\n(S'echo hi'\nt",  # truncated
        b"cos\nsystem\n",  # only the class reference
        b"(cos\nsystem\nS'x'\no.",  # OBJ
    ):
        f.write_bytes(unsafe)
        with pytest.raises(UnsafePickleError, match="os.system"):
            load_source_pickle(f, {}, DEFAULT_LIMITS)
