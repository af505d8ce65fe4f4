"""Hostile and mistaken input to the few-shot commands and to predicted files.

Each refusal must be one line on stderr, exit status 2, no traceback, come before any
adapting or fitting, and leave an existing output file as it was. The data are the
three bundled ``xeon2c-*`` datasets, so nothing here needs an import.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import latbench
from latbench.dataset import METADATA_KEY, DatasetError, atomic_path
from latbench.integrity import write_verified
from latbench.predicted import predicted_path, read_predicted, write_predicted
from latbench.predictors import PredictorError
from latbench.predictors.cli import main
from latbench.space import N_ARCHS

TRAIN = ["xeon2c-onnxruntime-fp32", "xeon2c-tflite-fp32"]
TARGET = "xeon2c-tf-fp32"


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory):
    from latbench.predictors.fewshot import pretrain, source_matrix

    path = tmp_path_factory.mktemp("prior") / "p.npz"
    return pretrain(source_matrix(TRAIN), rank=2).save(path)


def _run(args: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    return rc, capsys.readouterr().err


def _one_line_refusal(rc: int, err: str, needle: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def test_the_method_names_are_the_evaluators():
    from latbench.predictors.fewshot.commands import METHOD_CHOICES
    from latbench.predictors.fewshot.evaluate import METHODS

    assert METHOD_CHOICES == METHODS


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate-adapt", "--n", "5,10,5"], "argument --n: 5 listed twice"),
        (["evaluate-adapt", "--n", "1" + "0" * 25], "argument --n: counts must be at most 15625"),
        (["evaluate-adapt", "--gcn-n", "99999"], "argument --gcn-n: counts must be at most"),
        (["evaluate-adapt", "--methods", ""], "expected a comma list of methods"),
        (["evaluate-adapt", "--methods", "flops,"], "expected a comma list of methods"),
        (["evaluate-adapt", "--methods", "flops,flops"], "flops listed twice"),
        (["evaluate-adapt", "--methods", "flops,magic"], "unknown method(s) magic"),
        (["pretrain", "--rank", "0", "-o", "OUT"], "argument --rank: must be at least 1"),
        (["pretrain", "--rank", "-3", "-o", "OUT"], "argument --rank: must be at least 1"),
    ],
)
def test_bad_option_values_are_usage_errors(args, needle, tmp_path, capsys):
    out = tmp_path / "p.npz"  # never the working folder, should a value slip through
    _one_line_refusal(*_run([str(out) if a == "OUT" else a for a in args], capsys), needle)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prior", "P", "--targets", TARGET, "--n", "15600"], "fewer than N = 15600"),
        (["--prior", "P", "--targets", f"{TARGET},nope-key"], "not available: nope-key"),
        (["--prior", "P", "--targets", "nothing-*"], "matches no available dataset"),
        (["--prior", "P", "--targets", TRAIN[0]], "is one of the prior's sources"),
        (["--prior", "P", "--sources", "xeon2c-*"], "--sources picks"),
        (["--protocol", "shipped", "--encoder"], "--prior uses one as is"),
        (["--prior", "P", "--methods", "adapter,gcn", "--n", "5"], "--gcn-n 10 is not among"),
        (
            ["--protocol", "siblings", "--targets", TARGET, "--sources", f"{TARGET},{TRAIN[1]}"],
            f"target {TARGET} has 0 source dataset(s)",
        ),  # fmt: skip
        (["--protocol", "help", "--targets", TARGET], "matches none"),
        (["--prior", "DIR"], "is a folder"),
    ],
)
def test_evaluate_adapt_refuses_before_adapting(
    args, needle, prior_file, tmp_path, capsys, monkeypatch
):
    import latbench.predictors.fewshot.evaluate as evaluate

    def never(*a, **k):
        raise AssertionError("adapting started before the request was checked")

    monkeypatch.setattr(evaluate, "evaluate_adapt", never)
    out = tmp_path / "res.csv"
    out.write_text("kept")
    swap = {"P": str(prior_file), "DIR": str(tmp_path)}
    args = [swap.get(a, a) for a in args]
    rc, err = _run(["evaluate-adapt", "--repeats", "1", *args, "-o", str(out)], capsys)
    _one_line_refusal(rc, err, needle)
    assert out.read_text() == "kept"


def test_a_constant_prediction_scores_nan_without_a_warning():
    from latbench.predictors.fewshot.evaluate import _spearman

    rank_true = np.arange(5.0) - 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0/0 warning would reach the user's stderr
        assert np.isnan(_spearman(rank_true, np.ones(5)))
        assert _spearman(rank_true, np.arange(5.0)) == pytest.approx(1.0)


def test_help_protocol_draws_only_from_the_given_sources():
    from latbench.predictors.fewshot.evaluate import HELP_META_TRAIN, plan_targets

    cols = [*HELP_META_TRAIN, "help-pixel2", "other-a", "other-b"]
    m = pd.DataFrame(np.ones((N_ARCHS, len(cols))), columns=cols)
    # before, HELP's meta-train sets were used even when --sources left them out
    with pytest.raises(PredictorError, match="the sources lack help-1080ti-1"):
        plan_targets(m, ["help-pixel2"], protocol="help", sources=["other-a", "other-b"])
    plan = plan_targets(m, ["help-pixel2"], protocol="help", sources=list(HELP_META_TRAIN))
    assert [(t, s) for t, s, _ in plan] == [("help-pixel2", list(HELP_META_TRAIN))]
    # a target without HELP's meta-test devices needs no meta-train sets at all
    assert plan_targets(m, [], protocol="help", sources=["other-a", "other-b"]) == []


def test_pretrain_checks_its_output_before_fitting(tmp_path, capsys, monkeypatch):
    import latbench.predictors.fewshot as fewshot

    def never(*a, **k):
        raise AssertionError("fitting started before -o was checked")

    monkeypatch.setattr(fewshot, "pretrain", never)
    rc, err = _run(["pretrain", "--sources", "xeon2c-*", "-o", str(tmp_path)], capsys)
    _one_line_refusal(rc, err, "is a folder")
    (tmp_path / "file").write_text("kept")
    rc, err = _run(["pretrain", "--sources", "xeon2c-*", "-o", str(tmp_path / "file" / "p.npz")],
                   capsys)  # fmt: skip
    _one_line_refusal(rc, err, "p.npz")
    assert (tmp_path / "file").read_text() == "kept"


def test_pretrain_refuses_an_unavailable_plain_key_and_keeps_the_old_prior(
    prior_file, tmp_path, capsys
):
    out = tmp_path / "prior.npz"
    out.write_bytes(prior_file.read_bytes())
    rc, err = _run(["pretrain", "--sources", "xeon2c-*,nope-key", "-o", str(out)], capsys)
    _one_line_refusal(rc, err, "--sources names dataset(s) not available: nope-key")
    assert out.read_bytes() == prior_file.read_bytes()


def _frame() -> pd.DataFrame:
    x = np.linspace(0.4, 2.0, N_ARCHS)
    valid = np.ones(N_ARCHS, bool)
    valid[0] = False
    return pd.DataFrame({"arch_id": np.arange(N_ARCHS, dtype=np.int32), "valid": valid,
                         "latency_pred_ms": x, "latency_lo_ms": 0.9 * x,
                         "latency_hi_ms": 1.1 * x, "measured": np.zeros(N_ARCHS, bool)})  # fmt: skip


def test_a_prediction_filed_as_a_measured_dataset_is_one_line(prior_file, tmp_path, capsys):
    home = tmp_path / "home"
    # a catalog key, so the data home lists the misplaced file as available
    write_predicted(_frame(), home / "jetson-nano-fp16.parquet", {"adapter_version": "t"})
    out = tmp_path / "p.npz"
    out.write_bytes(prior_file.read_bytes())
    args = ["pretrain", "--data-home", str(home), "--sources", f"{TARGET},jetson-nano-fp16"]
    rc, err = _run([*args, "-o", str(out)], capsys)
    _one_line_refusal(rc, err, "jetson-nano-fp16.parquet")
    assert out.read_bytes() == prior_file.read_bytes()
    rc, err = _run(["evaluate-adapt", "--data-home", str(home), "--targets", "jetson-nano-fp16",
                    "--n", "5", "--repeats", "1", "--prior", str(prior_file)], capsys)  # fmt: skip
    _one_line_refusal(rc, err, "jetson-nano-fp16.parquet")


def test_flipped_bytes_in_a_prediction_are_one_line_errors(tmp_path):
    path = write_predicted(_frame(), predicted_path(tmp_path, "box"), {"adapter_version": "t"})
    good = path.read_bytes()
    footer_start = len(good) - 8 - int.from_bytes(good[-8:-4], "little")
    # the first page header (thrift errors span lines) and the column names of the
    # footer's schema (a flipped name byte is not UTF-8)
    spots = list(range(4, 64))
    for name in (b"arch_id", b"valid", b"latency_pred_ms", b"measured"):
        spots.append(good.index(name, footer_start))
    bad = tmp_path / "bad.predicted.parquet"
    refused = 0
    for i in spots:
        raw = bytearray(good)
        raw[i] ^= 0xFF
        bad.write_bytes(bytes(raw))
        try:
            read_predicted(bad)
        except DatasetError as exc:
            assert "\n" not in str(exc), (i, str(exc))
            refused += 1
    assert refused > len(spots) // 2


def _write_raw(frame: pd.DataFrame, path, meta_json: str) -> None:
    """A prediction with whatever rows and metadata, its digests recomputed."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({METADATA_KEY: meta_json})
    with atomic_path(path) as tmp:
        write_verified(table, tmp)


_KIND = {"kind": "latbench-predicted"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda f: f.iloc[:10], "arch_id order"),
        (lambda f: f.assign(arch_id=f["arch_id"][::-1].to_numpy()), "arch_id order"),
        (lambda f: f.assign(valid=f["valid"].astype(int)), "column valid is int64, not bool"),
        (lambda f: f.assign(latency_pred_ms=f["latency_pred_ms"].astype(str)), "not numbers"),
        (lambda f: f.assign(latency_pred_ms=-f["latency_pred_ms"]), "no positive, finite"),
        (lambda f: f.assign(latency_hi_ms=0.5 * f["latency_pred_ms"]), "inside its band"),
    ],
)
def test_a_prediction_with_unsound_rows_is_refused(change, needle, tmp_path):
    path = predicted_path(tmp_path, "box")
    _write_raw(change(_frame()), path, json.dumps(_KIND))
    with pytest.raises(DatasetError, match=needle) as exc:
        latbench.load_predicted("box", data_home=tmp_path)
    assert "\n" not in str(exc.value)


def test_deeply_nested_prediction_metadata_is_refused(tmp_path):
    path = predicted_path(tmp_path, "box")
    deep = json.dumps(_KIND)[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    _write_raw(_frame(), path, deep)
    with pytest.raises(DatasetError, match="no LatBench prediction metadata"):
        read_predicted(path)
    _write_raw(_frame(), path, json.dumps(_KIND))  # the same rows, sane metadata: loads
    assert len(read_predicted(path)) == N_ARCHS
