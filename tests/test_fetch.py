"""Fetching the LatBench release (gdown) and HELP (pooch), offline.

gdown's two entry points are replaced by stand-ins that serve a local folder as the
Drive folder (gdown's own test seam: the functions it exposes), so no test touches
the network; HELP is served by an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import collections
import hashlib
import shutil
from pathlib import Path

import pytest
import refdata

import latbench
from latbench.importers.fetch import (
    ChecksumError,
    FetchError,
    download_dir,
    fetch_dataset,
    fetch_latbench,
)
from latbench.importers.registry import DRIVE_FOLDER_ID, REGISTRY

RELEASE_DIR = refdata.ref_dir("latbench-release")
needs_release = refdata.needs("latbench-release")

_Listed = collections.namedtuple("_Listed", "id path local_path")  # gdown's listing record


class FakeDrive:
    """Serves ``folder`` as Google Drive folder ``folder_id`` through gdown's API."""

    def __init__(self, folder: Path, folder_id: str = DRIVE_FOLDER_ID) -> None:
        self.folder, self.folder_id = folder, folder_id
        self.downloads: list[str] = []
        self.listings = 0

    def download_folder(self, *, id, output, skip_download, **kw):  # noqa: A002
        assert id == self.folder_id and skip_download is True
        self.listings += 1
        return [
            _Listed(f"id-{p.name}", f"LatBench/{p.name}", str(Path(output, p.name)))
            for p in sorted(self.folder.iterdir())
        ]

    def download(self, *, id, output, **kw):  # noqa: A002
        name = id.removeprefix("id-")
        self.downloads.append(name)
        shutil.copyfile(self.folder / name, output)
        return output


@pytest.fixture
def drive(tmp_path, monkeypatch):
    import gdown

    folder = tmp_path / "drive"
    folder.mkdir()
    fake = FakeDrive(folder)
    monkeypatch.setattr(gdown, "download_folder", fake.download_folder)
    monkeypatch.setattr(gdown, "download", fake.download)
    return fake


@needs_release
def test_fetch_latbench_verifies_imports_and_reuses_downloads(tmp_path, drive):
    for name in ("embedded-gpu-jetson-nano-fp32", "embedded-tpu-edge-tpu-int8"):
        shutil.copy(RELEASE_DIR / f"{name}.pickle", drive.folder / f"{name}.pickle")
    (drive.folder / "README.txt").write_text("not a release file")
    home = tmp_path / "home"
    reports = fetch_latbench(home)
    assert sorted(r.key for r in reports) == ["edgetpu-int8", "jetson-nano-fp32"]
    assert sorted(drive.downloads) == [
        "embedded-gpu-jetson-nano-fp32.pickle",
        "embedded-tpu-edge-tpu-int8.pickle",
    ]
    df = latbench.load("jetson_nano", data_home=home)
    meta = df.attrs["metadata"]
    assert meta["imported_from"]["release"]["matches_published"] is True
    assert meta["imported_from"]["sha256"] == REGISTRY["embedded-gpu-jetson-nano-fp32"].sha256
    kept = download_dir("latbench", home) / "embedded-tpu-edge-tpu-int8.pickle"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == REGISTRY[kept.stem].sha256
    # a second fetch finds the verified files and downloads nothing
    drive.downloads.clear()
    fetch_latbench(home, ["edgetpu"], overwrite=True)
    assert drive.downloads == []


@needs_release
def test_load_download_true_fetches_only_the_missing_dataset(tmp_path, drive):
    shutil.copy(RELEASE_DIR / "embedded-tpu-edge-tpu-int8.pickle", drive.folder)
    shutil.copy(RELEASE_DIR / "desktop-gpu-gtx-1080ti-fp32.pickle", drive.folder)
    home = tmp_path / "home"
    with pytest.raises(latbench.DatasetNotFoundError, match="latbench fetch latbench"):
        latbench.load("E.TPU", data_home=home)
    df = latbench.load("E.TPU", data_home=home, download=True)
    assert df.attrs["metadata"]["key"] == "edgetpu-int8"
    assert drive.downloads == ["embedded-tpu-edge-tpu-int8.pickle"]
    assert [p.name for p in home.glob("*.parquet")] == ["edgetpu-int8.parquet"]
    latbench.load("edgetpu", data_home=home, download=True)  # present: no second fetch
    assert drive.listings == 1


def test_tampered_drive_file_is_refused_and_nothing_imported(tmp_path, drive):
    (drive.folder / "embedded-tpu-edge-tpu-int8.pickle").write_bytes(b"not the published bytes")
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="is not the published 25fefd36"):
        fetch_latbench(home, ["edgetpu"])
    assert not list(home.glob("*.parquet"))
    cache = download_dir("latbench", home)
    assert not (cache / "embedded-tpu-edge-tpu-int8.pickle").exists()  # nothing unverified kept


def test_fetch_errors_are_one_line(tmp_path, drive, monkeypatch, capsys):
    import gdown

    from latbench.cli import main

    with pytest.raises(FetchError, match="lists no files"):
        fetch_latbench(tmp_path)
    (drive.folder / "notes.txt").write_text("x")
    with pytest.raises(FetchError, match="holds no file for snapdragon-855-gpu-int8"):
        fetch_latbench(tmp_path, ["snapdragon-855-gpu"])
    with pytest.raises(ValueError, match="not a dataset of the LatBench release"):
        fetch_latbench(tmp_path, ["help-pixel2"])

    def offline(**kw):
        raise ConnectionError("Failed to resolve 'drive.google.com'\n(offline)")

    monkeypatch.setattr(gdown, "download_folder", offline)
    assert main(["fetch", "latbench", "--data-home", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot list the Google Drive folder" in err
    assert "cannot resolve the host (offline?)" in err and "latbench import eagle PATH" in err
    with pytest.raises(ValueError, match="cannot be downloaded.*it is bundled"):
        fetch_dataset("xeon2c-tf-fp32", tmp_path)
