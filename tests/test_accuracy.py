"""The official NAS-Bench-201 index on every row, and NAS-Bench-201 accuracy as data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import refdata
from http_folder import served

import latbench
from latbench.accuracy_table import (
    AccuracyFormatError,
    AccuracyNotFoundError,
    accuracy,
    accuracy_path,
    read_nats_csv,
)
from latbench.cli import main as cli_main
from latbench.dataset import read_dataset
from latbench.importers.fetch import ChecksumError, download_dir, fetch_accuracy
from latbench.importers.nb201_accuracy import import_accuracy
from latbench.importers.registry import NB201_ACCURACY
from latbench.space import N_ARCHS, Arch, arch_id, format_arch, from_id, nb201_indices, parse_arch

ACC_CSV = refdata.ref_dir("nb201-accuracy") / "nats_bench.csv"
HELP_DIR = refdata.ref_dir("help")
RELEASE_DIR = refdata.ref_dir("latbench-release")
needs_csv = refdata.needs("nb201-accuracy", "nats_bench.csv")
needs_help = refdata.needs("help", "str_arch2idx.pt")
needs_release = refdata.needs("latbench-release")
BUNDLED = ("xeon2c-onnxruntime-fp32", "xeon2c-tf-fp32", "xeon2c-tflite-fp32")
HEADER = [
    "CIFAR10TestAccuracy200Epochs",
    "CIFAR100TestAccuracy200Epochs",
    "ImageNetTestAccuracy200Epochs",
    "ArchitectureString",
    "UniqueString",
]


# --- the official index ----------------------------------------------------------------


def test_nb201_index_is_a_permutation_and_not_the_product_order():
    idx = nb201_indices()
    assert idx.shape == (N_ARCHS,) and sorted(idx.tolist()) == list(range(N_ARCHS))
    # NAS-Bench-201 numbered its cells in training order, not by their ops
    assert not np.array_equal(idx, np.arange(N_ARCHS))
    assert not idx.flags.writeable


@needs_csv
def test_nb201_index_matches_the_csv_row_order():
    with ACC_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_ARCHS
    ids = np.array([arch_id(parse_arch(r["ArchitectureString"])) for r in rows])
    assert np.array_equal(nb201_indices()[ids], np.arange(N_ARCHS))
    assert Arch.from_str(rows[0]["ArchitectureString"]).nb201_index == 0


@needs_help
def test_help_str_arch2idx_agrees_with_the_official_index():
    from latbench.importers.help import INDEX_FILE, nb201_to_arch_id
    from latbench.safepickle import load_torch_zip

    to_arch = nb201_to_arch_id(load_torch_zip(HELP_DIR / INDEX_FILE))
    assert np.array_equal(nb201_indices()[to_arch], np.arange(N_ARCHS))


@pytest.mark.parametrize("key", BUNDLED)
def test_bundled_sets_carry_the_index_on_load_without_a_rewrite(key):
    df = latbench.load(key)
    assert df["nb201_index"].notna().all()
    assert np.array_equal(df["nb201_index"].to_numpy("int64"), nb201_indices()[df["arch_id"]])
    # the file itself is unchanged: the index is filled on load
    assert read_dataset(df.attrs["path"])["nb201_index"].isna().all()


def test_load_index_nb201_joins_by_the_official_index():
    df = latbench.load(BUNDLED[0], index="nb201")
    assert df.index.name == "nb201_index" and list(df.index) == list(range(N_ARCHS))
    assert np.array_equal(nb201_indices()[df["arch_id"].to_numpy()], df.index.to_numpy())
    by_id = latbench.load(BUNDLED[0], index="arch_id")
    assert list(by_id.index) == list(range(N_ARCHS))
    wide = latbench.load_wide([BUNDLED[0]], index="nb201")
    aid = int(df.loc[123, "arch_id"])
    assert wide.loc[123, BUNDLED[0]] == pytest.approx(by_id.loc[aid, "latency_ms"])
    with pytest.raises(ValueError, match="index must be"):
        latbench.load(BUNDLED[0], index="official")


@needs_release
def test_imported_release_file_carries_the_index(tmp_path):
    from latbench.importers import import_path

    import_path("eagle", RELEASE_DIR, data_home=tmp_path, keys=["edgetpu-int8"])
    df = latbench.load("edgetpu-int8", data_home=tmp_path)
    assert np.array_equal(df["nb201_index"].to_numpy("int64"), nb201_indices()[df["arch_id"]])


@needs_help
def test_help_import_index_equals_the_official_one(tmp_path):
    from latbench.importers import import_path

    import_path("help", HELP_DIR, data_home=tmp_path, keys=["help-pixel2"])
    stored = read_dataset(tmp_path / "help-pixel2.parquet")
    assert np.array_equal(stored["nb201_index"].to_numpy("int64"), nb201_indices()[stored.arch_id])


def test_arch_command_prints_the_index(capsys):
    assert cli_main(["arch", "11668"]) == 0
    out = capsys.readouterr().out
    assert f"nb201_index {nb201_indices()[11668]}" in out


# --- the CSV reader --------------------------------------------------------------------


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _synthetic_rows() -> list[list[str]]:
    # accuracy = a known function of arch_id, rows in the official index order
    order = np.argsort(nb201_indices())
    return [
        [f"{(a % 97) / 1.0:.2f}", f"{(a % 89) / 2:.3f}", f"{(a % 83) / 4:.4f}",
         format_arch(from_id(int(a))), "x"]
        for a in order
    ]  # fmt: skip


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("acc") / "acc.csv", _synthetic_rows())


def test_read_nats_csv_keys_rows_by_architecture(synthetic_csv):
    df = read_nats_csv(synthetic_csv)
    a = np.arange(N_ARCHS)
    assert np.array_equal(df["arch_id"], a)
    assert np.allclose(df["cifar10"], a % 97) and np.allclose(df["cifar100"], (a % 89) / 2)
    assert np.allclose(df["imagenet16-120"], (a % 83) / 4)
    assert df["valid"].sum() == 15_284


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r[:-1], r"1 of 15625 architectures missing"),
        (lambda r: [*r[:10], r[5], *r[11:]], r"line 12: architecture .* repeats line 7"),
        (
            lambda r: [r[0][:1] + ["abc"] + r[0][2:], *r[1:]],
            r"line 2: CIFAR100.*'abc' is not a number",
        ),
        (lambda r: [*r[:3], ["1", "2", "3", "|conv~0|+|x|", "u"], *r[4:]], r"line 5: "),
        (lambda r: [*r[:3], r[3][:3], *r[4:]], r"line 5: 3 fields"),
        (lambda r: [["1", "101", "3", *r[0][3:]], *r[1:]], r"line 2: .* not a percentage"),
        (lambda r: [["1", "nan", "3", *r[0][3:]], *r[1:]], r"line 2: .* not a percentage"),
        (  # saved as fractions (0.9386 for 93.86 %)
            lambda r: [[r_[0], f"{float(r_[1]) / 100:.6f}", *r_[2:]] for r_ in r],
            r"every CIFAR100.* is at most 1.0: fractions, not the percentages",
        ),
    ],
)
def test_read_nats_csv_refuses_bad_rows(tmp_path, mutate, message):
    path = _write_csv(tmp_path / "bad.csv", mutate(_synthetic_rows()))
    with pytest.raises(AccuracyFormatError, match=message):
        read_nats_csv(path)


def test_read_nats_csv_refuses_a_foreign_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(AccuracyFormatError, match="line 1: no column"):
        read_nats_csv(path)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(AccuracyFormatError, match="not UTF-8"):
        read_nats_csv(path)


@pytest.mark.parametrize("which", ["missing", "duplicated", "unparseable"])
def test_import_command_refuses_bad_csv_in_one_line(tmp_path, capsys, which):
    rows = _synthetic_rows()
    rows = {"missing": rows[:-3], "duplicated": [*rows, rows[0]],
            "unparseable": [*rows[:-1], ["x", "y", "z", *rows[-1][3:]]]}[which]  # fmt: skip
    path = _write_csv(tmp_path / "bad.csv", rows)
    home = tmp_path / "home"
    rc = cli_main(["import", "nb201-accuracy", str(path), "--data-home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("latbench: error:")
    assert not accuracy_path(home).exists()


def test_import_command_names_a_folder_given_for_the_csv(tmp_path, capsys):
    home = tmp_path / "home"
    rc = cli_main(["import", "nb201-accuracy", str(tmp_path), "--data-home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and "a directory, not the CSV file" in err and err.count("\n") == 1
    assert not accuracy_path(home).exists()


# --- the table, load(accuracy=), fetch --------------------------------------------------


def test_import_and_read_back(tmp_path, synthetic_csv, capsys):
    home = tmp_path / "home"
    assert cli_main(["import", "nb201-accuracy", str(synthetic_csv), "--data-home", str(home)]) == 0
    assert "NOT the published file" in capsys.readouterr().out
    acc = latbench.accuracy("CIFAR-100", data_home=home)
    assert acc.attrs["dataset"] == "cifar100" and len(acc) == N_ARCHS
    assert np.allclose(acc["accuracy"], (np.arange(N_ARCHS) % 89) / 2)
    assert not acc.loc[0, "valid"] and acc.loc[0, "accuracy"] == 0.0  # invalid keeps its value
    assert "NATS-Bench" in acc.attrs["metadata"]["citation"]
    # a second import does not replace it without --overwrite
    assert cli_main(["import", "nb201-accuracy", str(synthetic_csv), "--data-home", str(home)]) == 2
    df = latbench.load(BUNDLED[0], data_home=home, accuracy="cifar10")
    assert np.allclose(df["accuracy_cifar10"], df["arch_id"] % 97)
    wide = latbench.load_wide([BUNDLED[0]], data_home=home, accuracy="imagenet16-120")
    assert np.allclose(wide["accuracy_imagenet16-120"], (wide.index.to_numpy() % 83) / 4)
    with pytest.raises(ValueError, match="unknown accuracy dataset"):
        accuracy("mnist", data_home=home)


def test_damaged_table_is_refused(tmp_path, synthetic_csv):
    home = tmp_path / "home"
    path = import_accuracy(synthetic_csv, home).path
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises((AccuracyFormatError, OSError)):
        accuracy("cifar100", data_home=home)


def test_absent_table_says_how_to_get_it(tmp_path):
    with pytest.raises(AccuracyNotFoundError, match="latbench fetch nb201-accuracy"):
        accuracy("cifar100", data_home=tmp_path)


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with served(root) as base:
        yield root, base


@needs_csv
def test_fetch_over_http_serves_the_real_file(tmp_path, http_dir, capsys):
    root, base = http_dir
    shutil.copy(ACC_CSV, root / "nats_bench.csv")
    home = tmp_path / "home"
    rc = cli_main(["fetch", "nb201-accuracy", base + "nats_bench.csv", "--data-home", str(home)])
    assert rc == 0 and "the published file" in capsys.readouterr().out
    acc = accuracy("cifar10", data_home=home)
    best = Arch.from_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert acc.loc[best.id, "accuracy"] == pytest.approx(94.36, abs=0.01)
    assert acc["accuracy"].max() == pytest.approx(94.37, abs=0.01)
    assert acc.loc[~acc["valid"], "accuracy"].max() < 11  # invalid cells: near chance
    assert accuracy("cifar100", data_home=home).loc[best.id, "accuracy"] == pytest.approx(
        73.51, abs=0.01
    )
    meta = acc.attrs["metadata"]["source"]
    assert meta["sha256"] == NB201_ACCURACY.sha256 and meta["url"].startswith(base)
    # the download is kept: a second fetch (overwrite) needs no server
    (root / "nats_bench.csv").unlink()
    fetch_accuracy(home, overwrite=True, url=base + "nats_bench.csv")


@needs_csv
def test_fetch_refuses_a_corrupted_copy_and_writes_nothing(tmp_path, http_dir, capsys):
    root, base = http_dir
    data = bytearray(ACC_CSV.read_bytes())
    data[1000] = ord("7") if data[1000] != ord("7") else ord("8")
    (root / "nats_bench.csv").write_bytes(bytes(data))
    home = tmp_path / "home"
    with pytest.raises(ChecksumError):
        fetch_accuracy(home, url=base + "nats_bench.csv")
    rc = cli_main(["fetch", "nb201-accuracy", base + "nats_bench.csv", "--data-home", str(home)])
    err = capsys.readouterr().err
    assert rc == 2 and "SHA-256" in err and err.count("\n") == 1
    assert not accuracy_path(home).exists()
    cached = download_dir("nb201-accuracy", home)
    assert not cached.exists() or not any(cached.iterdir())


def test_pinned_url_is_the_commit_named_in_the_registry():
    assert "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7" in NB201_ACCURACY.url
    assert NB201_ACCURACY.url.endswith("/nats_bench.csv")


def test_accuracy_is_not_bundled():
    from latbench.loader import bundled_dir

    assert not list(bundled_dir().rglob("*accuracy*")) and not list(bundled_dir().rglob("*.csv"))


def test_an_nb201_index_names_its_architecture_both_ways(capsys):
    from latbench.cli import main as cli_main
    from latbench.space import Arch, ArchError

    for i in (0, 1, 9930, N_ARCHS - 1):
        assert Arch.from_nb201_index(i).nb201_index == i
    for bad in (-1, N_ARCHS, 2.0, True):
        with pytest.raises(ArchError):
            Arch.from_nb201_index(bad)
    assert cli_main(["arch", "9930", "--nb201", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nb201_index"] == 9930 and info["arch_id"] == Arch.from_nb201_index(9930).id


@needs_csv
def test_nb201_indices_name_the_csvs_rows():
    import csv

    from latbench.space import Arch

    with open(ACC_CSV, newline="", encoding="utf-8") as fh:
        rows = [r["ArchitectureString"] for r in csv.DictReader(fh)]
    for i in (0, 1, 9930, N_ARCHS - 1):
        assert Arch.from_nb201_index(i).str == rows[i]
