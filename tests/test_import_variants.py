"""Variants of published files users hold: old names, edited or re-pickled copies, a
--key that claims another dataset, a renamed HELP file, and the messages for the
separators, compressions and suffixes people get wrong.

Most tests build synthetic files; those that need the real bytes (a published SHA-256)
skip, naming ``LATBENCH_TEST_DATA``, when the reference data is absent.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import refdata
from filelock import FileLock

import latbench
from latbench.cli import main
from latbench.importers import KeyLockedError, import_datasets, read_source, registry
from latbench.importers import fetch as fetch_module
from latbench.importers.common import ImportFormatError
from latbench.importers.eagle import SkippedFileWarning
from latbench.importers.help import INDEX_FILE
from latbench.importers.registry import REGISTRY
from latbench.safepickle import NUMPY_SCALARS, CorruptPickleError, UnsafePickleError, load_pickle
from latbench.space import N_ARCHS, all_archs

RELEASE_DIR = refdata.ref_dir("latbench-release")
OLD_JETSON = "embedded-gpu-jetson-nono-fp16"
FP32 = REGISTRY["embedded-gpu-jetson-nano-fp32"]
FP16 = REGISTRY["embedded-gpu-jetson-nano-fp16"]
TPU = REGISTRY["embedded-tpu-edge-tpu-int8"]


@functools.cache
def _vectors() -> tuple[tuple[int, ...], ...]:
    return tuple(a.vector for a in all_archs() if a.valid)


def _release(median_ms: float, n: int = 200, seed: int = 0) -> dict:
    """A synthetic release dict of ``n`` valid cells whose median is ``median_ms``."""
    rng = np.random.default_rng(seed)
    vecs = _vectors()
    picked = sorted(rng.choice(len(vecs), n, replace=False))
    seconds = median_ms / 1000.0 * rng.uniform(0.8, 1.25, n)
    seconds *= median_ms / 1000.0 / np.median(seconds)
    return {vecs[i]: np.float64(x) for i, x in zip(picked, seconds, strict=True)}


def _pickle(path: Path, obj, protocol: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- F1: a name is not proof: the old Jetson name, medians ---------------------------------


def test_the_old_jetson_name_may_mean_either_jetson_file():
    from latbench.importers.registry import by_median, candidates_by_name

    assert candidates_by_name(f"{OLD_JETSON}.pkl") == (FP32, FP16)
    assert candidates_by_name("embedded-gpu-jetson-nano-fp16.pickle") == (FP16,)
    assert candidates_by_name("holiday.pickle") == ()
    assert by_median((FP32, FP16), 14.46) is FP32
    assert by_median((FP32, FP16), 5.3) is FP16
    assert by_median((FP32, FP16), 1.0) is None
    assert by_median((FP32, FP16), float("nan")) is None


@pytest.mark.parametrize(
    ("median", "key"), [(14.46, "jetson-nano-fp32"), (5.3, "jetson-nano-fp16")]
)
def test_an_edited_old_jetson_copy_is_keyed_by_its_median(tmp_path, median, key):
    f = _pickle(tmp_path / f"{OLD_JETSON}.pickle", _release(median))
    (item,) = read_source("eagle", f)
    assert item.key == key
    release = item.metadata["imported_from"]["release"]
    assert release["identified_by"] == "name" and release["matches_published"] is False
    assert release["published_median_ms"] == REGISTRY[release["published_name"]].median_ms
    assert "differs from the published file" in item.metadata["warnings"][0]


def test_an_old_jetson_name_with_a_median_of_neither_is_refused(tmp_path, capsys):
    f = _pickle(tmp_path / f"{OLD_JETSON}.pickle", _release(1.1))
    with pytest.raises(ImportFormatError, match="median latency 1.1 ms") as exc:
        read_source("eagle", f)
    msg = str(exc.value)
    assert "14.5 ms" in msg and "5.27 ms" in msg and "--key jetson-nano-fp32" in msg
    home = tmp_path / "home"
    rc, out, err = _cli(capsys, "import", "eagle", str(f), "--data-home", str(home))
    assert rc == 2 and "--key" in _one_line(err) and not list(home.glob("*.parquet"))
    # the user vouches for it: imported, the medians noted
    rc, out, err = _cli(capsys, "import", "eagle", str(f), "--key", "jetson-nano-fp16",
                        "--data-home", str(home))  # fmt: skip
    assert rc == 0, err
    meta = latbench.load("jetson-nano-fp16", data_home=home).attrs["metadata"]
    assert any("5.27 ms" in w and "1.1 ms" in w for w in meta["warnings"])


def test_a_folder_skips_an_old_jetson_copy_of_the_wrong_median(tmp_path):
    src = tmp_path / "release"
    _pickle(src / f"{OLD_JETSON}.pickle", _release(1.1))
    _pickle(src / f"{TPU.name}.pickle", _release(1.12, seed=1))
    with pytest.warns(SkippedFileWarning, match=f"skipped {OLD_JETSON}.pickle: .* alone with"):
        items = read_source("eagle", src)
    assert [i.key for i in items] == ["edgetpu-int8"]


def test_a_single_meaning_name_with_a_far_median_is_noted(tmp_path):
    f = _pickle(tmp_path / f"{TPU.name}.pickle", _release(20.0))
    (item,) = read_source("eagle", f)
    assert item.key == "edgetpu-int8"
    assert any("20 ms" in w and "1.12 ms" in w for w in item.metadata["warnings"])


@refdata.needs("latbench-release", "embedded-gpu-jetson-nano-fp32.pickle")
def test_a_resaved_real_old_jetson_copy_is_the_fp32_file(tmp_path):
    src = pickle.loads((RELEASE_DIR / "embedded-gpu-jetson-nano-fp32.pickle").read_bytes())
    f = _pickle(tmp_path / f"{OLD_JETSON}.pickle", src, protocol=5)
    (item,) = read_source("eagle", f)
    assert item.key == "jetson-nano-fp32"
    assert item.metadata["imported_from"]["release"]["published_sha256"] == FP32.sha256
    # the bytes themselves under the old name: by SHA-256, as before
    shutil.copy(RELEASE_DIR / "embedded-gpu-jetson-nano-fp32.pickle", f)
    (item,) = read_source("eagle", f)
    assert item.key == "jetson-nano-fp32" and "warnings" not in item.metadata


# --- F2: --key takes no catalog identity the file does not have ---------------------------


@pytest.fixture
def published_tpu(tmp_path, monkeypatch) -> Path:
    """A synthetic file the registry knows by SHA-256 as the Edge TPU file."""
    f = _pickle(tmp_path / "download (3).pkl", _release(1.12))
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    monkeypatch.setitem(registry._BY_SHA, digest, TPU)
    return f


@pytest.mark.parametrize("key", ["desktop-cpu", "help-pixel2", "mine"])
def test_key_refused_for_a_published_file_of_another_key(tmp_path, published_tpu, capsys, key):
    home = tmp_path / "home"
    rc, _, err = _cli(capsys, "import", "eagle", str(published_tpu), "--key", key,
                      "--data-home", str(home))  # fmt: skip
    line = _one_line(err)
    assert rc == 2 and "'edgetpu-int8'" in line and "drop --key" in line
    assert not home.exists() or not list(home.glob("*.parquet"))
    (item,) = read_source("eagle", published_tpu, key="E. TPU")  # its own key: fine
    assert item.key == "edgetpu-int8"


@pytest.mark.parametrize("key", ["desktop-cpu", "jetson_nano", "help-pixel2"])
def test_key_refused_when_it_names_another_catalog_dataset(tmp_path, key):
    named = _pickle(tmp_path / f"{TPU.name}.pickle", _release(1.12))
    unknown = _pickle(tmp_path / "mine.pickle", _release(1.12))
    for f in (named, unknown):
        with pytest.raises(ImportFormatError, match="choose a key of your own"):
            read_source("eagle", f, key=key)
    (item,) = read_source("eagle", named, key="edgetpu")  # the dataset its name says
    assert item.key == "edgetpu-int8"


def test_a_key_of_your_own_is_described_as_yours(tmp_path):
    f = _pickle(tmp_path / f"{TPU.name}.pickle", _release(1.12))
    (item,) = read_source("eagle", f, key="my-tpu")
    meta = item.metadata
    assert item.key == "my-tpu" and meta["device"]["hardware"] == "unknown"
    assert meta["imported_from"]["release"]["identified_by"] == "key"


@refdata.needs("latbench-release", "embedded-tpu-edge-tpu-int8.pickle")
def test_key_refused_for_the_real_published_file(tmp_path, capsys):
    real = RELEASE_DIR / "embedded-tpu-edge-tpu-int8.pickle"
    home = tmp_path / "home"
    rc, _, err = _cli(capsys, "import", "eagle", str(real), "--key", "desktop-cpu",
                      "--data-home", str(home))  # fmt: skip
    assert rc == 2 and "drop --key" in _one_line(err)
    assert not home.exists() or not list(home.glob("*.parquet"))


# --- F3: protocol 0-2 copies (numpy bytes through _codecs.encode) ------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_numpy_scalars_pickled_with_old_protocols_load(protocol):
    src = {(1, 2, 3, 0, 4, i): np.float64(0.001 * (i + 1)) for i in range(5)}
    src[(0, 0, 0, 0, 0, 1)] = np.float32(0.5)
    data = pickle.dumps(src, protocol=protocol)
    assert b"_codecs" in data
    got = load_pickle(data, NUMPY_SCALARS)
    assert got == src and [type(v) for v in got.values()] == [type(v) for v in src.values()]


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_a_release_copy_resaved_with_an_old_protocol_imports(tmp_path, protocol):
    src = _release(1.12)
    f = _pickle(tmp_path / f"{TPU.name}.pickle", src, protocol=protocol)
    (item,) = read_source("eagle", f)
    assert item.key == "edgetpu-int8" and item.counts()["ok"] == len(src)


class _Encode:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return codecs.encode, self.args


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("\x00" * 8, "utf-8"), UnsafePickleError, "only \\(str, 'latin1'\\)"),
        (("abc", "rot13"), UnsafePickleError, "only \\(str, 'latin1'\\)"),
        (("616263", "hex"), UnsafePickleError, "only \\(str, 'latin1'\\)"),
        (("abc",), UnsafePickleError, "only \\(str, 'latin1'\\)"),
        (("abc", "latin1", "strict"), UnsafePickleError, "only \\(str, 'latin1'\\)"),
        ((b"abc", "latin1"), UnsafePickleError, "_codecs.encode of a bytes refused"),
        ((7, "latin1"), UnsafePickleError, "_codecs.encode of a int refused"),
        (("x" * 65, "latin1"), CorruptPickleError, "refused: _codecs.encode of 65 char"),
        (("x" * 10_000_000, "latin-1"), CorruptPickleError, "refused: _codecs.encode of"),
        (("\u20ac" * 8, "latin1"), CorruptPickleError, "past U\\+00FF"),
    ],
)
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_codecs_encode_takes_only_the_latin1_round_trip(args, error, match, protocol):
    data = pickle.dumps(_Encode(*args), protocol=protocol)
    with pytest.raises(error, match=match):
        load_pickle(data, NUMPY_SCALARS)


def test_codecs_encode_returns_bytes_and_other_codecs_stay_refused():
    assert (
        load_pickle(pickle.dumps(_Encode("\xff\x00a", "latin1"), 2), NUMPY_SCALARS) == b"\xff\x00a"
    )
    with pytest.raises(UnsafePickleError, match="_codecs.encode"):  # not without the list
        load_pickle(pickle.dumps(_Encode("a", "latin1"), 2))

    class Decode:
        def __reduce__(self):
            return codecs.decode, (b"abc", "latin1")

    with pytest.raises(UnsafePickleError, match="_codecs.decode, which is not allowed"):
        load_pickle(pickle.dumps(Decode(), 2), NUMPY_SCALARS)


# --- P7: the lock message names only what import has ---------------------------------------


def test_a_held_lock_names_no_option_import_lacks(tmp_path):
    f = _pickle(tmp_path / f"{TPU.name}.pickle", _release(1.12))
    home = tmp_path / "home"
    home.mkdir()
    other = FileLock(home / ".edgetpu-int8.lock", timeout=0)  # another process's flock
    other.acquire()
    try:
        with pytest.raises(KeyLockedError, match="another process holds its write lock") as exc:
            import_datasets("eagle", f, data_home=home)
    finally:
        other.release()
    msg = str(exc.value)
    assert "--out" not in msg and "--key" not in msg and "another --data-home" in msg


# --- P8: an export `check` does not read is refused ----------------------------------------


@pytest.mark.parametrize("name", ["x.PARQUET", "x.Parquet"])
def test_export_refuses_a_parquet_name_check_would_not_read(tmp_path, capsys, name):
    home = tmp_path / "home"
    import_datasets("eagle", _pickle(tmp_path / f"{TPU.name}.pickle", _release(1.12)), home)
    rc, _, err = _cli(capsys, "export", "edgetpu", "-o", str(tmp_path / name),
                      "--data-home", str(home))  # fmt: skip
    assert rc == 2 and "'.parquet'" in _one_line(err) and not (tmp_path / name).exists()
    out = tmp_path / "x.parquet"
    assert _cli(capsys, "export", "edgetpu", "-o", str(out), "--data-home", str(home))[0] == 0
    rc, text, err = _cli(capsys, "check", str(out))
    assert rc == 0 and "ok" in text, err


# --- P4/P5/P6: what the file is, said ------------------------------------------------------


@pytest.mark.parametrize(("sep", "named"), [(";", "semicolons"), ("\t", "tabs")])
def test_an_accuracy_csv_with_another_separator_is_named(tmp_path, capsys, sep, named):
    from latbench.accuracy_table import CSV_COLUMNS

    f = tmp_path / "nats.csv"
    f.write_text(sep.join(CSV_COLUMNS) + "\n" + sep.join(["85,1"] * len(CSV_COLUMNS)) + "\n")
    rc, _, err = _cli(capsys, "import", "nb201-accuracy", str(f),
                      "--data-home", str(tmp_path / "home"))  # fmt: skip
    line = _one_line(err)
    assert rc == 2 and f"separated by {named}" in line and "not commas" in line


def _torch_zip(path: Path, obj) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr(f"{path.stem}/version", "3\n")
    return path.read_bytes()


@functools.cache
def _help_index() -> dict[str, int]:
    return {a.str: a.id for a in all_archs()}


def _help_folder(d: Path, files: dict[str, float]) -> dict[str, bytes]:
    """A HELP-like folder: the index and one latency file per ``name: scale``."""
    _torch_zip(d / INDEX_FILE, _help_index())
    rng = np.random.default_rng(3)
    return {
        name: _torch_zip(d / name, [float(x) for x in rng.uniform(1, 2, N_ARCHS) * scale])
        for name, scale in files.items()
    }


def test_a_gzipped_pt_in_a_help_folder_says_decompress(tmp_path, capsys):
    d = tmp_path / "help"
    raw = _help_folder(d, {"fpga.pt": 1.0})
    (d / "fpga.pt").write_bytes(gzip.compress(raw["fpga.pt"]))
    rc, _, err = _cli(capsys, "import", "help", str(d), "--data-home", str(tmp_path / "h"))
    line = _one_line(err)
    assert rc == 2 and "gzip-compressed" in line and "decompress it first" in line


def test_a_release_folder_holding_only_a_zip_says_unzip(tmp_path, capsys):
    d = tmp_path / "download"
    d.mkdir()
    with zipfile.ZipFile(d / "LatBench-20240101T000000Z-001.zip", "w") as zf:
        zf.writestr(f"LatBench/{TPU.name}.pickle", b"x")
    rc, _, err = _cli(capsys, "import", "eagle", str(d), "--data-home", str(tmp_path / "h"))
    line = _one_line(err)
    assert rc == 2 and "LatBench-20240101T000000Z-001.zip is a zip archive" in line
    assert "unzip it" in line


# --- P2: HELP files compared with the published SHA-256 ------------------------------------


@pytest.fixture
def published_help(tmp_path, monkeypatch) -> tuple[Path, dict[str, bytes]]:
    """A HELP folder whose pixel2.pt and fpga.pt the pinned sums know (monkeypatched)."""
    d = tmp_path / "pub"
    raw = _help_folder(d, {"pixel2.pt": 1.0, "fpga.pt": 3.0})
    sums = {n: hashlib.sha256(b).hexdigest() for n, b in raw.items()}
    sums[INDEX_FILE] = hashlib.sha256((d / INDEX_FILE).read_bytes()).hexdigest()
    monkeypatch.setattr(fetch_module, "HELP_SHA256", sums)
    return d, raw


def _copy_folder(tmp_path: Path, name: str, files: dict[str, bytes], src: Path) -> Path:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(src / INDEX_FILE, d / INDEX_FILE)
    for n, b in files.items():
        (d / n).write_bytes(b)
    return d


def test_a_renamed_help_file_is_named_for_its_content(tmp_path, published_help):
    src, raw = published_help
    d = _copy_folder(tmp_path, "renamed", {"mydevice.pt": raw["pixel2.pt"]}, src)
    (item,) = read_source("help", d)
    assert item.key == "help-pixel2" and item.metadata["device"]["hardware"] != "unknown"
    published = item.metadata["imported_from"]["published"]
    assert published["identified_by"] == "sha256" and published["published_name"] == "pixel2.pt"
    assert "warnings" not in item.metadata
    # beside the file of that name: one of the two, the other skipped in one warning
    (d / "pixel2.pt").write_bytes(raw["pixel2.pt"])
    with pytest.warns(SkippedFileWarning, match="skipped mydevice.pt: same content as pixel2.pt"):
        (item,) = read_source("help", d)
    assert item.source.name == "pixel2.pt"


def test_a_help_file_named_for_another_device_is_refused(tmp_path, published_help):
    src, raw = published_help
    d = _copy_folder(tmp_path, "swapped", {"fpga.pt": raw["pixel2.pt"]}, src)
    with pytest.raises(ImportFormatError, match="its content is HELP's published pixel2.pt"):
        read_source("help", d)


def test_an_edited_help_file_is_noted(tmp_path, published_help):
    src, _ = published_help
    d = tmp_path / "mod"
    _help_folder(d, {"pixel2.pt": 5.0})  # other values under the published name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (item,) = read_source("help", d)
    assert item.key == "help-pixel2"
    assert "differs from the published file" in item.metadata["warnings"][0]
    assert item.metadata["imported_from"]["published"]["matches_published"] is False
    # the published bytes: matched, nothing noted
    (item,) = read_source("help", src, ["pixel2"])
    assert "warnings" not in item.metadata
    assert item.metadata["imported_from"]["published"]["matches_published"] is True


@refdata.needs("help", "pixel2.pt")
def test_a_renamed_real_help_file_is_identified(tmp_path):
    real = refdata.ref_dir("help")
    d = tmp_path / "h"
    d.mkdir()
    shutil.copy(real / "pixel2.pt", d / "mydevice.pt")
    shutil.copy(real / INDEX_FILE, d / INDEX_FILE)
    (item,) = read_source("help", d)
    assert item.key == "help-pixel2"
