"""The bounded ``.npz`` reader: numpy's arrays, read in one pass over the archive."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from latbench.predictors.npzfile import NpzError, read_npz


def test_read_npz_gives_what_numpy_loads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "c": rng.normal(size=(7, 3)),
        "f": np.asfortranarray(rng.normal(size=(4, 5)).astype(np.float32)),
        "big": np.arange(6, dtype=">i4").reshape(2, 3),
        "meta": np.array('{"format": "x"}'),
        "empty": np.zeros((0, 4)),
        "flags": rng.normal(size=9) > 0,
        "words": np.array(["a", "bcd", ""]),
    }
    path = tmp_path / "a.npz"
    np.savez_compressed(path, **arrays)
    got = read_npz(path)
    with np.load(path, allow_pickle=False) as npz:
        want = {k: npz[k] for k in npz.files}
    assert sorted(got) == sorted(want)
    for k, a in want.items():
        assert got[k].dtype == a.dtype and got[k].shape == a.shape, k
        assert np.array_equal(got[k], a), k
        assert got[k].flags.writeable and got[k].flags.f_contiguous == a.flags.f_contiguous


def test_member_check_sees_every_member_before_its_data(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros(3), y=np.ones((2, 2)))
    seen = []

    def check(info, shape, dtype):
        seen.append((info.filename, shape, str(dtype)))
        return "y is refused" if info.filename == "y.npy" else None

    with pytest.raises(NpzError, match=r"a\.npz: not a LatBench thing: y is refused"):
        read_npz(path, "thing", check)
    assert seen == [("x.npy", (3,), "float64"), ("y.npy", (2, 2), "float64")]
    with pytest.raises(NpzError, match="2 members; it has at most 1"):
        read_npz(path, "thing", max_members=1)


def test_truncated_member_data_is_one_error(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros(1000))
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("x.npy")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", raw[:-8])  # the CRC matches these bytes: numpy's check is the size
    with pytest.raises(NpzError, match="truncated or corrupt"):
        read_npz(path)


def test_member_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path):
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (10**7,)}
    )
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", head.getvalue() + bytes(64))  # 80 MB declared, 64 bytes held
    with pytest.raises(NpzError, match="'x.npy' is shorter than its shape"):
        read_npz(path)


def test_a_prior_load_opens_the_archive_and_each_member_once(monkeypatch):
    from latbench.predictors.fewshot.prior import default_prior_path, load_prior

    with zipfile.ZipFile(default_prior_path()) as zf:
        names = sorted(zf.namelist())
    opened, members = [], []
    real_init, real_open = zipfile.ZipFile.__init__, zipfile.ZipFile.open

    def init(self, *args, **kwargs):
        opened.append(args[0])
        real_init(self, *args, **kwargs)

    def open_member(self, name, *args, **kwargs):
        members.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", init)
    monkeypatch.setattr(zipfile.ZipFile, "open", open_member)
    load_prior()
    assert len(opened) == 1  # before: three times (bounds, headers, numpy)
    assert sorted(members) == names  # each header and its data read in one pass


def test_a_damaged_deflate_stream_is_an_npz_error(tmp_path):
    # zlib's own error is neither OSError nor ValueError: it once escaped as a traceback
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x=np.random.default_rng(0).normal(size=4000))
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    raw = bytearray(path.read_bytes())
    h = info.header_offset  # the local header's name and extra lengths, not the central ones
    start = h + 30 + int.from_bytes(raw[h + 26 : h + 28], "little")
    start += int.from_bytes(raw[h + 28 : h + 30], "little")
    for k in range(16):  # scramble the stream's first block header and some data
        raw[start + k] ^= 0xA5
    path.write_bytes(bytes(raw))
    with pytest.raises(NpzError, match="truncated or corrupt"):
        read_npz(path, what="few-shot prior")
