"""latbench-analysis nas/all against mistaken and hostile inputs: one line, exit 2, no
traceback, and an output folder's earlier results left whole.

Everything runs on the bundled datasets and a synthetic accuracy table, so no
downloaded data is needed: ``xeon2c-tf-fp32`` (1,500 measured models, aging
evolution skipped: seconds) and ``xeon2c-tflite-fp32`` (all measured, where aging
evolution and its latency limit apply).
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from synthetic_accuracy import write_synthetic_accuracy

import latbench
from latbench.accuracy_table import accuracy_path
from latbench.analysis.cli import main

PARTIAL = "xeon2c-tf-fp32"
FULL = "xeon2c-tflite-fp32"
FAST = ("--predictors", "flops", "--ae-steps", "64", "--ae-seeds", "1", "--quiet")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data home whose only content is a synthetic accuracy table."""
    home = tmp_path_factory.mktemp("hostile-home")
    write_synthetic_accuracy(home)
    return home


@pytest.fixture
def old_results(tmp_path):
    """An output folder holding a previous run's results, which a failing run must keep."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("nas.md", "oracle_nas.csv", "pareto.csv", "README.md"):
        (out / name).write_text(f"old {name}\n")
    return out


def _unchanged(out) -> bool:
    names = sorted(p.name for p in out.iterdir())
    same = all((out / n).read_text() == f"old {n}\n" for n in names)
    return same and names == ["README.md", "nas.md", "oracle_nas.csv", "pareto.csv"]


def _nas(home, out, *args: str, device: str = PARTIAL) -> int:
    return main(["nas", "--devices", device, "--data-home", str(home), "--out", str(out),
                 *FAST, *args])  # fmt: skip


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _prior_copy(tmp_path, damage: str):
    from latbench.predictors.fewshot.prior import default_prior_path

    good = default_prior_path().read_bytes()
    path = tmp_path / f"{damage}.npz"
    if damage == "text":
        path.write_text("not a prior\n")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "flipped":
        b = bytearray(good)
        for i in range(1000, len(b) - 1000, 4099):
            b[i] ^= 0xFF
        path.write_bytes(bytes(b))
    elif damage == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize("damage", ["text", "truncated", "flipped", "folder"])
def test_a_damaged_prior_is_refused_before_any_write_even_unused(
    home, old_results, tmp_path, capsys, damage
):
    # flops only: the prior is unused, yet the report would describe it after the CSVs
    rc = _nas(home, old_results, "--prior", str(_prior_copy(tmp_path, damage)))
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and f"{damage}.npz" in err
    assert _unchanged(old_results)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "--seed: must be at least 0"),
        (["--ae-steps", str(10**12)], "--ae-steps: must be at most 100000"),
        (["--ae-seeds", str(10**12)], "--ae-seeds: must be at most 1000"),
        (["--prior", ""], "--prior: expected a file, got an empty string"),
        (["--out", ""], "--out: expected a folder, got an empty string"),
        (["--data-home", ""], "--data-home: expected a folder, got an empty string"),
    ],
)
def test_bad_values_are_usage_errors(
    home, old_results, tmp_path, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)  # were `--out ""` taken, it would write here, not in the checkout
    with pytest.raises(SystemExit) as e:
        _nas(home, old_results, *args)
    err = _one_line(capsys.readouterr().err)
    assert e.value.code == 2 and message in err
    assert _unchanged(old_results)


def test_a_negative_seed_is_refused_for_predictors_too(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predictors", "--devices", PARTIAL, "--out", str(tmp_path / "o"), "--seed", "-3"])
    assert e.value.code == 2 and "--seed: must be at least 0, got -3" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_output_folder_under_a_file_is_one_line(home, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    rc = _nas(home, blocker / "sub")
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "cannot create the folder for the output" in err
    assert blocker.read_text() == "keep me"


def test_a_data_home_under_a_file_stops_all_before_any_result(old_results, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    # the predictor cache would be its first write, after the correlation results
    rc = main(["all", "--devices", PARTIAL, "--data-home", str(blocker / "home"), "--out",
               str(old_results), "--predictors", "flops", "--repeats", "1", "--quiet"])  # fmt: skip
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "cannot create the folder for the data home" in err
    assert _unchanged(old_results)


def test_a_folder_in_a_result_s_place_replaces_nothing(home, old_results, capsys):
    (old_results / "nas_summary.csv").mkdir()  # the run fails at its fourth file
    rc = _nas(home, old_results)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "nas_summary.csv: is in the way" in err
    (old_results / "nas_summary.csv").rmdir()
    assert _unchanged(old_results)  # no staging folder left behind either


def test_a_failing_write_is_one_line_and_keeps_the_old_results(
    home, old_results, capsys, monkeypatch
):
    import errno

    from latbench.analysis import nas_report

    real = nas_report.write_csv
    calls = []

    def full_disk(df, path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(df, path, **kw)

    monkeypatch.setattr(nas_report, "write_csv", full_disk)
    rc = _nas(home, old_results)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "No space left on device" in err
    assert _unchanged(old_results)


def test_a_fewshot_n_above_the_measured_graphs_is_refused_before_work(home, tmp_path, capsys):
    out = tmp_path / "o"
    rc = _nas(home, out, "--predictors", "fewshot", "--fewshot-n", "5000")
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "--fewshot-n 5000" in err and PARTIAL in err
    assert not out.exists() or not list(out.iterdir())


def test_a_limit_below_every_measured_model_is_refused(home, tmp_path, capsys):
    rc = _nas(home, tmp_path / "o", "--limit-ms", "1e-9", device=FULL)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "--limit-ms 1e-09: below every measured model" in err and FULL in err


def test_a_limit_an_estimate_cannot_meet_is_reported_not_a_crash(home, tmp_path, capsys):
    df = latbench.load(FULL)
    fastest = float(df.loc[df["status"] == "ok", "latency_ms"].min())
    # a few models measured under it, none the FLOPs fit believes are
    rc = _nas(home, tmp_path / "o", "--limit-ms", f"{fastest * 1.04:.6g}", device=FULL)
    cap = capsys.readouterr()
    assert rc == 0 and "Traceback" not in cap.err
    md = (tmp_path / "o" / "nas.md").read_text()
    assert "aging evolution with FLOPs fit on xeon2c-tflite-fp32 (no architecture" in md
    ev = pd.read_csv(tmp_path / "o" / "evolution.csv")
    assert set(ev["predictor"]) == {"measured"}


def test_a_corrupt_accuracy_table_stops_all_before_any_result(home, old_results, tmp_path, capsys):
    bad = tmp_path / "home"
    shutil.copytree(home, bad)
    table = accuracy_path(bad)
    b = bytearray(table.read_bytes())
    for i in range(1000, len(b) - 1000, 7919):
        b[i] ^= 0x5A
    table.write_bytes(bytes(b))
    rc = main(["all", "--devices", PARTIAL, "--data-home", str(bad), "--out", str(old_results),
               "--predictors", "flops", "--repeats", "1", "--quiet"])  # fmt: skip
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "accuracy table" in err
    assert _unchanged(old_results)  # not the correlation, proxies and predictor results


def test_nas_without_accuracy_creates_no_output_folder(tmp_path, capsys):
    out = tmp_path / "o"
    rc = _nas(tmp_path / "empty-home", out)
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "latbench fetch nb201-accuracy" in err and not out.exists()


def test_an_accuracy_alias_is_reported_by_its_name(home, tmp_path, capsys):
    rc = _nas(home, tmp_path / "o", "--accuracy", "CIFAR_10")
    capsys.readouterr()
    assert rc == 0
    assert (
        (tmp_path / "o" / "nas.md")
        .read_text()
        .startswith("# NAS with latency estimates (CIFAR-10)")
    )


def test_control_characters_in_arguments_stay_on_one_line(home, tmp_path, capsys):
    rc = _nas(home, tmp_path / "o", "--predictors", "flops,fl\nx\x1b[2J")
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "unknown predictor(s)" in err and "\x1b" not in err
    rc = _nas(home, tmp_path / "o", "--predictors", "fewshot", "--prior", "/no/such\nprior.npz")
    err = _one_line(capsys.readouterr().err)
    assert rc == 2 and "no such prior file" in err


def test_every_estimate_skipped_draws_no_empty_legend(home, tmp_path, capsys, recwarn):
    rc = _nas(home, tmp_path / "o", "--train", "100000")
    capsys.readouterr()
    assert rc == 0
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]
    assert "too few for 100000" in (tmp_path / "o" / "nas.md").read_text()
