"""The metadata a reader returns is the copy the digest verified (issue 24, item 1).

A Parquet footer holds the key-value metadata twice: as key-value pairs (covered by
the file's SHA-256) and inside the base64 Arrow schema blob. Damage to the blob copy
must never reach ``df.attrs["metadata"]``.
"""

from __future__ import annotations

import base64

import pyarrow.parquet as pq
import pytest

from latbench.dataset import (
    DatasetError,
    read_dataset,
    read_metadata,
    skeleton_frame,
    write_dataset,
)

META = {"runtime": {"delegate": "xnnpack", "delegate_applied": True}}


def _damage_blob(path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) inside the footer's Arrow schema blob only."""
    blob = pq.ParquetFile(path).metadata.metadata[b"ARROW:schema"]
    decoded = base64.b64decode(blob)
    assert decoded.count(old) == 1
    damaged = base64.b64encode(decoded.replace(old, new))
    assert len(damaged) == len(blob)
    data = path.read_bytes()
    assert data.count(blob) == 1
    path.write_bytes(data.replace(blob, damaged))


def _written(tmp_path):
    path = tmp_path / "box.parquet"
    write_dataset(skeleton_frame(range(40)), path, META)
    return path


def test_damaged_schema_blob_never_reaches_the_user(tmp_path):
    path = _written(tmp_path)
    _damage_blob(path, b'"delegate_applied"', b'"delegate_atplied"')
    # the damaged copy is really what pyarrow's schema shows: the test would see a leak
    assert b"delegate_atplied" in pq.ParquetFile(path).schema_arrow.metadata[b"latbench"]
    df = read_dataset(path)
    assert df.attrs["metadata"]["runtime"] == META["runtime"]
    assert read_metadata(path)["runtime"] == META["runtime"]


def test_damaged_key_value_metadata_is_detected(tmp_path):
    path = _written(tmp_path)
    data = path.read_bytes()
    kv = pq.ParquetFile(path).metadata.metadata[b"latbench"]
    assert data.count(kv) == 1
    path.write_bytes(data.replace(kv, kv.replace(b"delegate_applied", b"delegate_atplied")))
    with pytest.raises(DatasetError, match="SHA-256"):
        read_dataset(path)
    with pytest.raises(DatasetError, match="SHA-256"):
        read_metadata(path)
