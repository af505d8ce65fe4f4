"""latbench-analysis writes its results all or nothing: a run that fails or is
interrupted midway leaves the output folder's previous results whole (no mix of new
and old files, no staging folder), one line on stderr; a run that succeeds replaces
every result and keeps the files it does not write.

Every run is one bundled dataset, the FLOPs predictor and one repeat, no NAS
(seconds).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from latbench.analysis import report
from latbench.analysis.cli import main

DEVICE = "xeon2c-tf-fp32"
FAST = ("--devices", DEVICE, "--predictors", "flops", "--repeats", "1", "--quiet")
NOTES = "notes.txt"  # a user's own file in the output folder


def _all(home: Path, out: Path, *args: str) -> int:
    return main(["all", "--data-home", str(home), "--out", str(out), *FAST, *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry of ``folder`` (hidden ones too) by name, with its bytes (``None``: a folder)."""
    return {p.name: None if p.is_dir() else p.read_bytes() for p in sorted(folder.iterdir())}


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A data home without the NAS accuracy table (so `all` skips the NAS result)."""
    return tmp_path_factory.mktemp("staged-home")


@pytest.fixture(scope="module")
def previous(home, tmp_path_factory) -> Path:
    """A complete earlier `all` run's results, and a user's notes beside them."""
    out = tmp_path_factory.mktemp("staged-previous") / "results"
    assert _all(home, out) == 0
    (out / NOTES).write_text("my notes\n")
    return out


@pytest.fixture
def results(previous, tmp_path) -> Path:
    """An earlier run's result files, each holding ``old <name>`` (a rerun's results are
    byte-identical to the earlier ones, so they would not tell which run wrote a file)."""
    out = tmp_path / "results"
    shutil.copytree(previous, out)
    for p in out.iterdir():
        if p.name not in (NOTES, ".latbench-results.json"):  # the record of what is ours
            p.write_text(f"old {p.name}\n")
    return out


def _is_new(out: Path) -> bool:
    """Every file of ``out`` is this run's, except the notes, which are kept."""
    return all(
        (p.read_text() == "my notes\n") if p.name == NOTES else not _old(p) for p in out.iterdir()
    )


def _old(p: Path) -> bool:
    return p.read_bytes() == f"old {p.name}\n".encode()


def _disk_full_at(monkeypatch, name: str) -> list[str]:
    """Make the figure ``name`` fail with ENOSPC (a cut file left where it was going)."""
    real = report.save_png
    saved: list[str] = []

    def save_png(fig, path):
        if Path(path).name == name:
            Path(path).write_bytes(b"\x89PNG cut")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(Path(path).name)
        return real(fig, path)

    monkeypatch.setattr(report, "save_png", save_png)
    return saved


def test_a_full_disk_midway_keeps_every_previous_result(home, results, monkeypatch, capsys):
    before = _snapshot(results)
    saved = _disk_full_at(monkeypatch, "pairs.png")  # after the correlation and proxies files
    rc = _all(home, results)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and err.startswith("latbench-analysis: error: ")
    assert f"{results / 'pairs.png'}: No space left on device" in err
    assert "correlation_pearson.png" in saved and "proxies.png" in saved  # made, not moved in
    assert _snapshot(results) == before  # same names (no staging folder), same bytes
    monkeypatch.undo()  # room on the disk again: the rerun replaces every result
    assert _all(home, results) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in results.iterdir()) == sorted(before)
    assert _is_new(results)


def test_an_interrupt_midway_keeps_every_previous_result(home, results, monkeypatch, capsys):
    before = _snapshot(results)

    def interrupted(*_a, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_predictors", interrupted)  # the last result
    rc = _all(home, results)
    assert rc == 130 and _one_line(capsys.readouterr().err) == "latbench-analysis: interrupted\n"
    assert _snapshot(results) == before


def test_a_failing_first_run_leaves_no_output_folder(home, tmp_path, monkeypatch, capsys):
    _disk_full_at(monkeypatch, "pairs.png")
    out = tmp_path / "new" / "results"
    rc = _all(home, out)
    assert rc == 2 and "No space left on device" in _one_line(capsys.readouterr().err)
    assert not out.exists() and list((tmp_path / "new").iterdir()) == []


def test_a_single_result_is_replaced_whole_or_not_at_all(home, results, monkeypatch, capsys):
    before = _snapshot(results)
    _disk_full_at(monkeypatch, "proxies.png")  # proxies.csv is made first
    rc = main(["proxies", "--data-home", str(home), "--out", str(results), "--devices", DEVICE,
               "--quiet"])  # fmt: skip
    err = _one_line(capsys.readouterr().err)
    # named where it was going, not in the staging folder the user never sees
    assert rc == 2 and f"{results / 'proxies.png'}: No space left on device" in err
    assert _snapshot(results) == before


def test_staged_publishes_nested_files_or_nothing(tmp_path):
    from latbench.analysis.staging import staged

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("old a\n")
    with staged(out) as stage:
        assert stage.parent == out and stage.name.startswith(".")
        (stage / "a.csv").write_text("new a\n")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.csv").write_text("new b\n")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "sub"]
    assert (out / "a.csv").read_text() == "new a\n"
    assert (out / "sub" / "b.csv").read_text() == "new b\n"
    # a folder where a result goes stops the set before any file is moved
    (out / "c.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="in the way"), staged(out) as stage:
        (stage / "a.csv").write_text("newer a\n")
        (stage / "c.csv").write_text("c\n")
    assert (out / "a.csv").read_text() == "new a\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "c.csv", "sub"]


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (PIDs are not reused this fast)


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path, home, capsys):
    import json
    import os
    import socket

    from latbench.analysis.staging import OWNER_FILE

    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()

    def folder(name: str, owner: object) -> Path:
        d = out / name
        d.mkdir()
        (d / "correlation_spearman.csv").write_text("half-written\n")
        if owner is not None:
            (d / OWNER_FILE).write_text(json.dumps(owner))
        return d

    killed = folder(".latbench-partial-killed1", {"host": host, "pid": _dead_pid()})
    killed_nas = folder(".nas-partial-killed2", {"host": host, "pid": _dead_pid()})
    # a live process's (this process's own, not in use, counts as abandoned)
    live = folder(".latbench-partial-live", {"host": host, "pid": os.getppid()})
    elsewhere = folder(".latbench-partial-other", {"host": host + "-x", "pid": _dead_pid()})
    ownerless = folder(".latbench-partial-old", None)
    garbled = folder(".latbench-partial-bad", "not an owner")
    users = folder(".my-partial-killed", {"host": host, "pid": _dead_pid()})
    assert _all(home, out) == 0
    err = capsys.readouterr().err
    assert "removed 2 unfinished result folder(s) of killed runs" in err, err
    lines = [ln for ln in err.splitlines() if "unfinished result folder" in ln]
    assert len(lines) == 1 and "Traceback" not in err and "warnings.warn" not in err, err
    assert not killed.exists() and not killed_nas.exists()
    for kept in (live, elsewhere, ownerless, garbled, users):
        assert (kept / "correlation_spearman.csv").read_text() == "half-written\n"
    # the owner file stays in the staging folder: never published as a result
    assert not (out / OWNER_FILE).exists()
    assert (out / "README.md").is_file()


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_staging_folder(home, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    out.mkdir()
    (out / NOTES).write_text("my notes\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "latbench.analysis.cli", "predictors", "--data-home", str(home),
         "--out", str(out), "--devices", DEVICE, "--predictors", "gcn", "--repeats", "1",
         "--no-cache", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".latbench-partial-") for p in out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "latbench-analysis: stopped by SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [NOTES]  # no staging folder, notes kept


def test_a_result_with_nothing_to_write_keeps_the_earlier_one(home, tmp_path, capsys):
    out = tmp_path / "out"
    run = ["predictors", "--data-home", str(home), "--out", str(out), *FAST]
    assert main(run) == 0
    before = _snapshot(out)
    assert main([*run, "--train", "20000"]) == 2  # too many for every dataset
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "too few for 20000 training" in err and "earlier results" in err
    assert _snapshot(out) == before


def test_a_single_result_rerun_marks_the_all_readme_out_of_date(home, tmp_path):
    out = tmp_path / "out"
    assert _all(home, out) == 0
    body = (out / "README.md").read_text()
    for _ in range(2):  # one line per result rerun, the latest kept
        assert main(["predictors", "--data-home", str(home), "--out", str(out), *FAST]) == 0
    text = (out / "README.md").read_text()
    assert text.count("> **Out of date:** `latbench-analysis predictors` ran") == 1
    assert text.endswith(body)  # the README itself is kept below the line
    assert _all(home, out) == 0  # `all` rebuilds it, without the line
    assert "Out of date" not in (out / "README.md").read_text()


def test_a_predictor_named_twice_is_run_once(home, tmp_path):
    import pandas as pd

    out = tmp_path / "out"
    args = ["predictors", "--data-home", str(home), "--out", str(out), "--devices", DEVICE]
    assert main([*args, "--predictors", "flops,flops", "--repeats", "1", "--quiet"]) == 0
    rows = pd.read_csv(out / "predictors.csv")
    assert len(rows) == len(rows.drop_duplicates(["dataset", "predictor", "repeat"])) == 1
