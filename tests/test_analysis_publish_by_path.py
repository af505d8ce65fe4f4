"""The publishing tests again, with folders walked by path instead of by descriptor: what
Windows does, where ``os.replace`` and ``os.stat`` take no ``dir_fd``. Moves, removals,
journals and the refusal to follow a symbolic link must hold there too."""

from __future__ import annotations

import pytest
import test_analysis_publish
from test_analysis_publish import *  # noqa: F403 - every test, collected again here

from latbench.analysis import publishing

TESTS = [name for name in dir(test_analysis_publish) if name.startswith("test_")]


@pytest.fixture(autouse=True)
def by_path(monkeypatch):
    monkeypatch.setattr(publishing, "_DIR_FD", False)
    monkeypatch.setenv("LATBENCH_TEST_PUBLISH_BY_PATH", "1")  # for the killed runs' scripts


def test_every_publishing_test_is_rerun_by_path():
    assert len(TESTS) >= 20 and all(name in globals() for name in TESTS)


def test_by_path_moves_really_take_the_by_path_route(tmp_path, monkeypatch):
    calls = []
    real = publishing._real_folder
    monkeypatch.setattr(
        publishing, "_real_folder", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    stage, out = tmp_path / "stage", tmp_path / "out"
    (stage / "sub").mkdir(parents=True)
    (stage / "sub" / "a.csv").write_text("a\n")
    out.mkdir()
    publishing.finish_moves(stage, out, ["sub/a.csv"], [])
    assert (out / "sub" / "a.csv").read_text() == "a\n" and calls


def test_a_windows_junction_on_the_way_counts_as_a_link(tmp_path, monkeypatch):
    """A junction lstat()s as a folder on Windows; its reparse tag gives it away. Here a
    real folder plays the junction, its lstat result given that tag."""
    import os
    import stat
    import types

    stage, out = tmp_path / "stage", tmp_path / "out"
    (stage / "figs").mkdir(parents=True)
    (stage / "figs" / "a.png").write_text("a\n")
    elsewhere = tmp_path / "elsewhere"
    (out / "figs").mkdir(parents=True)  # the "junction", as if it led elsewhere
    elsewhere.mkdir()
    real = os.lstat

    def lstat(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(out / "figs"):
            return types.SimpleNamespace(
                st_mode=stat.S_IFDIR | 0o755, st_reparse_tag=0xA0000003, st_uid=st.st_uid
            )
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(OSError, match="symbolic link"):
        publishing._real_folder(out, ["figs"])
    assert publishing._move(stage, out, "figs/a.png") == "skipped"
    assert (stage / "figs" / "a.png").exists() and not (out / "figs" / "a.png").exists()


def test_a_deduplicated_or_placeholder_file_is_moved_as_any_file(tmp_path, monkeypatch):
    """Other reparse points (Windows deduplication, cloud placeholders) lead nowhere else."""
    import os
    import types

    stage, out = tmp_path / "stage", tmp_path / "out"
    stage.mkdir()
    out.mkdir()
    (stage / "a.csv").write_text("a\n")
    real = os.lstat

    def lstat(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(stage / "a.csv"):
            return types.SimpleNamespace(st_mode=st.st_mode, st_reparse_tag=0x80000013)
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    assert publishing._move(stage, out, "a.csv") == "moved"
    assert (out / "a.csv").read_text() == "a\n"
