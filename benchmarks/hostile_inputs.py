"""Hostile-input campaign: crafted release pickles and HELP ``.pt`` zips against ``latbench import``.

Each case is written to its own folder and imported by a fresh ``python -m latbench
import`` process (so a crash shows as a signal exit) with its own empty data home.
Code-execution payloads try to create a marker file. A case passes when the import
is refused with exit status 2 and one line on stderr, no traceback, no signal, no
marker and nothing written to the data home. Two valid controls must import.

Categories: code execution, out-of-bounds reads (dtype BUILD tricks), deep nesting,
huge integers and allocation claims, zip bombs, corrupt/encrypted/odd zip members,
empty and malformed files, and hostile release content. Seeded: every run builds the
same bytes.

Run:  python benchmarks/hostile_inputs.py [--json benchmarks/results/hostile_inputs.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import random
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hostile_common import petabyte_npz, run_capped

SEED = 12
RESULTS = Path(__file__).resolve().parent / "results" / "hostile_inputs.json"

Builder = Callable[[Path, Path], Path]  # (case folder, marker) -> file to import
CASES: list[tuple[str, str, str, Builder]] = []  # name, importer, category, builder


def case(name: str, importer: str, category: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        CASES.append((name, importer, category, fn))
        return fn

    return deco


# ------------------------------------------------------------------ pickle helpers


def _str(s: str) -> bytes:  # BINUNICODE
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _release_bytes(n: int = 50, seed: int = SEED) -> bytes:
    """A valid release-style pickle: {vector: numpy float64 seconds}."""
    from latbench.space import all_archs

    rng = np.random.default_rng(seed)
    valid = [a for a in all_archs() if a.valid][:n]
    lat = rng.uniform(1e-3, 2e-2, n)
    return pickle.dumps({a.vector: np.float64(x) for a, x in zip(valid, lat, strict=True)}, 3)


def _pkl(folder: Path, data: bytes, name: str = "desktop-cpu-core-i7-7820x-fp32.pickle") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _reduce(func: object, *args: object) -> bytes:
    class R:
        def __reduce__(self):  # noqa: D105
            return (func, args)

    return pickle.dumps({(3, 3, 3, 3, 3, 3): R()}, protocol=3)


def _touch(marker: Path) -> str:
    return f"touch {marker}"


# ------------------------------------------------------------------ torch-zip helpers


def _torch_zip(obj_bytes: bytes, *, method: int = zipfile.ZIP_STORED, name: str = "archive/data.pkl",
               extra: dict[str, bytes] | None = None) -> bytes:  # fmt: skip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr(name, obj_bytes)
        zf.writestr("archive/version", b"3\n")
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def _help_folder(folder: Path, latency_zip: bytes, index_zip: bytes | None = None) -> Path:
    from latbench.space import format_arch, from_id

    if index_zip is None:
        mapping = {format_arch(from_id(i)): i for i in range(15625)}
        index_zip = _torch_zip(pickle.dumps(mapping, protocol=2))
    (folder / "str_arch2idx.pt").write_bytes(index_zip)
    path = folder / "pixel2.pt"
    path.write_bytes(latency_zip)
    return path


def _help_latencies(seed: int = SEED) -> bytes:
    rng = random.Random(seed)
    return pickle.dumps([rng.uniform(1.0, 20.0) for _ in range(15625)], protocol=2)


# ------------------------------------------------------------------ controls

CONTROLS: list[tuple[str, str, Builder]] = [
    ("valid release pickle", "eagle", lambda d, m: _pkl(d, _release_bytes())),
    ("valid HELP .pt", "help", lambda d, m: _help_folder(d, _torch_zip(_help_latencies()))),
]

# ------------------------------------------------------------------ code execution

for _name, _fn, _args in [
    ("os.system", os.system, "touch"),
    ("posix.system via GLOBAL", None, None),
    ("builtins.eval", eval, "eval"),
    ("builtins.exec", exec, "exec"),
    ("subprocess.check_call", subprocess.check_call, "list"),
    ("subprocess.Popen", subprocess.Popen, "list"),
    ("builtins.open for writing", open, "open"),
    ("os.remove", os.remove, "remove"),
]:

    def _make(fn=_fn, kind=_args):  # noqa: ANN001
        def build(d: Path, m: Path) -> Path:
            if kind == "touch":
                return _pkl(d, _reduce(fn, _touch(m)))
            if kind == "eval":
                return _pkl(d, _reduce(fn, f"open({str(m)!r}, 'w')"))
            if kind == "exec":
                return _pkl(d, _reduce(fn, f"open({str(m)!r}, 'w').close()"))
            if kind == "list":
                return _pkl(d, _reduce(fn, ["touch", str(m)]))
            if kind == "open":
                return _pkl(d, _reduce(fn, str(m), "w"))
            if kind == "remove":
                return _pkl(d, _reduce(fn, str(d / "canary")))
            data = b"\x80\x02" + _global("posix", "system") + _str(_touch(m)) + b"\x85R."
            return _pkl(d, data)

        return build

    case(f"exec: {_name}", "eagle", "code execution")(_make())


@case("exec: STACK_GLOBAL os.system", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x04" + b"\x8c\x02os\x8c\x06system\x93" + _str(_touch(m)) + b"\x85R.")


@case("exec: INST opcode", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"(" + _str(_touch(m)) + b"ios\nsystem\n.")


@case("exec: OBJ opcode", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x02(" + _global("os", "system") + _str(_touch(m)) + b"o.")


@case("exec: NEWOBJ of subprocess.Popen", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    args = b"(" + b"]" + _str("touch") + b"a" + _str(str(m)) + b"a" + b"t"
    return _pkl(d, b"\x80\x02" + _global("subprocess", "Popen") + args + b"\x81.")


@case("exec: EXT1 registered global", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x02\x82\x01" + _str(_touch(m)) + b"\x85R.")


@case("exec: persistent id (torch storage)", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x02" + _str("storage") + b"Q.")


@case("exec: numpy _reconstruct", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, pickle.dumps({(3,) * 6: np.arange(3)}, protocol=3))


@case("exec: builtins.getattr chain", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x02" + _global("builtins", "getattr") + _global("os", "path")
                + _str("exists") + b"\x86R.")  # fmt: skip


@case("exec: copyreg._reconstructor", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x02" + _global("copyreg", "_reconstructor")
                + _global("os", "system") + _global("builtins", "str") + _str(_touch(m))
                + b"\x87R.")  # fmt: skip


@case("exec: os.system inside a HELP .pt", "help", "code execution")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(_reduce(os.system, _touch(m))))


@case("exec: torch tensor rebuild in .pt", "help", "code execution")
def _(d: Path, m: Path) -> Path:
    data = (b"\x80\x02" + _global("torch._utils", "_rebuild_tensor_v2")
            + b"(" + _str("storage") + b"Q" + b"K\x00K\x01\x85K\x01\x85\x89t" + b"R.")  # fmt: skip
    return _help_folder(d, _torch_zip(data))


@case("exec: hostile index file", "help", "code execution")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(_help_latencies()), _torch_zip(_reduce(os.system, _touch(m))))


@case("exec: eval in a nested container", "eagle", "code execution")
def _(d: Path, m: Path) -> Path:
    class R:
        def __reduce__(self):  # noqa: D105
            return (eval, (f"open({str(m)!r}, 'w')",))

    return _pkl(d, pickle.dumps({(3,) * 6: [1, {"x": (R(),)}]}, protocol=4))


# ------------------------------------------------------------------ out-of-bounds reads


def _dtype_state(shape: object = None, names: object = None, fields: object = None,
                 elsize: int = -1, align: int = -1, flags: int = 0) -> bytes:  # fmt: skip
    def obj(x: object) -> bytes:
        return pickle.dumps(x, protocol=3)[2:-1]

    return (b"(K\x03" + _str("<") + obj(shape) + obj(names) + obj(fields)
            + b"J" + struct.pack("<i", elsize) + b"J" + struct.pack("<i", align)
            + b"J" + struct.pack("<i", flags) + b"t")  # fmt: skip


def _oob(state: bytes, code: str = "f8", payload: bytes = b"\0" * 8) -> bytes:
    scalar = _global("numpy.core.multiarray", "scalar")
    dtype = _global("numpy", "dtype") + _str(code) + b"\x89\x88\x87R" + state + b"b"
    body = scalar + dtype + b"C" + bytes([len(payload)]) + payload + b"\x86R"
    return b"\x80\x03}((K\x03K\x03K\x03K\x03K\x03K\x03t" + body + b"u."


_SUB = _global("numpy", "dtype") + _str("f8") + b"\x89\x88\x87R"
for _label, _state in [
    (
        "subarray shape (64,)",
        _dtype_state(shape=None)[:0]
        + b"(K\x03"
        + _str("|")
        + _SUB
        + b"K@\x85\x86NNJ\x00\x02\x00\x00J\x08\x00\x00\x00K\x00tb",
    ),
    (
        "subarray shape (10**7,)",
        b"(K\x03"
        + _str("|")
        + _SUB
        + b"J\x80\x96\x98\x00\x85\x86NNJ\x00\x00\x00\x00J\x08\x00\x00\x00K\x00tb",
    ),
    ("elsize 4096", _dtype_state(elsize=4096)),
    ("fields and names", _dtype_state(names=("a",), fields={"a": (None, 0)})),
    ("object flags 63", _dtype_state(flags=63)),
    ("state not a tuple", _str("junk")),
]:
    case(f"oob: dtype BUILD {_label}", "eagle", "out-of-bounds read")(
        lambda d, m, s=_state: _pkl(d, _oob(s if s.endswith(b"b") else s + b"b"))
    )
for _code in ("O", "V8", "U2", "M8", "S8"):
    case(f"oob: dtype {_code!r}", "eagle", "out-of-bounds read")(
        lambda d, m, c=_code: _pkl(d, _oob(_dtype_state(), code=c))
    )
case("oob: scalar with 3 payload bytes", "eagle", "out-of-bounds read")(
    lambda d, m: _pkl(d, _oob(_dtype_state(), payload=b"abc"))
)
case("oob: scalar with 4096 payload bytes", "eagle", "out-of-bounds read")(
    lambda d, m: _pkl(d, b"\x80\x03}((K\x03K\x03K\x03K\x03K\x03K\x03t" + _global("numpy.core.multiarray", "scalar")
                      + _global("numpy", "dtype") + _str("f8") + b"\x89\x88\x87R" + _dtype_state() + b"b"
                      + b"B" + struct.pack("<I", 4096) + b"\0" * 4096 + b"\x86Ru."))  # fmt: skip


# ------------------------------------------------------------------ nesting, ints, allocations


@case("deep: tuple key nested 10**6", "eagle", "deep nesting")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x03}(K\x01" + b"\x85" * 1_000_000 + b"K\x01u.")


@case("deep: MARK-nested tuple key 10**5", "eagle", "deep nesting")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x03}(" + b"(" * 100_000 + b"K\x01" + b"t" * 100_000 + b"K\x01u.")


@case("deep: list nested 10**6", "eagle", "deep nesting")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x03" + b"]" * 1_000_000 + b"a" * 999_999 + b".")


@case("deep: frozenset nested 10**5", "eagle", "deep nesting")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x04}(" + b"(" * 100_000 + b"K\x01" + b"\x91" * 100_000 + b"K\x01u.")


@case("deep: nested value in a .pt", "help", "deep nesting")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(b"\x80\x02K\x01" + b"\x85" * 500_000 + b"."))


@case("int: 10**400 latency", "eagle", "huge int")
def _(d: Path, m: Path) -> Path:
    big = (10**400).to_bytes(167, "little")
    return _pkl(d, b"\x80\x03}((K\x03K\x03K\x03K\x03K\x03K\x03t\x8a\xa7" + big + b"u.")


@case("int: 10**400 op index", "eagle", "huge int")
def _(d: Path, m: Path) -> Path:
    big = (10**400).to_bytes(167, "little")
    return _pkl(
        d,
        b"\x80\x03}((\x8a\xa7"
        + big
        + b"K\x03K\x03K\x03K\x03K\x03tG?\xf0\x00\x00\x00\x00\x00\x00u.",
    )


@case("int: LONG4 of 10**6 bytes", "eagle", "huge int")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x03\x8b" + struct.pack("<I", 1_000_000) + b"\x07" * 1_000_000 + b".")


@case("int: text INT of 10**5 digits", "eagle", "huge int")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"I" + b"9" * 100_000 + b"\n.")


@case("int: 10**400 in a HELP list", "help", "huge int")
def _(d: Path, m: Path) -> Path:
    big = (10**400).to_bytes(167, "little")
    return _help_folder(d, _torch_zip(b"\x80\x02](\x8a\xa7" + big + b"e."))


for _op, _w in [(b"\x8e", 8), (b"\x8d", 8), (b"\x96", 8), (b"B", 4), (b"X", 4)]:
    case(f"alloc: {_op!r} claims 2**{8 * _w - 2} bytes", "eagle", "huge allocation")(
        lambda d, m, o=_op, w=_w: _pkl(
            d, b"\x80\x05" + o + (1 << (8 * w - 2)).to_bytes(w, "little") + b"xx."
        )
    )


@case("alloc: LONG_BINGET of an unset memo slot", "eagle", "huge allocation")
def _(d: Path, m: Path) -> Path:
    return _pkl(d, b"\x80\x03j\xff\xff\xff\x7f.")


@case("alloc: 10**6 memo puts", "eagle", "huge allocation")
def _(d: Path, m: Path) -> Path:
    return _pkl(
        d, b"\x80\x03N" + b"".join(b"r" + struct.pack("<I", i) for i in range(0, 10**6, 7)) + b"."
    )


# ------------------------------------------------------------------ zips


def _patch_sizes(data: bytes, file_size: int) -> bytes:
    """Claim ``file_size`` for the first member in both the local and central headers."""
    buf = bytearray(data)
    lh = buf.find(b"PK\x03\x04")
    struct.pack_into("<I", buf, lh + 22, file_size)
    ch = buf.find(b"PK\x01\x02")
    struct.pack_into("<I", buf, ch + 24, file_size)
    return bytes(buf)


@case("zip bomb: member claims 10 GB", "help", "zip bomb")
def _(d: Path, m: Path) -> Path:
    z = _torch_zip(_help_latencies(), method=zipfile.ZIP_DEFLATED)
    return _help_folder(d, _patch_sizes(z, 10_000_000_000 % (1 << 32) or 1 << 31))


@case("zip bomb: 64 MB of zeros claiming 1 KB", "help", "zip bomb")
def _(d: Path, m: Path) -> Path:
    z = _torch_zip(b"\0" * (64 << 20), method=zipfile.ZIP_DEFLATED)
    return _help_folder(d, _patch_sizes(z, 1024))


@case("zip bomb: 300 MB claimed, deflated", "help", "zip bomb")
def _(d: Path, m: Path) -> Path:
    z = _torch_zip(b"\0" * (1 << 20), method=zipfile.ZIP_DEFLATED)
    return _help_folder(d, _patch_sizes(z, 300 << 20))


def _flip_member(method: int, seed: int) -> Callable[[Path, Path], Path]:
    def build(d: Path, m: Path) -> Path:
        z = bytearray(_torch_zip(_help_latencies(), method=method))
        start = z.find(b"archive/data.pkl") + len("archive/data.pkl") + 50
        rng = random.Random(seed)
        for _ in range(8):
            z[rng.randrange(start, start + 5000)] ^= 0xFF
        return _help_folder(d, bytes(z))

    return build


case("corrupt: deflate member", "help", "corrupt member")(_flip_member(zipfile.ZIP_DEFLATED, 1))
case("corrupt: LZMA member", "help", "corrupt member")(_flip_member(zipfile.ZIP_LZMA, 2))
case("corrupt: bzip2 member", "help", "corrupt member")(_flip_member(zipfile.ZIP_BZIP2, 3))
case("corrupt: stored member (CRC)", "help", "corrupt member")(_flip_member(zipfile.ZIP_STORED, 4))


@case("corrupt: encrypted member flag", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    z = bytearray(_torch_zip(_help_latencies()))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = z.find(sig)
        z[i + off] |= 1
    return _help_folder(d, bytes(z))


@case("corrupt: unknown compression method 99", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    z = bytearray(_torch_zip(_help_latencies()))
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = z.find(sig)
        struct.pack_into("<H", z, i + off, 99)
    return _help_folder(d, bytes(z))


@case("zip: truncated archive", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    z = _torch_zip(_help_latencies())
    return _help_folder(d, z[: len(z) // 2])


@case("zip: two data.pkl members", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(_help_latencies(), extra={"other/data.pkl": b"\x80\x02N."}))


@case("zip: data.pkl nested too deep", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(_help_latencies(), name="a/b/data.pkl"))


@case("zip: traversal member name", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, _torch_zip(_help_latencies(), name="../data.pkl"))


@case("zip: not a zip (legacy torch format)", "help", "corrupt member")
def _(d: Path, m: Path) -> Path:
    return _help_folder(d, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + b"\0" * 64)


# ------------------------------------------------------------------ empty and malformed


case("empty: .pickle of 0 bytes", "eagle", "empty or malformed")(lambda d, m: _pkl(d, b""))
case("empty: .pt of 0 bytes", "help", "empty or malformed")(lambda d, m: _help_folder(d, b""))
case("empty: empty dict", "eagle", "empty or malformed")(lambda d, m: _pkl(d, pickle.dumps({}, 3)))
case("empty: None", "eagle", "empty or malformed")(lambda d, m: _pkl(d, pickle.dumps(None, 3)))
case("empty: .pt with an empty data.pkl", "help", "empty or malformed")(
    lambda d, m: _help_folder(d, _torch_zip(b""))
)
case("empty: empty list in .pt", "help", "empty or malformed")(
    lambda d, m: _help_folder(d, _torch_zip(pickle.dumps([], 2)))
)
for _i in range(4):
    case(f"malformed: random bytes #{_i}", "eagle", "empty or malformed")(
        lambda d, m, i=_i: _pkl(d, random.Random(SEED + i).randbytes(4096))
    )
for _i, _frac in enumerate((0.1, 0.5, 0.9, 0.999)):
    case(f"malformed: release pickle cut at {_frac:.1%}", "eagle", "empty or malformed")(
        lambda d, m, f=_frac: _pkl(d, _release_bytes()[: int(len(_release_bytes()) * f)])
    )
case("malformed: trailing junk after STOP", "eagle", "empty or malformed")(
    lambda d, m: _pkl(d, _release_bytes() + b"junk")
)


# ------------------------------------------------------------------ hostile content


def _content(mutate: Callable[[dict], None]) -> Builder:
    def build(d: Path, m: Path) -> Path:
        obj = pickle.loads(_release_bytes())
        mutate(obj)
        return _pkl(d, pickle.dumps(obj, protocol=3))

    return build


for _label, _mut in [
    ("latency 5e-324 s", lambda o: o.update({next(iter(o)): np.float64(5e-324)})),
    ("latency 1e300 s", lambda o: o.update({next(iter(o)): np.float64(1e300)})),
    ("latency NaN", lambda o: o.update({next(iter(o)): np.float64("nan")})),
    ("latency -1", lambda o: o.update({next(iter(o)): np.float64(-1.0)})),
    ("latency a 1 MB string", lambda o: o.update({next(iter(o)): "x" * (1 << 20)})),
    ("key of 7 ops", lambda o: o.update({(1, 1, 1, 1, 1, 1, 1): np.float64(0.01)})),
    ("op index 9", lambda o: o.update({(9, 1, 1, 1, 1, 1): np.float64(0.01)})),
    ("invalid architecture key", lambda o: o.update({(0, 0, 0, 0, 0, 0): np.float64(0.01)})),
    ("1 MB string key", lambda o: o.update({"k" * (1 << 20): np.float64(0.01)})),
]:
    case(f"content: {_label}", "eagle", "hostile content")(_content(_mut))


# ------------------------------------------------------------------ issue 28: bounded formats


def _dag_key(levels: int) -> bytes:
    out = b"K\x01K\x01\x86q\x000"
    for i in range(1, levels):
        out += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i]) + b"0"
    return out + b"h" + bytes([levels - 1])


_KEY6 = b"(K\x03K\x03K\x03K\x03K\x03K\x03t"
for _label, _data in [
    ("dict key a 60-level DAG of shared tuples (137-byte style)",
     b"\x80\x03}(" + _dag_key(60) + b"G" + struct.pack(">d", 1e-3) + b"u."),
    ("dict key nested 10**6 deep after a pop", b"\x80\x03}(K\x01K\x010" + b"\x85" * 10**6 + b"K\x01u."),
    ("memo index 2**27 (9 bytes)", b"\x80\x03}r\x00\x00\x00\x08."),
    ("memo PUT far beyond the entries seen", b"\x80\x03}q\x05."),
    ("set flood as a value", b"\x80\x04}(" + _KEY6 + b"(" + b"\x8f" * 100_000 + b"tu."),
    ("dict of 10**6 entries", b"\x80\x03}(" + b"".join(
        b"J" + struct.pack("<i", i) + b"N" for i in range(10**6)) + b"u."),
    ("20 MB of NONE opcodes", b"\x80\x03}(" + b"N" * (20 << 20) + b"u."),
    ("list where the layout has a dict", b"\x80\x03](K\x01e."),
    ("DUP-built shared value", b"\x80\x03}(" + _KEY6 + b"]" + b"2" * 60 + b"u."),
]:  # fmt: skip
    case(f"bounded: {_label}", "eagle-key", "bounded pickles")(
        lambda d, m, data=_data: _pkl(d, data, "mine.pickle")
    )


def _help_index_zip() -> bytes:
    from latbench.space import format_arch, from_id

    mapping = {format_arch(from_id(i)): i for i in range(15625)}
    return _torch_zip(pickle.dumps(mapping, protocol=2), method=zipfile.ZIP_DEFLATED)


for _label, _lat, _idx in [
    ("EMPTY_SET flood (8 KB zip, 8 MiB member)", b"\x80\x02](" + b"\x8f" * (8 << 20) + b"e.", None),
    ("EMPTY_DICT flood (16 MiB member)", b"\x80\x02](" + b"}" * (16 << 20) + b"e.", None),
    ("memo index 2**27", b"\x80\x02]r\x00\x00\x00\x08.", None),
    ("index key nested 10**6 deep (11 KB zip)", None,
     b"\x80\x02}(K\x01" + b"\x85" * 10**6 + b"K\x01u."),
    ("list of 10**6 ints", b"\x80\x02](" + b"K\x01" * 10**6 + b"e.", None),
]:  # fmt: skip
    case(f"bounded: HELP {_label}", "help", "bounded pickles")(
        lambda d, m, lat=_lat, idx=_idx: _help_folder(
            d,
            _torch_zip(lat or _help_latencies(), method=zipfile.ZIP_DEFLATED),
            _torch_zip(idx, method=zipfile.ZIP_DEFLATED) if idx else None,
        )
    )


@case("duplicates: pixel2.pt and Pixel2.pt", "help", "duplicate files")
def _(d: Path, m: Path) -> Path:
    path = _help_folder(d, _torch_zip(_help_latencies()))
    (d / "Pixel2.pt").write_bytes(path.read_bytes())
    return d


@case("duplicates: A.pickle and a.pickle", "eagle", "duplicate files")
def _(d: Path, m: Path) -> Path:
    _pkl(d, _release_bytes(), "a.pickle")
    _pkl(d, _release_bytes(seed=SEED + 1), "A.pickle")
    return d


def _hwnas_obj(mutate: Callable[[dict], None]) -> Builder:
    def build(d: Path, m: Path) -> Path:
        from latbench.space import all_archs

        c10: dict = {"config": [{"arch_str": a.str} for a in all_archs()]}
        for dev in ("edgegpu", "raspi4", "edgetpu", "pixel3", "eyeriss", "fpga"):
            c10[f"{dev}_latency"] = [2.0] * 15625
        for dev in ("edgegpu", "eyeriss", "fpga"):
            c10[f"{dev}_energy"] = [3.0] * 15625
        mutate(c10)
        path = d / "HW-NAS-Bench-v1_0.pickle"
        path.write_bytes(pickle.dumps({"nasbench201": {"cifar10": c10}}, protocol=4))
        return path

    return build


def _nested(depth: int) -> object:
    x: object = 1.0
    for _ in range(depth):
        x = (x,)
    return x


_LEAF = [1.0] * 1000
for _label, _mut in [
    ("nested tuple as a latency", lambda c: c["pixel3_latency"].__setitem__(3, _nested(500))),
    ("shared-list DAG as a latency (10**8 items)",
     lambda c: c["pixel3_latency"].__setitem__(3, [[_LEAF] * 1000] * 100)),
    ("pixel3_latency[5] = 1e12", lambda c: c["pixel3_latency"].__setitem__(5, 1e12)),
    ("energy 1e300", lambda c: c["fpga_energy"].__setitem__(0, 1e300)),
    ("missing metric among 10**5 escape-laden keys",
     lambda c: (c.pop("fpga_latency"), c.update({f"\x1b]2;k{i}\x07": 0 for i in range(10**5)}))),
    ("1 MB arch_str", lambda c: c["config"][0].__setitem__("arch_str", "|" * (1 << 20))),
]:  # fmt: skip
    case(f"hwnasbench: {_label}", "hwnasbench", "HW-NAS-Bench content")(_hwnas_obj(_mut))


def _raw_file(d: Path, make: Callable) -> Path:
    import h5py

    from latbench.raw import write_raw

    good = write_raw(d / "good.raw.h5", ["g0", "g1"], [1, 2],
                     [np.arange(10, dtype=np.int64) * 1000] * 2, {"runs": 10, "group_size": 5})  # fmt: skip
    path = d / "dev.raw.h5"
    with h5py.File(good, "r") as src, h5py.File(path, "w") as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        f["graph_key"] = src["graph_key"][...]
        f.create_dataset("arch_id", data=src["arch_id"][...])
        make(f, src, d)
    good.unlink()
    return path


def _ext_storage(f, src, d):
    (d / "secret").write_bytes(np.arange(20, dtype="<i8").tobytes())
    f.create_dataset(
        "timings_ns", shape=(2, 10), dtype="<i8", external=[(str(d / "secret"), 0, 160)]
    )


def _ext_link(f, src, d):
    import h5py

    with h5py.File(d / "other.h5", "w") as o:
        o["t"] = src["timings_ns"][...]
    f["timings_ns"] = h5py.ExternalLink(str(d / "other.h5"), "t")


def _soft(f, src, d):
    import h5py

    f["elsewhere"] = src["timings_ns"][...]
    f["timings_ns"] = h5py.SoftLink("/elsewhere")


def _virtual(f, src, d):
    import h5py

    with h5py.File(d / "v.h5", "w") as o:
        o["t"] = src["timings_ns"][...]
    layout = h5py.VirtualLayout(shape=(2, 10), dtype="<i8")
    layout[...] = h5py.VirtualSource(str(d / "v.h5"), "t", shape=(2, 10))
    f.create_virtual_dataset("timings_ns", layout)


def _zeros(f, src, d):
    import h5py

    for k in ("graph_key", "arch_id"):
        del f[k]
    f.create_dataset("graph_key", shape=(1 << 20,), dtype=h5py.string_dtype(), chunks=(4096,))
    f.create_dataset("arch_id", shape=(1 << 20,), dtype="<i4", chunks=(1 << 16,))
    f.create_dataset("timings_ns", shape=(1 << 20, 4096), dtype="<i8", chunks=(64, 4096),
                     compression="gzip")  # fmt: skip


for _label, _make in [("HDF5 external storage", _ext_storage), ("external link", _ext_link),
                      ("soft link", _soft), ("virtual dataset", _virtual),
                      ("32 GiB of gzip zeros declared", _zeros)]:  # fmt: skip
    for _cmd in ("check", "rewrite"):
        case(f"raw: {_label} ({_cmd})", _cmd, "raw HDF5")(
            lambda d, m, make=_make: _raw_file(d, make)
        )


def _args_file(*args: str) -> Builder:
    def build(d: Path, m: Path) -> Path:
        path = d / "args.json"
        path.write_text(json.dumps(list(args)))
        return path

    return build


for _args in [("--runs", "1000000000000"), ("--seed", "-1"), ("--threads", "1000000"),
              ("--build-workers", "0"), ("--shard", "1/0"), ("--shard", "1/100000000000000000000"),
              ("--passes", "0"), ("--limit", "1000000000"), ("--flush-every", "0")]:  # fmt: skip
    case(f"measure: {' '.join(_args)}", "measure-args", "measure options")(_args_file(*_args))


def _manifest(**changes: object) -> Builder:
    def build(d: Path, m: Path) -> Path:
        data = {"format": "latbench-artifacts/1", "build_format": "onnx",
                "profile": "cpu-onnxruntime", "seed": 0,
                "selection": {"arch_ids": [100, 200], "shard": [1, 1]}, "entries": []}  # fmt: skip
        data.update(changes)
        path = d / "latbench-artifacts.json"
        path.write_text(json.dumps(data).replace('"SEED"', "1e999"))
        return path

    return build


for _label, _changes in [
    ("shard [1,0]", {"selection": {"arch_ids": [100], "shard": [1, 0]}}),
    ("seed 1e999", {"seed": "SEED"}),
    ("arch id 1e30", {"selection": {"arch_ids": [10**30]}}),
    ("nested 10**5 deep", {"entries": "DEEP"}),
]:
    _b = _manifest(**_changes)
    if _label.startswith("nested"):

        def _b(d: Path, m: Path) -> Path:  # noqa: F811
            path = d / "latbench-artifacts.json"
            path.write_text(
                '{"format": "latbench-artifacts/1", "x": ' + "[" * 10**5 + "]" * 10**5 + "}"
            )
            return path

    case(f"manifest: {_label}", "measure-run", "artifact manifests")(_b)


def _run_json(content: str) -> Builder:
    def build(d: Path, m: Path) -> Path:
        (d / "k.parts").mkdir()
        path = d / "k.parts" / "run.json"
        path.write_text(content)
        return path

    return build


for _label, _content in [("[]", "[]"), ("null", "null"), ("empty", ""),
                         ("truncated", '{"profile": "cpu-onn')]:  # fmt: skip
    case(f"run.json: {_label}", "measure-resume", "damaged run.json")(_run_json(_content))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


for _label, _bytes in [
    ("list header", lambda: _npz_bytes(__header__=np.array("[1, 2]"))),
    ("deep header", lambda: _npz_bytes(__header__=np.array("[" * 10**5 + "]" * 10**5))),
    ("missing config", lambda: _npz_bytes(__header__=np.array(json.dumps(
        {"format": "latbench-predictor", "version": 1, "kind": "proxy"})))),
    ("truncated", lambda: _npz_bytes(__header__=np.array("{}"), w=np.zeros(1000))[:3000]),
    ("member declares 1 PB", petabyte_npz),
]:  # fmt: skip
    case(f"predictor: {_label}", "predict", "predictor and prior files")(
        lambda d, m, b=_bytes: (d / "pred.npz").write_bytes(b()) and d / "pred.npz"
    )


def _prior(mutate: Callable[[dict], None]) -> Builder:
    def build(d: Path, m: Path) -> Path:
        from latbench.predictors.fewshot.prior import default_prior_path

        with np.load(default_prior_path(), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("meta")[()]))
        mutate(meta)
        path = d / "prior.npz"
        path.write_bytes(_npz_bytes(meta=np.array(json.dumps(meta)), **arrays))
        return path

    return build


for _label, _mut in [
    ("sources=5", lambda meta: meta.update(sources=5)),
    ("noise_var a string", lambda meta: meta.update(noise_var="x")),
    ("header a list", None),
]:
    if _mut is None:

        def _pb(d: Path, m: Path) -> Path:
            path = d / "prior.npz"
            path.write_bytes(_npz_bytes(meta=np.array("[]")))
            return path
    else:
        _pb = _prior(_mut)
    case(f"prior: {_label}", "prior", "predictor and prior files")(_pb)


# ------------------------------------------------------------------ runner


def _command(kind: str, path: Path, home: Path) -> list[str]:
    """``python -m`` arguments of a case: an import, a file check, or a harness command."""
    if kind in ("eagle", "help", "hwnasbench"):
        return ["latbench", "import", kind, str(path), "--data-home", str(home)]
    if kind == "eagle-key":
        return ["latbench", "import", "eagle", str(path), "--key", "mine", "--data-home", str(home)]
    if kind in ("check", "rewrite"):
        return ["latbench", kind, str(path)]
    measure = ["latbench.harness.cli"]
    if kind == "measure-args":
        return [*measure, *json.loads(path.read_text()), "--out", str(home), "--key", "k"]
    if kind == "measure-run":
        return [*measure, "run", "--device", "cpu-onnxruntime", "--artifacts", str(path.parent),
                "--out", str(home)]  # fmt: skip
    if kind == "measure-resume":  # the damaged parts live in the case folder, not the home
        return [*measure, "--device", "cpu-onnxruntime", "--limit", "2", "--out",
                str(path.parent.parent), "--key", "k", "-q"]  # fmt: skip
    if kind == "predict":
        return ["latbench.predictors.cli", "predict", str(path), "0"]
    if kind == "prior":
        return [*measure, "--adapt", "10", "--prior", str(path), "--out", str(home), "--key", "k"]
    raise ValueError(f"unknown case kind {kind!r}")


def _run(importer: str, path: Path, home: Path, timeout: float) -> dict:
    env = {**os.environ, "LATBENCH_HOME": str(home), "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    cmd = [sys.executable, "-m", *_command(importer, path, home)]
    t0 = time.perf_counter()
    try:
        p = run_capped(cmd, timeout=timeout, env=env)  # address space: MEMORY_LIMIT
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        rc, err = None, "timeout"
    return {"rc": rc, "stderr": err, "seconds": round(time.perf_counter() - t0, 2)}


def _written(home: Path) -> list[str]:
    return (
        sorted(
            str(p.relative_to(home))
            for p in home.rglob("*")
            if p.is_file() and not p.name.endswith((".lock", ".lock.json"))
        )
        if home.exists()
        else []
    )


def run(timeout: float = 30.0, only: str | None = None) -> dict:
    """Run every case (and the controls); returns per-case outcomes and the totals."""
    outcomes, controls = [], []
    with tempfile.TemporaryDirectory(prefix="latbench-hostile-") as tmp:
        root = Path(tmp)
        for n, (name, importer, build) in enumerate(CONTROLS):
            d, home = root / f"control{n}", root / f"control{n}-home"
            d.mkdir()
            res = _run(importer, build(d, root / "unused"), home, timeout)
            controls.append({"name": name, "rc": res["rc"], "written": len(_written(home))})
        for n, (name, importer, category, build) in enumerate(CASES):
            if only and only not in name:
                continue
            d, home, marker = root / f"case{n}", root / f"home{n}", root / f"marker{n}"
            d.mkdir()
            (d / "canary").write_text("must survive")
            res = _run(importer, build(d, marker), home, timeout)
            err = res["stderr"].strip()
            rc = res["rc"]
            outcomes.append({
                "name": name, "importer": importer, "category": category, "rc": rc,
                "seconds": res["seconds"],
                "executed": marker.exists() or not (d / "canary").exists(),
                "crashed": rc is None or rc < 0 or rc >= 128,
                "traceback": "Traceback" in err,
                "one_line": len(err.splitlines()) == 1,
                "accepted": rc == 0,
                "written": _written(home),
                "message": err.splitlines()[-1][:300] if err else "",
            })  # fmt: skip
    totals = {
        "cases": len(outcomes),
        "executed": sum(o["executed"] for o in outcomes),
        "crashes": sum(o["crashed"] for o in outcomes),
        "tracebacks": sum(o["traceback"] for o in outcomes),
        "partial_writes": sum(bool(o["written"]) for o in outcomes),
        "accepted": sum(o["accepted"] for o in outcomes),
        "not_one_line": sum(not o["one_line"] for o in outcomes),
        "exit_2": sum(o["rc"] == 2 for o in outcomes),
        "controls_imported": sum(c["rc"] == 0 and c["written"] > 0 for c in controls),
        "controls": len(controls),
        "by_category": {},
    }
    totals["held_by_category"] = {}
    for o in outcomes:
        o["held"] = (
            o["rc"] == 2 and o["one_line"]
            and not (o["executed"] or o["crashed"] or o["traceback"] or o["written"])
        )  # fmt: skip
        cat = o["category"]
        totals["by_category"][cat] = totals["by_category"].get(cat, 0) + 1
        totals["held_by_category"][cat] = totals["held_by_category"].get(cat, 0) + o["held"]
    totals["held"] = sum(o["held"] for o in outcomes)
    return {"seed": SEED, "totals": totals, "controls": controls, "cases": outcomes,
            "python": platform.python_version(), "machine": platform.platform()}  # fmt: skip


def _values_campaign(timeout: float, only: str | None) -> dict:
    """The forged-values and hostile-files cases (issue 27), ``benchmarks/hostile_values.py``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import hostile_values

    return hostile_values.run(min(timeout, 60.0), only)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS.name})")
    ap.add_argument("--only", help="run only cases whose name contains this text")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    ap.add_argument("--imports-only", action="store_true",
                    help="skip the forged-values/files cases of hostile_values.py")  # fmt: skip
    args = ap.parse_args(argv)
    values = None if args.imports_only else _values_campaign(args.timeout, args.only)
    res = run(args.timeout, args.only)
    t = res["totals"]
    for o in res["cases"]:
        bad = o["executed"] or o["crashed"] or o["traceback"] or o["written"] or o["accepted"]
        print(
            f"{'FAIL' if bad else 'ok  '} rc={o['rc']!s:>4} {o['seconds']:6.2f}s  {o['name']}: {o['message'][:110]}"
        )
    print(f"\n{t['cases']} hostile inputs, held {t['held']}:")
    for cat, n in t["by_category"].items():
        print(f"  {cat}: tried {n}, held {t['held_by_category'][cat]}")
    print(f"executed {t['executed']}, crashes {t['crashes']}, tracebacks {t['tracebacks']}, "
          f"partial writes {t['partial_writes']}, accepted {t['accepted']}, "
          f"exit 2 {t['exit_2']}/{t['cases']}, multi-line errors {t['not_one_line']}; "
          f"controls imported {t['controls_imported']}/{t['controls']}")  # fmt: skip
    if values is not None:
        res["values"] = values
        print()
        sys.modules["hostile_values"].report(values)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1))
    failed = t["executed"] + t["crashes"] + t["tracebacks"] + t["partial_writes"] + t["accepted"]
    if values is not None:
        failed += values["totals"]["cases"] - values["totals"]["held"]
    return 1 if failed or t["controls_imported"] != t["controls"] else 0


if __name__ == "__main__":
    sys.exit(main())
