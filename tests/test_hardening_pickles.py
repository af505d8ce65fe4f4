"""Issue 12, hostile pickles and zips: each test failed on the code before the fix."""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latbench.importers.common import ImportFormatError
from latbench.importers.eagle import eagle_latencies
from latbench.safepickle import (
    NUMPY_SCALARS,
    CorruptPickleError,
    UnsafePickleError,
    load_pickle,
    load_torch_zip,
)

KEY = b"(K\x03K\x03K\x03K\x03K\x03K\x03t"  # (3, 3, 3, 3, 3, 3)


def _str(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s)) + s.encode()


def _subarray_scalar(n: int) -> bytes:
    """The 189-byte attack: dtype('f8', False, True), BUILD with a (n,) subarray, scalar."""
    inner = b"cnumpy\ndtype\n" + _str("f8") + b"\x89\x88\x87R" + b"J" + struct.pack("<i", n)
    state = b"(K\x03" + _str("|") + inner + b"\x85\x86NNJ\x00\x02\x00\x00J\x08\x00\x00\x00K\x00t"
    return (
        b"\x80\x03}(" + KEY + b"cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\n" + _str("f8")
        + b"\x89\x88\x87R" + state + b"bC\x08" + b"\0" * 8 + b"\x86Ru."
    )  # fmt: skip


@pytest.mark.slow  # a subprocess: a crash must not take the test run down
@pytest.mark.parametrize("n", [64, 10_000_000])
def test_dtype_build_with_a_subarray_shape_is_refused_without_reading_memory(n):
    # before: numpy read past the 8-byte buffer (a heap address in the error, or SIGSEGV)
    code = (
        "import sys; from latbench.safepickle import load_pickle, NUMPY_SCALARS\n"
        "try:\n    load_pickle(sys.stdin.buffer.read(), NUMPY_SCALARS)\n"
        "except ValueError as e:\n    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], input=_subarray_scalar(n),
                       capture_output=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr[-500:]
    out = p.stdout.decode()
    assert "builtin scalar dtypes" in out and "0x" not in out


@pytest.mark.parametrize("code", ["O", "V8", "U2", "M8"])
def test_only_builtin_numeric_dtype_codes(code):
    data = pickle.dumps(np.float64(1.0), protocol=3).replace(b"f8", code.encode().ljust(2)[:2])
    with pytest.raises((UnsafePickleError, CorruptPickleError)):
        load_pickle(data, NUMPY_SCALARS)


def test_byte_order_and_types_of_real_scalars_survive():
    src = {(3, 3, 3, 3, 3, 3): np.dtype(">f8").type(0.25), (3, 3, 3, 3, 3, 1): np.float32(2.5)}
    got = load_pickle(pickle.dumps(src, protocol=3), NUMPY_SCALARS)
    assert got == src and [type(v) for v in got.values()] == [np.float64, np.float32]


@pytest.mark.slow  # a subprocess: a crash must not take the test run down
def test_tuple_nested_a_million_deep_does_not_crash():
    # before: hashing the dict key overflowed the C stack (exit 139)
    code = (
        "import sys; from latbench.safepickle import load_pickle\n"
        "try:\n    load_pickle(sys.stdin.buffer.read())\n"
        "except ValueError as e:\n    print(e)\n"
    )
    data = b"\x80\x03}(K\x01" + b"\x85" * 1_000_000 + b"K\x01u."
    p = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120)
    assert p.returncode == 0 and b"nested deeper than" in p.stdout, p.stderr[-300:]


def test_huge_integers_are_refused():
    big = (10**400).to_bytes(167, "little")
    with pytest.raises(CorruptPickleError, match="integer of 167 bytes"):
        load_pickle(b"\x80\x03}(" + KEY + b"\x8a\xa7" + big + b"u.", NUMPY_SCALARS)
    with pytest.raises(CorruptPickleError, match="digits"):
        load_pickle(b"I" + b"9" * 5000 + b"\n.")


def test_length_claims_beyond_the_data_are_refused():
    with pytest.raises(CorruptPickleError, match="more than the data holds"):
        load_pickle(b"\x80\x05\x8e" + (1 << 62).to_bytes(8, "little") + b"xx.")


def _zip(method: int, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr("archive/data.pkl", data)
    return buf.getvalue()


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2])
def test_corrupt_compressed_members_give_a_clear_error(tmp_path, method):
    z = bytearray(_zip(method, pickle.dumps(list(range(5000)), protocol=2)))
    start = z.find(b"data.pkl") + 40
    for i in range(start, start + 400, 7):
        z[i] ^= 0xFF
    path = tmp_path / "x.pt"
    path.write_bytes(bytes(z))
    with pytest.raises(CorruptPickleError, match=str(path)):
        load_torch_zip(path)


def test_encrypted_member_gives_a_clear_error(tmp_path):
    z = bytearray(_zip(zipfile.ZIP_STORED, pickle.dumps([1.0], protocol=2)))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        z[z.find(sig) + off] |= 1
    path = tmp_path / "x.pt"
    path.write_bytes(bytes(z))
    with pytest.raises(CorruptPickleError, match="encrypted"):
        load_torch_zip(path)


def test_hostile_objects_are_not_printed_whole():
    from latbench.importers.eagle import _arch_index
    from latbench.importers.help import help_latencies

    with pytest.raises(ImportFormatError) as info:
        _arch_index("k" * 1_000_000, "f")
    assert len(str(info.value)) < 300
    with pytest.raises(ImportFormatError) as info:
        help_latencies(["x" * 1_000_000] + [1.0] * 15624)
    assert len(str(info.value)) < 300


def test_an_empty_release_pickle_is_not_a_dataset():
    with pytest.raises(ImportFormatError, match="no latencies"):
        eagle_latencies({})


@pytest.mark.parametrize("seconds", [5e-324, 1e300])
def test_implausible_latencies_are_refused(seconds):
    with pytest.raises(ImportFormatError, match="plausible"):
        eagle_latencies({(3, 3, 3, 3, 3, 3): np.float64(seconds)})


@pytest.mark.slow  # a subprocess: a crash must not take the test run down
def test_cli_import_of_a_hostile_pickle_is_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "desktop-cpu-core-i7-7820x-fp32.pickle"
    path.write_bytes(_subarray_scalar(64))
    home = tmp_path / "home"
    p = subprocess.run([sys.executable, "-m", "latbench", "import", "eagle", str(path),
                        "--data-home", str(home)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not [f for f in Path(home).rglob("*") if f.is_file()] if home.exists() else True
