"""`latbench rewrite A B` rewrites all the files or none.

Before, it worked file by file: when B was refused (damaged, foreign, missing), A had
already been rewritten. Now every named file is read and checked in full first; one
refusal prints its one line, exits 2 and leaves every file, and the folder, as it was.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import flip_page_byte, ok_frame

from latbench.cli import main
from latbench.dataset import DatasetError, write_dataset
from latbench.integrity import (
    INTEGRITY_KEY,
    NotLatBenchFile,
    UnverifiedFileWarning,
    check_file,
    rewrite_files,
)


def _legacy(path: Path, seed: int = 0) -> Path:
    """A dataset as written before checksums: what `latbench rewrite` is for."""
    write_dataset(ok_frame(300, step=5, seed=seed, low=0.1, high=2.0), path, {"source": "t"})
    table = pq.read_table(path)
    meta = {k: v for k, v in table.schema.metadata.items() if k != INTEGRITY_KEY}
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def _damaged(path: Path) -> Path:
    """A legacy dataset whose rows break a row check (a latency of -1 ms)."""
    table = pq.read_table(_legacy(path, seed=1))
    lat = table.column("latency_ms").to_pylist()
    lat[next(i for i, x in enumerate(lat) if x is not None)] = -1.0
    i = table.schema.get_field_index("latency_ms")
    pq.write_table(table.set_column(i, "latency_ms", pa.array(lat, pa.float64())), path)
    return path


def _foreign(path: Path) -> Path:
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    return path


def _flipped(path: Path) -> Path:
    """A checksummed dataset with one byte flipped inside its data pages."""
    write_dataset(ok_frame(300, step=5, seed=2, low=0.1, high=2.0), path)
    return flip_page_byte(path, "latency_ms")


BAD = {
    "row check fails": (_damaged, "outside the plausible"),
    "damaged bytes": (_flipped, "b.parquet"),
    "not a LatBench file": (_foreign, "not a LatBench file"),
    "missing": (lambda p: p, "no such file"),
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _is_verified(path: Path) -> bool:
    return INTEGRITY_KEY in (pq.read_schema(path).metadata or {})


@pytest.mark.parametrize("case", sorted(BAD))
def test_one_refused_file_leaves_the_good_one_unchanged(tmp_path, capsys, case):
    make, needle = BAD[case]
    good = _legacy(tmp_path / "a.parquet")
    bad = make(tmp_path / "b.parquet")
    before = _snapshot(tmp_path)
    rc = main(["rewrite", str(good), str(bad)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("latbench: error: ") and needle in lines[0], lines[0]
    assert "b.parquet" in lines[0] and out == ""  # before: "rewrote .../a.parquet"
    # the good file byte for byte, and no temporary or lock file beside it
    assert _snapshot(tmp_path) == before
    assert not _is_verified(good)


def test_the_library_call_is_all_or_nothing_too(tmp_path):
    good = _legacy(tmp_path / "a.parquet")
    before = good.read_bytes()
    bad = _foreign(tmp_path / "b.parquet")
    with pytest.raises(NotLatBenchFile, match="b.parquet"):
        rewrite_files([good, bad])
    with pytest.raises(DatasetError, match="outside the plausible"):
        rewrite_files([good, _damaged(tmp_path / "c.parquet")])
    assert good.read_bytes() == before


def test_when_every_file_passes_every_file_is_rewritten(tmp_path, capsys):
    a, b = _legacy(tmp_path / "a.parquet"), _legacy(tmp_path / "b.parquet", seed=3)
    rc = main(["rewrite", str(a), str(b)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == [f"rewrote {a}", f"rewrote {b}"]
    for path in (a, b):
        assert _is_verified(path)
        assert "checksums verified" in check_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedFileWarning)
        check_file(a)


def test_a_full_disk_midway_lists_the_files_already_rewritten(tmp_path, monkeypatch, capsys):
    """Checks pass for both, the second write fails: the first's line was printed."""
    import errno

    from latbench import integrity

    a, b = _legacy(tmp_path / "a.parquet"), _legacy(tmp_path / "b.parquet", seed=3)
    b_before = b.read_bytes()
    real = integrity._rewrite_checked

    def full_disk_on_b(path, found):
        if Path(path).name == "b.parquet":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, found)

    monkeypatch.setattr(integrity, "_rewrite_checked", full_disk_on_b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        rc = main(["rewrite", str(a), str(b)])
    out, err = capsys.readouterr()
    assert rc == 2 and "No space left" in err and len(err.strip().splitlines()) == 1
    assert out.startswith(f"rewrote {a}") and str(b) not in out
    assert "checksums verified" in check_file(a) and b.read_bytes() == b_before


def test_a_manifest_update_failing_after_the_replace_says_the_file_was_rewritten(
    tmp_path, monkeypatch, capsys
):
    """The file is replaced first: a failure recording it in its folder's manifest must
    say so, not leave a silent mismatch."""
    from latbench import manifest

    a = _legacy(tmp_path / "a.parquet")
    manifest.write_manifest(tmp_path)

    def full_disk(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest, "update_entry", full_disk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        rc = main(["rewrite", str(a)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "rewritten (content unchanged)" in err and "manifest.json" in err


def test_a_file_with_its_checksums_already_is_left_as_it_is_and_said_so(tmp_path, capsys):
    from latbench.raw import write_raw

    current = tmp_path / "a.parquet"
    write_dataset(ok_frame(300, step=5, seed=0, low=0.1, high=2.0), current, {"source": "t"})
    raw = tmp_path / "a.raw.h5"
    write_raw(raw, np.array(["g"]), np.array([7]), np.ones((1, 5), np.int64), {})
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (current, raw)}
    legacy = _legacy(tmp_path / "b.parquet")
    assert main(["rewrite", str(current), str(raw), str(legacy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{current}: unchanged, it has its page checksums")
    assert lines[1].startswith(f"{raw}: unchanged, it has its Fletcher-32")
    assert lines[2].startswith(f"rewrote {legacy}") and "added" in lines[2]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (current, raw)} == before
