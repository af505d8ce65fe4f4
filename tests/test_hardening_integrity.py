"""Issue 12, silent corruption: checksums, digests and row checks of datasets and raw files."""

from __future__ import annotations

import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import flip_page_byte, ok_frame

from latbench import manifest
from latbench.dataset import DatasetError, read_dataset, write_dataset
from latbench.integrity import (
    INTEGRITY_KEY,
    UnverifiedFileWarning,
    check_file,
    read_verified,
    rewrite_file,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def _frame(n: int = 300, seed: int = 0):
    return ok_frame(n, step=5, seed=seed, low=0.1, high=2.0)


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(_frame(), tmp_path / "d.parquet", {"source": "test"})


def _legacy(table: pa.Table, path: Path) -> Path:
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != INTEGRITY_KEY}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_written_datasets_carry_page_checksums_and_digests(dataset):
    meta = pq.read_schema(dataset).metadata
    assert INTEGRITY_KEY in meta  # before: no checksums were written at all
    raw = dataset.read_bytes()
    page = raw.index(b"PAR1") + 100  # inside the first data page
    bad = dataset.with_name("bad.parquet")
    bad.write_bytes(raw[:page] + bytes([raw[page] ^ 0x10]) + raw[page + 1 :])
    with pytest.raises(DatasetError):
        read_dataset(bad)


def test_no_bit_flip_loads_with_changed_data(dataset, tmp_path):
    # before: 224 of 400 flips of a bundled file loaded with changed data
    original = read_dataset(dataset)
    raw = bytearray(dataset.read_bytes())
    rng = random.Random(12)
    silent = []
    for _ in range(60):
        pos, bit = rng.randrange(len(raw)), rng.randrange(8)
        raw[pos] ^= 1 << bit
        flipped = tmp_path / "f.parquet"
        flipped.write_bytes(bytes(raw))
        raw[pos] ^= 1 << bit
        try:
            got = read_dataset(flipped)
        except DatasetError:
            continue
        if not (got.equals(original) and got.attrs["metadata"] == original.attrs["metadata"]):
            silent.append(pos)
    assert silent == []


def _legacy_with(dataset: Path, tmp_path: Path, column: str, index: int, value) -> Path:
    table = pq.read_table(dataset)
    col = table.column(column).to_pylist()
    col[index] = value
    table = table.set_column(table.schema.get_field_index(column), column,
                             pa.array(col, table.schema.field(column).type))  # fmt: skip
    return _legacy(table, tmp_path / f"{column}.parquet")


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("arch_id", 20_000, "outside 0..15624"),
        ("arch_id", 6, "arch_str of arch_id 6"),  # id 5's string, id 6 says the row
        ("valid", False, "valid of arch_id"),
        ("latency_ms", None, "has status 'ok' and no latency"),
        ("latency_ms", 1e300, "plausible"),
        ("status", "failed", "has status 'failed' and a latency"),
    ],
)
def test_row_checks_catch_what_a_file_without_digest_would_hide(
    dataset, tmp_path, column, value, match
):
    valid = pq.read_table(dataset).column("valid").to_pylist()
    row = 1 if column == "arch_id" else valid.index(True)  # id 5 (and 6: not its string)
    path = _legacy_with(dataset, tmp_path, column, row, value)
    with pytest.raises(DatasetError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        read_dataset(path)


def test_old_files_load_with_a_warning_and_rewrite_keeps_them_identical(dataset, tmp_path):
    legacy = _legacy(pq.read_table(dataset), tmp_path / "old.parquet")
    with pytest.warns(UnverifiedFileWarning, match="latbench rewrite"):
        before = read_dataset(legacy)
    assert "NO checksums" in check_file(legacy)
    rewrite_file(legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedFileWarning)
        after = read_dataset(legacy)
    assert after.equals(before) and after.attrs["metadata"] == before.attrs["metadata"]
    assert "checksums verified" in check_file(legacy)


def test_every_bundled_file_is_checksummed():
    # before: no bundled file had page checksums, digests or Fletcher-32
    files = sorted(p for p in DATA.iterdir() if p.name.endswith((".parquet", ".raw.h5")))
    assert files
    for path in files:
        assert "checksums verified" in check_file(path), path


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """A copy of one bundled dataset's files that LatBench treats as the bundled folder."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    for name in ("manifest.json", "xeon2c-tf-fp32.parquet", "xeon2c-tf-fp32.layers.parquet",
                 "xeon2c-tf-fp32.raw.h5"):  # fmt: skip
        shutil.copy(DATA / name, folder / name)
    monkeypatch.setattr(manifest, "_bundled_dir", lambda: folder)
    manifest._manifest.cache_clear()
    manifest._verify_cached.cache_clear()
    yield folder
    manifest._manifest.cache_clear()
    manifest._verify_cached.cache_clear()


def test_missing_bundled_manifest_is_an_error(bundled_copy):
    manifest.verify_file(bundled_copy / "xeon2c-tf-fp32.parquet")
    (bundled_copy / "manifest.json").unlink()
    manifest._manifest.cache_clear()
    manifest._verify_cached.cache_clear()
    # before: deleting the manifest silently turned every check off
    with pytest.raises(manifest.ChecksumError, match="missing"):
        manifest.verify_file(bundled_copy / "xeon2c-tf-fp32.parquet")


@pytest.mark.parametrize("name", ["xeon2c-tf-fp32.layers.parquet", "xeon2c-tf-fp32.raw.h5"])
def test_bundled_layers_and_raw_files_are_verified_when_used(bundled_copy, name):
    from latbench.predictors.layerwise import read_layers
    from latbench.raw import read_raw

    path = bundled_copy / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    # before: listed in data/manifest.json but never checked
    with pytest.raises(manifest.ChecksumError, match="SHA-256"):
        read_raw(path) if name.endswith(".h5") else read_layers(path)


def test_raw_files_have_fletcher32_and_a_digest_over_the_string_heap(tmp_path):
    import h5py

    from latbench.raw import RawFormatError, read_raw, write_raw

    path = write_raw(tmp_path / "r.raw.h5", ["graph-key-aaaa", "graph-key-bbbb"], [1, 2],
                     [np.arange(10) + 1, np.arange(10) + 5], {"runs": 10, "group_size": 10})  # fmt: skip
    with h5py.File(path) as f:
        assert f["timings_ns"].fletcher32 and f["arch_id"].fletcher32
    assert read_raw(path)["graph_key"].tolist() == ["graph-key-aaaa", "graph-key-bbbb"]
    data = bytearray(path.read_bytes())
    i = data.find(b"graph-key-bbbb")
    data[i + 10] ^= 0x02  # variable-length strings live in the heap, outside Fletcher-32
    path.write_bytes(bytes(data))
    with pytest.raises(RawFormatError, match="SHA-256|corrupt"):
        read_raw(path)


def test_parts_are_checksummed_and_a_damaged_part_is_retimed(tmp_path):
    from latbench.harness.store import GraphResult, RunStore

    store = RunStore(tmp_path, "k", {"a": 1})
    store.open()
    store.add(GraphResult("g", 1, "ok", 1.0, 0.1, 10, raw_ns=np.arange(10)))
    part = store.flush()
    assert INTEGRITY_KEY in pq.read_schema(part).metadata
    read_verified(part)
    flip_page_byte(part, "raw_ns")  # inside the raw timings' data page
    assert RunStore(tmp_path, "k", {"a": 1}).open() == {}


def test_rewrite_of_a_table_holding_nan_succeeds_and_keeps_it(tmp_path):
    # a NaN float (not a null) is unequal to itself under Table.equals: that once made
    # rewrite replace the file, then call its own result damaged
    path = tmp_path / "t.layers.parquet"  # a LatBench per-layer table: foreign ones are refused
    table = pa.table({"x": pa.array([1.0, float("nan"), 3.0]), "n": pa.array([1, 2, 3])})
    table = table.replace_schema_metadata({b"latbench": b'{"table": "layers"}'})
    pq.write_table(table, path)
    assert "rewrote" in rewrite_file(path)
    back = pq.read_table(path)
    assert np.isnan(back["x"][1].as_py()) and back["n"].to_pylist() == [1, 2, 3]
    assert "checksums verified" in check_file(path)
