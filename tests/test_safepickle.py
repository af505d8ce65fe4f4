"""The restricted unpickler refuses every global outside its allow-list."""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import refdata

from latbench.safepickle import (
    NUMPY_SCALARS,
    CorruptPickleError,
    UnsafePickleError,
    load_pickle,
    load_torch_zip,
)

HELP_DIR = refdata.ref_dir("help")


def _reducing(func, *args):
    class Evil:
        def __reduce__(self):
            return (func, args)

    return Evil()


def _numpy_spellings(data: bytes) -> list[bytes]:
    """The same pickle with the numpy 1 and numpy 2 module name of ``scalar``."""
    pattern = re.compile(rb"numpy\.(_core|core)\.multiarray\n")
    assert pattern.search(data), "expected a GLOBAL opcode for numpy's scalar"
    return [
        pattern.sub(b"numpy.core.multiarray\n", data),
        pattern.sub(b"numpy._core.multiarray\n", data),
    ]


def test_numpy_scalar_dict_loads_under_both_module_names():
    rng = np.random.default_rng(0)
    src = {(a, 1, 2, 3, 4, 0): np.float64(x) for a, x in enumerate(rng.random(5))}
    for data in _numpy_spellings(pickle.dumps(src, protocol=3)):
        got = load_pickle(data, NUMPY_SCALARS)
        assert got == src
        assert all(type(v) is np.float64 for v in got.values())


def test_numpy_scalar_refused_without_allow_list():
    data = pickle.dumps({(0,) * 6: np.float64(1.0)}, protocol=3)
    with pytest.raises(UnsafePickleError, match=r"numpy\.(_core|core)\.multiarray\.scalar"):
        load_pickle(data)


def test_plain_data_needs_no_globals(tmp_path):
    obj = {"a": [1, 2.5, "x", (3, 4)], "b": None, "c": True}
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    assert load_pickle(path) == obj


_ATTACKS = {
    "os.system": (lambda m: _reducing(os.system, f"touch {m}"), r"(posix|os|nt)\.system"),
    "builtins.eval": (lambda m: _reducing(eval, f"open({str(m)!r}, 'w')"), r"builtins\.eval"),
    "subprocess": (
        lambda m: _reducing(subprocess.check_call, ["touch", str(m)]),
        r"subprocess\.check_call",
    ),
}


@pytest.mark.parametrize("attack", sorted(_ATTACKS))
def test_malicious_reduce_is_refused_before_running(tmp_path, attack):
    build, name = _ATTACKS[attack]
    marker = tmp_path / "pwned"
    data = pickle.dumps(build(marker), protocol=3)
    with pytest.raises(UnsafePickleError, match=name):
        load_pickle(data, NUMPY_SCALARS)
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'true'\ntR.",  # GLOBAL + REDUCE, protocol 0
        b"(S'true'\nios\nsystem\n.",  # INST
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94.",  # STACK_GLOBAL
    ],
)
def test_every_global_opcode_goes_through_the_allow_list(data):
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        load_pickle(data, NUMPY_SCALARS)


def test_extension_registry_code_is_refused():
    copyreg.add_extension("posix", "system", 240)
    try:
        with pytest.raises(UnsafePickleError, match=r"posix\.system"):
            load_pickle(b"\x80\x02\x82\xf0X\x04\x00\x00\x00true\x85R.")
    finally:
        copyreg.remove_extension("posix", "system", 240)


def test_persistent_id_is_refused():
    buf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage0" if obj == "tensor" else None

    P(buf, protocol=2).dump(["tensor"])
    with pytest.raises(UnsafePickleError, match="persistent"):
        load_pickle(buf.getvalue())


def test_numpy_allow_list_takes_only_numeric_scalars():
    with pytest.raises(UnsafePickleError, match="dtype 'O'"):
        load_pickle(pickle.dumps(_reducing(np.dtype, "O"), protocol=3), NUMPY_SCALARS)
    wrong_size = pickle.dumps(
        _reducing(np.float64(0).__reduce__()[0], np.dtype("f8"), b"abc"), protocol=3
    )
    with pytest.raises(CorruptPickleError, match="8 bytes"):
        load_pickle(wrong_size, NUMPY_SCALARS)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (pickle.dumps({(0,) * 6: np.float64(1.0)}, protocol=3)[:-7], "truncated or corrupt"),
        (b"not a pickle at all", "truncated or corrupt"),
        (b"", "truncated or corrupt"),
        (pickle.dumps([1, 2]) + b"junk", "unexpected byte"),
    ],
)
def test_corrupt_data_gives_a_clear_error(data, match):
    with pytest.raises(CorruptPickleError, match=match):
        load_pickle(data, NUMPY_SCALARS)


def test_error_names_the_file(tmp_path):
    path = tmp_path / "bad.pickle"
    path.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(UnsafePickleError, match=re.escape(str(path))):
        load_pickle(path)


def _torch_zip(path: Path, payload: bytes, folder: str = "archive") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{folder}/data.pkl", payload)
        zf.writestr(f"{folder}/version", "3\n")
    return path


def test_torch_zip_reads_plain_data_from_any_folder_name(tmp_path):
    obj = [0.5, 1.25, 3]
    a = _torch_zip(tmp_path / "a.pt", pickle.dumps(obj, protocol=2))
    b = _torch_zip(tmp_path / "b.pt", pickle.dumps(obj, protocol=2), folder="b")
    assert load_torch_zip(a) == obj
    assert load_torch_zip(b) == obj


def test_torch_zip_refuses_globals(tmp_path):
    path = _torch_zip(tmp_path / "evil.pt", pickle.dumps(_reducing(os.system, "true"), protocol=2))
    with pytest.raises(UnsafePickleError, match="system"):
        load_torch_zip(path)


def test_torch_zip_refuses_numpy_too(tmp_path):
    path = _torch_zip(tmp_path / "np.pt", pickle.dumps([np.float64(1.0)], protocol=2))
    with pytest.raises(UnsafePickleError, match="allowed: none"):
        load_torch_zip(path)


def test_torch_zip_structure_errors(tmp_path):
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps([1.0]))
    with pytest.raises(CorruptPickleError, match="not a torch.save zip"):
        load_torch_zip(legacy)

    empty = tmp_path / "empty.pt"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("archive/version", "3\n")
    with pytest.raises(CorruptPickleError, match="data.pkl"):
        load_torch_zip(empty)

    good = _torch_zip(tmp_path / "good.pt", pickle.dumps(list(range(1000)), protocol=2))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptPickleError):
        load_torch_zip(truncated)

    with pytest.raises(FileNotFoundError):
        load_torch_zip(tmp_path / "absent.pt")


@refdata.needs("help")
def test_real_help_files_equal_a_plain_unpickle():
    for name in ("titan_rtx_1.pt", "pixel2.pt", "str_arch2idx.pt"):
        with zipfile.ZipFile(HELP_DIR / name) as zf:
            expected = pickle.loads(zf.read("archive/data.pkl"))  # trusted reference data
        assert load_torch_zip(HELP_DIR / name) == expected
