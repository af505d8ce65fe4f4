"""``latbench fetch hwnasbench``: HW-NAS-Bench's pickle downloaded (here from a local HTTP
server standing in for GitHub) and imported with the regular importer. No SHA-256 of the
published file is pinned, so the first download's is printed, recorded and used to check
the kept copy; ``--sha256`` requires one."""

from __future__ import annotations

import hashlib
import pickle
import socket

import pandas as pd
import pytest
from http_folder import served
from test_hwnasbench import _layout

import latbench
from latbench.cli import main
from latbench.importers import import_datasets
from latbench.importers.fetch import download_dir, fetch_hwnasbench
from latbench.importers.hwnasbench import DEVICES, FILE_NAME, hwnasbench_key

KEYS = sorted(hwnasbench_key(d) for d in DEVICES)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A folder holding a HW-NAS-Bench-shaped pickle; (folder, its SHA-256)."""
    folder = tmp_path_factory.mktemp("hwnas-published")
    data = pickle.dumps(_layout()[0], protocol=4)
    (folder / FILE_NAME).write_bytes(data)
    return folder, hashlib.sha256(data).hexdigest()


@pytest.fixture
def closed_url():
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/{FILE_NAME}"


def _fetched_once(folder, home, key: str) -> str:
    """Fetch ``key`` from a served copy of ``folder`` into ``home``; the URL, now gone."""
    with served(folder) as base:
        fetch_hwnasbench(home, [key], url=base + FILE_NAME)
    return base + FILE_NAME


def _datasets(home) -> list[str]:
    return sorted(p.name.removesuffix(".parquet") for p in home.glob("hwnasbench-*.parquet"))


def test_fetch_imports_what_a_local_import_gives_and_records_the_digest(
    tmp_path, published, capsys
):
    folder, digest = published
    with served(folder) as base:
        assert main(["fetch", "hwnasbench", base + FILE_NAME, "--data-home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"this copy's is {digest}" in out
    assert _datasets(tmp_path) == KEYS
    import_datasets("hwnasbench", folder, tmp_path / "local")
    for key in KEYS:
        fetched = latbench.load(key, data_home=tmp_path)
        local = latbench.load(key, data_home=tmp_path / "local")
        pd.testing.assert_frame_equal(fetched, local)
        assert fetched.attrs["metadata"]["imported_from"]["sha256"] == digest
    kept = download_dir("hwnasbench", tmp_path)
    assert (kept / f"{FILE_NAME}.sha256").read_text().split() == [digest, base + FILE_NAME]


def test_a_kept_copy_is_reused_offline_and_a_damaged_one_downloaded_again(
    tmp_path, published, closed_url
):
    folder, digest = published
    url = _fetched_once(folder, tmp_path, "hwnasbench-raspi4")
    # the server is gone: the kept copy of that URL still has its recorded digest
    reports, got = fetch_hwnasbench(tmp_path, ["hwnasbench-fpga"], url=url)
    assert got == digest and [r.key for r in reports] == ["hwnasbench-fpga"]
    _, got = fetch_hwnasbench(tmp_path, ["hwnasbench-eyeriss"], url=f" {url}\n")  # as pasted
    assert got == digest
    with pytest.raises(OSError, match="refused the connection"):  # another URL: not reused
        fetch_hwnasbench(tmp_path, ["hwnasbench-pixel3"], url=closed_url)
    kept = download_dir("hwnasbench", tmp_path) / FILE_NAME
    damaged = bytearray(kept.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    kept.write_bytes(bytes(damaged))
    assert main(["fetch", "hwnasbench", url, "--data-home", str(tmp_path)]) == 2
    with served(folder) as base:  # online again: the damaged copy is replaced
        _, got = fetch_hwnasbench(tmp_path, overwrite=True, url=base + FILE_NAME)
    assert got == digest and hashlib.sha256(kept.read_bytes()).hexdigest() == digest


def test_a_required_checksum_that_differs_imports_nothing(tmp_path, published, capsys):
    folder, digest = published
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with served(folder) as base:
        args = ["fetch", "hwnasbench", base + FILE_NAME, "--sha256", wrong]
        assert main([*args, "--data-home", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "does not match" in err and "Traceback" not in err
        assert _datasets(tmp_path) == []
        assert not (download_dir("hwnasbench", tmp_path) / FILE_NAME).exists()
        args[-1] = digest.upper()
        assert main([*args, "--data-home", str(tmp_path)]) == 0
    assert "no SHA-256" not in capsys.readouterr().out  # a required one was checked
    assert _datasets(tmp_path) == KEYS


def test_offline_fetch_is_one_line_naming_the_manual_route(tmp_path, closed_url, capsys):
    assert main(["fetch", "hwnasbench", closed_url, "--data-home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "refused the connection" in err and "latbench import hwnasbench PATH" in err
    assert _datasets(tmp_path) == []


def test_load_download_true_fetches_a_missing_hwnasbench_dataset(tmp_path, published, monkeypatch):
    from latbench.importers import fetch

    folder, _ = published
    with served(folder) as base:
        monkeypatch.setattr(fetch, "HWNASBENCH_URL", base + FILE_NAME)
        df = latbench.load("hwnasbench-edgetpu", data_home=tmp_path, download=True)
    assert len(df) == 15625 and _datasets(tmp_path) == ["hwnasbench-edgetpu"]


@pytest.mark.parametrize(
    "extra",
    [["--name", "x.pickle"], ["--base-url", "http://127.0.0.1/"], ["--sha256", "abc"]],
)
def test_options_that_do_not_apply_are_refused_in_one_line(tmp_path, extra, capsys):
    assert main(["fetch", "hwnasbench", *extra, "--data-home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_download_the_importer_refuses_is_not_kept(tmp_path, published, capsys):
    """A wrong mirror's file, once refused, must not be what every later fetch reuses."""
    folder, digest = published
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / FILE_NAME).write_bytes(b"<html>not the file</html>\n")
    with served(junk) as base:
        assert main(["fetch", "hwnasbench", base + FILE_NAME, "--data-home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"downloaded from {base + FILE_NAME}; not kept" in err
    kept = download_dir("hwnasbench", tmp_path)
    assert not (kept / FILE_NAME).exists() and not (kept / f"{FILE_NAME}.sha256").exists()
    with served(folder) as base:
        _, got = fetch_hwnasbench(tmp_path, url=base + FILE_NAME)
    assert got == digest and _datasets(tmp_path) == KEYS


def test_a_wrong_required_checksum_offline_keeps_the_good_copy_usable(
    tmp_path, published, closed_url
):
    folder, digest = published
    url = _fetched_once(folder, tmp_path, "hwnasbench-fpga")
    kept = download_dir("hwnasbench", tmp_path)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    home = ["--data-home", str(tmp_path)]
    assert main(["fetch", "hwnasbench", url, "--sha256", wrong, *home]) == 2
    assert (kept / f"{FILE_NAME}.sha256").read_text().split() == [digest, url]  # record kept
    assert main(["fetch", "hwnasbench", url, "--only", "hwnasbench-pixel3", *home]) == 0
    (kept / f"{FILE_NAME}.sha256").unlink()  # no record, but the digest the user requires
    only = ["--only", "hwnasbench-eyeriss", "--sha256", digest]
    assert main(["fetch", "hwnasbench", closed_url, *only, *home]) == 0


def test_an_unknown_key_is_refused_before_any_download(tmp_path, closed_url, capsys):
    args = ["fetch", "hwnasbench", closed_url, "--only", "hwnasbench-bogus"]
    assert main([*args, "--data-home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a HW-NAS-Bench dataset" in err and "refused the connection" not in err
    assert not download_dir("hwnasbench", tmp_path).exists()
