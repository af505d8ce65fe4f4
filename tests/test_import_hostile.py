"""What users really hand the importers: renamed, compressed, special or hostile files.

Each case checks the refusal (one line, exit 2 at the command), that nothing runs or
hangs, and that the data home holds the old file or the new one and nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import pickle
import shutil
import signal
import warnings
import zipfile
from pathlib import Path

import pytest
import refdata
from filelock import FileLock
from test_accuracy import _synthetic_rows, _write_csv
from test_importers import CPU_FILE, CPU_KEY, MOBILE_FILE, _release, _torch_zip, _write_pickle

import latbench
import latbench.dataset
import latbench.lock
from latbench.cli import main
from latbench.importers import ImportFormatError, import_datasets, read_source
from latbench.importers.eagle import SkippedFileWarning
from latbench.importers.help import INDEX_FILE
from latbench.importers.nb201_accuracy import import_accuracy
from latbench.safepickle import CorruptPickleError, UnsafePickleError
from latbench.space import N_ARCHS, all_archs

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


@pytest.fixture
def deadline():
    """Turn a hang into a failure: the regressions here block on a FIFO or /dev/zero."""
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("needs SIGALRM (POSIX)")

    def expire(*_):
        raise TimeoutError("blocked: the file was opened or hashed before it was checked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # a usage error, refused by the parser
        rc = int(exc.code)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_refusal(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _datasets(home: Path) -> list[str]:
    """Everything in the data home but the lock files (which stay by design)."""
    if not home.exists():
        return []
    return sorted(p.name for p in home.iterdir() if not p.name.endswith(".lock"))


# --- files that are not the file: special, huge, compressed, text -----------------------


@needs_fifo
@pytest.mark.parametrize(
    ("importer", "name", "extra"),
    [
        ("eagle", f"{CPU_FILE}.pickle", ()),
        ("eagle", "mine.pickle", ("--key", "mine")),
        ("hwnasbench", "HW-NAS-Bench-v1_0.pickle", ()),
        ("help", "pixel2.pt", ()),
        ("nb201-accuracy", "nats_bench.csv", ()),
    ],
)
def test_a_fifo_is_refused_without_being_opened(tmp_path, capsys, deadline, importer, name, extra):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    home = tmp_path / "home"
    rc, out, err = _cli(capsys, "import", importer, str(fifo), *extra, "--data-home", str(home))
    _one_line_refusal(rc, err, name, "not a regular file")
    assert _datasets(home) == []


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_refused_not_hashed_forever(tmp_path, deadline):
    link = tmp_path / f"{CPU_FILE}.pickle"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImportFormatError, match="character device, not a regular file"):
        read_source("eagle", link)


def test_a_huge_file_is_refused_before_it_is_hashed(tmp_path, monkeypatch):
    big = tmp_path / "big.pickle"
    with big.open("wb") as fh:
        fh.truncate(9 << 20)  # sparse: more than any release file, costs no disk

    def no_hashing(path):
        raise AssertionError(f"{path} hashed before its size was checked")

    monkeypatch.setattr("latbench.importers.registry.sha256_file", no_hashing)
    with pytest.raises(ImportFormatError, match=r"refused: 9437184 bytes"):
        read_source("eagle", big)


def test_a_gzipped_release_file_says_decompress_it(tmp_path):
    gz = tmp_path / f"{CPU_FILE}.pickle.gz"
    gz.write_bytes(gzip.compress(pickle.dumps(_release(1, n=20), protocol=3)))
    with pytest.raises(ImportFormatError, match="gzip-compressed.*gunzip"):
        read_source("eagle", gz)
    with pytest.raises(ImportFormatError, match="gzip-compressed"):  # --key: not "opcode"
        read_source("eagle", gz, key="mine")


def test_a_folder_reports_its_compressed_copies_and_imports_the_rest(tmp_path):
    src = tmp_path / "LatBench"
    src.mkdir()
    _write_pickle(src / f"{MOBILE_FILE}.pickle", _release(2, n=20))
    (src / f"{CPU_FILE}.pickle.gz").write_bytes(gzip.compress(b"whatever"))
    with pytest.warns(SkippedFileWarning, match=rf"skipped {CPU_FILE}\.pickle\.gz: compressed"):
        items = read_source("eagle", src)
    assert [i.key for i in items] == ["snapdragon-675-gpu-int8"]
    (src / f"{MOBILE_FILE}.pickle").unlink()
    with pytest.raises(ImportFormatError, match=r"no release files.*pickle\.gz is compressed"):
        read_source("eagle", src)


def test_a_drive_zip_given_as_the_release_says_unzip_it(tmp_path):
    drive = tmp_path / "LatBench-20240101T000000Z-001.zip"
    with zipfile.ZipFile(drive, "w") as zf:
        zf.writestr(f"LatBench/{CPU_FILE}.pickle", b"x")
    with pytest.raises(ImportFormatError, match="a zip archive.*unzip it"):
        read_source("eagle", drive, key="mine")
    # unzipped one level deeper than the folder given
    inner = tmp_path / "unzipped" / "LatBench"
    inner.mkdir(parents=True)
    _write_pickle(inner / f"{CPU_FILE}.pickle", _release(1, n=20))
    with pytest.raises(ImportFormatError, match="give the folder that holds them.*LatBench"):
        read_source("eagle", inner.parent)


@pytest.mark.parametrize("text", [b"arch,latency_ms\n3,3,3,3,3,3,1.5\n", b'{"3,3,3,3,3,3": 1.5}'])
def test_csv_or_json_given_for_a_pickle_is_named(tmp_path, text):
    f = tmp_path / "mine.pickle"
    f.write_bytes(text)
    with pytest.raises(CorruptPickleError, match=r"text \(a CSV or JSON file\?\), not a pickle"):
        read_source("eagle", f, key="mine")
    # a binary file that is merely corrupt keeps the corrupt-pickle message
    f.write_bytes(b"\x80\x03}(K\x01")
    with pytest.raises(CorruptPickleError, match="not a readable pickle"):
        read_source("eagle", f, key="mine")


def test_hwnasbench_folder_finds_a_renamed_copy(tmp_path):
    (tmp_path / "hw-nas-bench-v1_0 (1).pkl").write_text("a,b\n1,2\n")
    with pytest.raises(CorruptPickleError, match=r"v1_0 \(1\)\.pkl: text"):
        read_source("hwnasbench", tmp_path)


def test_gzipped_accuracy_csv_is_named(tmp_path):
    f = tmp_path / "nats_bench.csv.gz"
    f.write_bytes(gzip.compress(b"CIFAR10TestAccuracy200Epochs\n"))
    with pytest.raises(ValueError, match="gzip-compressed.*gunzip"):
        import_accuracy(f, tmp_path / "home")


# --- hostile payloads --------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("importer", ["eagle", "help", "hwnasbench"])
def test_a_reduce_payload_never_runs(tmp_path, capsys, importer):
    marker = tmp_path / "ran"
    evil = _Evil(marker)
    src = tmp_path / "src"
    src.mkdir()
    if importer == "eagle":
        _write_pickle(src / f"{CPU_FILE}.pickle", {(3, 3, 3, 3, 3, 3): evil})
    elif importer == "help":
        _torch_zip(src / INDEX_FILE, evil)  # read before any latency file
        _torch_zip(src / "pixel2.pt", [1.0] * N_ARCHS)
    else:
        (src / "HW-NAS-Bench-v1_0.pickle").write_bytes(pickle.dumps({"nasbench201": evil}, 4))
    home = tmp_path / "home"
    rc, out, err = _cli(capsys, "import", importer, str(src), "--data-home", str(home))
    _one_line_refusal(rc, err, "system", "not allowed")
    assert not marker.exists()
    assert _datasets(home) == []
    with pytest.raises(UnsafePickleError):
        read_source(importer, src)
    assert not marker.exists()


# --- keys taken from file names ------------------------------------------------------------


def _help_folder(folder: Path, latency_names: list[str]) -> Path:
    folder.mkdir(parents=True)
    _torch_zip(folder / INDEX_FILE, {a.str: a.id for a in all_archs()})
    for name in latency_names:
        _torch_zip(folder / name, [float(1 + i % 7) for i in range(N_ARCHS)])
    return folder


def test_a_normalized_key_cannot_name_a_companion_file(tmp_path):
    f = _write_pickle(tmp_path / "mine.pickle", _release(3, n=20))
    home = tmp_path / "home"
    # passes as typed, but '.pkl' is dropped: it would have written x.layers.parquet
    with pytest.raises(
        ImportFormatError, match=r"'x\.layers' ends in '\.layers'.*nothing imported"
    ):
        import_datasets("eagle", f, data_home=home, key="x.layers.pkl")
    assert _datasets(home) == []


@pytest.mark.parametrize(
    ("name", "match"),
    [("foo.layers.pt", r"'help-foo\.layers' ends in '\.layers'"), ("x;rm.pt", "ASCII letters")],
)
def test_a_help_file_name_that_is_no_valid_key_is_refused(tmp_path, name, match):
    src = _help_folder(tmp_path / "help", [name])
    home = tmp_path / "home"
    with pytest.raises(ImportFormatError, match=match):
        import_datasets("help", src, data_home=home)
    assert _datasets(home) == []


def test_help_checkout_root_copy_marks_and_case(tmp_path):
    root = tmp_path / "HELP"
    _help_folder(root / "data" / "nasbench201", ["Pixel2 (1).PT"])
    (root / "README.md").write_text("HELP")
    for given in (root, root / "data"):
        (item,) = read_source("help", given)
        assert item.key == "help-pixel2"  # the catalog's entry, not 'help-pixel2-(1)'
        assert item.metadata["device"]["name"] == latbench.catalog.CATALOG["help-pixel2"].name
    _torch_zip(root / "data" / "nasbench201" / "pixel2.pt", [2.0] * N_ARCHS)
    with pytest.raises(ImportFormatError, match="both dataset 'help-pixel2'"):
        read_source("help", root)


def test_a_release_pickle_given_to_help_is_named(tmp_path):
    f = _write_pickle(tmp_path / f"{CPU_FILE}.pickle", _release(1, n=20))
    with pytest.raises(ImportFormatError, match="not a HELP latency file"):
        read_source("help", f)


# --- the data home ---------------------------------------------------------------------------


def test_interrupted_import_leaves_old_or_new_files_and_no_temp(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    home = tmp_path / "home"
    for name, seed in ((CPU_FILE, 1), (MOBILE_FILE, 2)):
        _write_pickle(src / f"{name}.pickle", _release(seed, n=50))
    import_datasets("eagle", src, data_home=home)
    before = {n: (home / n).read_bytes() for n in _datasets(home)}
    for name, seed in ((CPU_FILE, 3), (MOBILE_FILE, 4)):
        _write_pickle(src / f"{name}.pickle", _release(seed, n=60))
    real = latbench.dataset.write_verified
    calls = []

    def ctrl_c_on_the_second(table, tmp, **kw):
        calls.append(tmp)
        if len(calls) == 2:
            Path(tmp).write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt
        return real(table, tmp, **kw)

    monkeypatch.setattr(latbench.dataset, "write_verified", ctrl_c_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        import_datasets("eagle", src, data_home=home, overwrite=True)
    assert _datasets(home) == sorted(before)  # no temp file, no lock-holder note
    changed = [n for n in before if (home / n).read_bytes() != before[n]]
    assert len(changed) == 1  # the first is new, the interrupted one still the old file
    for n in before:
        latbench.read_dataset(home / n)
    assert set(latbench.devices(home).query("available")["key"]) >= {CPU_KEY}


def test_a_read_only_data_home_is_one_clear_line(tmp_path, capsys, monkeypatch):
    f = _write_pickle(tmp_path / f"{CPU_FILE}.pickle", _release(1, n=20))
    home = tmp_path / "home"

    @contextlib.contextmanager
    def read_only(out_dir, stem):
        raise OSError(errno.EROFS, "Read-only file system", str(Path(out_dir, f".{stem}.lock")))
        yield

    monkeypatch.setattr(latbench.lock, "hold", read_only)
    rc, out, err = _cli(capsys, "import", "eagle", str(f), "--data-home", str(home))
    _one_line_refusal(rc, err, "cannot take the write lock", "Read-only file system")
    assert "[Errno" not in err and _datasets(home) == []


def test_a_full_disk_while_writing_is_not_called_a_lock_problem(tmp_path, capsys, monkeypatch):
    f = _write_pickle(tmp_path / f"{CPU_FILE}.pickle", _release(1, n=20))
    home = tmp_path / "home"

    def disk_full(table, tmp, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latbench.dataset, "write_verified", disk_full)
    rc, out, err = _cli(capsys, "import", "eagle", str(f), "--data-home", str(home))
    _one_line_refusal(rc, err, "disk full")
    assert "write lock" not in err and _datasets(home) == []


@pytest.fixture(scope="module")
def accuracy_csv(tmp_path_factory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("acc") / "nats_bench.csv", _synthetic_rows())


def test_a_second_accuracy_import_waits_for_no_one(tmp_path, accuracy_csv):
    home = tmp_path / "home"
    lock = home / "accuracy" / ".nb201-accuracy.lock"
    lock.parent.mkdir(parents=True)
    other = FileLock(lock, timeout=0)  # another process's flock, as far as the kernel cares
    other.acquire()
    try:
        with pytest.raises(BlockingIOError, match="another process holds its write lock"):
            import_accuracy(accuracy_csv, home)
    finally:
        other.release()
    assert not (home / "accuracy" / "nb201-accuracy.parquet").exists()
    assert import_accuracy(accuracy_csv, home).path.exists()


def test_empty_path_or_data_home_never_means_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_pickle(tmp_path / f"{CPU_FILE}.pickle", _release(1, n=20))
    _one_line_refusal(
        *_cli(capsys, "import", "eagle", "")[::2], "expected a file or folder, got an empty"
    )
    argv = ["import", "eagle", f"{CPU_FILE}.pickle", "--data-home", ""]
    _one_line_refusal(*_cli(capsys, *argv)[::2], "--data-home: expected a folder, got an empty")
    _one_line_refusal(*_cli(capsys, "export", CPU_KEY, "-o", "x.csv", "--data-home", " ")[::2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{CPU_FILE}.pickle"]


# --- what the command says ----------------------------------------------------------------


def test_an_edited_copy_is_noted_in_the_report(tmp_path, capsys):
    f = _write_pickle(tmp_path / f"{CPU_FILE}.pickle", _release(1, n=20))
    rc, out, err = _cli(capsys, "import", "eagle", str(f), "--data-home", str(tmp_path / "h"))
    assert rc == 0 and err == ""
    assert "note:" in out and "differs from the published file" in out


def test_any_other_warning_during_an_import_is_shown_not_looped_on(
    tmp_path, capsys, monkeypatch, deadline
):
    def warn_and_import_nothing(*args, **kwargs):
        warnings.warn("a library's deprecation warning", UserWarning, stacklevel=1)
        return []

    monkeypatch.setattr(latbench.importers, "import_datasets", warn_and_import_nothing)
    rc, out, err = _cli(capsys, "import", "eagle", str(tmp_path), "--data-home", str(tmp_path))
    assert rc == 0
    assert "latbench: warning: a library's deprecation warning" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["eagle", "/home/me/release.pickle"], "is not a URL"),
        (["eagle", "file:///x.pickle", "--sha256", "xyz"], "not 64 hexadecimal digits"),
        (["help", "--timeout", "0"], "--timeout must be a positive number"),
        (["eagle", "file:///x.pickle", "--timeout", "nan"], "--timeout must be a positive"),
    ],
)
def test_fetch_arguments_are_checked_before_any_download(tmp_path, capsys, argv, needle):
    home = tmp_path / "home"
    rc, out, err = _cli(capsys, "fetch", *argv, "--data-home", str(home))
    _one_line_refusal(rc, err, needle)
    assert not home.exists()


# --- the published files, renamed the ways users hold them -------------------------------------


@refdata.needs("latbench-release", "embedded-tpu-edge-tpu-int8.pickle")
def test_real_release_file_under_old_name_and_a_gzipped_copy(tmp_path):
    real = refdata.ref_dir("latbench-release") / "embedded-tpu-edge-tpu-int8.pickle"
    src = tmp_path / "Downloads"
    src.mkdir()
    shutil.copy(real, src / "EMBEEDED-TPU-EDGETPU-INT8 (1).PKL")
    (src / "embedded-tpu-edge-tpu-int8.pickle.gz").write_bytes(gzip.compress(real.read_bytes()))
    with pytest.warns(SkippedFileWarning, match=r"pickle\.gz: compressed"):
        (item,) = read_source("eagle", src)
    assert item.key == "edgetpu-int8"
    assert item.metadata["imported_from"]["release"]["matches_published"] is True


@refdata.needs("help", "pixel2.pt")
def test_real_help_checkout_root(tmp_path):
    root = tmp_path / "HELP"
    (root / "data").mkdir(parents=True)
    (root / "data" / "nasbench201").symlink_to(refdata.ref_dir("help"), target_is_directory=True)
    (item,) = read_source("help", root, ["pixel2"])
    assert item.key == "help-pixel2" and item.counts()["ok"] == sum(a.valid for a in all_archs())


def test_a_lock_file_no_one_can_open_is_not_called_another_writer(
    tmp_path, accuracy_csv, monkeypatch
):
    # e.g. a shared data home after an admin's import: the lock file exists, read-only
    # (faked at the lock layer: root, which runs CI here, can open any file)
    import contextlib

    from latbench import lock

    @contextlib.contextmanager
    def unavailable(folder, key):
        raise lock.LockUnavailable(
            f"cannot create the write lock {folder}/.{key}.lock: Permission denied;"
            " --out must be a writable folder"
        )
        yield

    monkeypatch.setattr(lock, "hold", unavailable)
    with pytest.raises(OSError, match="cannot create the write lock") as exc:
        import_accuracy(accuracy_csv, tmp_path / "home")
    msg = str(exc.value)
    assert not isinstance(exc.value, BlockingIOError) and "another process" not in msg
    assert "the data home must be a writable folder" in msg and "--out" not in msg
