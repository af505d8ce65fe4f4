"""Issue 16: the README's first command, core commands without extras, quiet CLIs, progress."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_SAMPLE = "xeon2c-tf-fp32"  # 1,500 architectures: quick to load and fit
# A TensorFlow/absl C++ log line ("I0000 00:00:..." / "W1202 ...") or its Python twins.
TF_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d|WARNING:absl|WARNING:tensorflow|.*cpu_feature_guard|"
    r".*oneDNN custom operations|WARNING: All log messages before absl)",
    re.M,
)


def _readme_command_module():
    spec = importlib.util.spec_from_file_location("readme_command", ROOT / ".ci/readme_command.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _blocked(modules: set[str], body: str) -> str:
    """Python source that makes ``modules`` unimportable, then runs ``body``."""
    return textwrap.dedent(f"""
        import importlib.abc, sys
        class _Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {sorted(modules)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, _Block())
        for m in list(sys.modules):
            if m.split(".")[0] in {sorted(modules)!r}:
                del sys.modules[m]
    """) + textwrap.dedent(body)


def _python(source: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=600,
    )  # fmt: skip


# -- the README's first command and .ci/run ------------------------------------------------


def test_readme_first_command_is_what_ci_runs():
    mod = _readme_command_module()
    cmd = mod.first_command((ROOT / "README.md").read_text())
    assert cmd.startswith("pip install") and "latbench info" in cmd
    key = mod.dataset_key(cmd)
    assert cmd.rstrip().endswith(f"latbench info {key}")  # the dataset it writes is checked
    ci = (ROOT / ".ci/run").read_text()
    assert ".ci/first_command.sh" in ci
    assert 'pip install -e ".[dev]" && python -m pytest -n 2' in ci
    assert 'pip install -e ".[dev]" && python -m pytest -n 2' in (ROOT / "README.md").read_text()


def test_readme_command_extraction_rules():
    mod = _readme_command_module()
    text = "# T\n\n```python\nx = 1\n```\n\n```bash\n# comment\n\nrun --key k1 && x\nother\n```\n"
    assert mod.first_command(text) == "run --key k1 && x"
    assert mod.dataset_key("a --key=k2 b") == "k2"
    with pytest.raises(ValueError, match="no ```bash block"):
        mod.first_command("no code here")
    with pytest.raises(ValueError, match="names no dataset"):
        mod.dataset_key("pip install -e .")


@pytest.mark.slow
def test_first_command_script_fails_when_the_command_fails(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    for name in ("first_command.sh", "readme_command.py"):
        (repo / ".ci" / name).write_bytes((ROOT / ".ci" / name).read_bytes())
    (repo / "README.md").write_text(
        "```bash\npython -c 'import sys; sys.exit(3)' --key never-written\n```\n"
    )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "LATBENCH_HOME"}
    res = subprocess.run(["bash", str(repo / ".ci/first_command.sh"), str(repo)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res.returncode == 1
    assert "the README's first command exited 3" in res.stderr
    (repo / "README.md").write_text("```bash\necho no key\n```\n")
    res = subprocess.run(["bash", str(repo / ".ci/first_command.sh"), str(repo)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res.returncode == 1 and "names no dataset" in res.stderr


# -- core commands need only core dependencies; extras are named ---------------------------


def test_info_needs_no_scipy():
    import latbench
    from latbench.cli import spearman

    res = _python(_blocked({"scipy"}, f"""
        from latbench.cli import main
        sys.exit(main(["info", {BUNDLED_SAMPLE!r}]))
    """))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    ok = latbench.load(BUNDLED_SAMPLE).query("status == 'ok'")
    rho = spearman(ok["latency_ms"], ok["flops"].astype(float))
    scipy_stats = pytest.importorskip("scipy.stats")
    assert rho == pytest.approx(scipy_stats.spearmanr(ok["latency_ms"], ok["flops"]).statistic)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("vs flops"))
    assert f"spearman {rho:.3f}" in line


def test_a_missing_extra_is_named_in_one_line(tmp_path):
    res = _python(_blocked({"tensorflow", "keras"}, f"""
        from latbench.predictors.cli import main
        sys.exit(main(["evaluate", "-d", {BUNDLED_SAMPLE!r}, "-p", "gcn", "--train", "100",
                       "--val", "10", "--no-cache", "-q"]))
    """))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'latbench[analysis]'" in lines[0]
    assert "'tensorflow'" in lines[0] or "'keras'" in lines[0]

    res = _python(_blocked({"matplotlib"}, f"""
        from latbench.analysis.cli import main
        sys.exit(main(["correlation", "--bundled", "--out", {str(tmp_path)!r}]))
    """))  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "latbench-analysis: error: this needs the Python module 'matplotlib', which comes "
        "with the 'analysis' extra: pip install 'latbench[analysis]'"
    )


def test_missing_extra_message_for_each_kind():
    from latbench.extras import missing_extra

    msg = missing_extra(ModuleNotFoundError("x", name="onnxruntime"), "latbench-measure")
    assert msg.endswith("pip install 'latbench[harness]'")
    msg = missing_extra(ModuleNotFoundError("x", name="ray.util"), "latbench-measure")
    assert "'ray'" in msg and "latbench[fleet]" in msg
    msg = missing_extra(ModuleNotFoundError("x", name="pyarrow"), "latbench")
    assert "reinstall" in msg  # a core dependency has no extra


# -- TensorFlow silenced, no retracing -------------------------------------------------------


def test_tensorflow_import_is_silent_unless_verbose():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GRPC"))}
    # TensorFlow >= 2.20 logs through absl before InitializeLog, past TF_CPP_MIN_LOG_LEVEL
    # (the oneDNN banner on AVX-512 hosts), so the CLIs also filter fd 2. A planted absl
    # line stands in for hosts whose TensorFlow prints nothing of its own.
    body = """
        from latbench.quiet import filter_native_stderr, quiet_tensorflow
        quiet_tensorflow({verbose})
        filter_native_stderr({verbose})
        import logging, os, sys
        import tensorflow as tf
        quiet_tensorflow({verbose})
        os.write(2, b"I0000 00:00:1796191104.701990    2690 port.cc:153] planted info\\n")
        os.write(2, b"W1202 00:00:17961")  # a line split across writes
        os.write(2, b"91104.7    2690 cpu_feature_guard.cc:1] planted warning\\n")
        os.write(2, b"latbench: error: an error stays\\n")
        sys.stderr.write("step 1/2\\r")
        sys.stderr.flush()
        print(os.environ["TF_CPP_MIN_LOG_LEVEL"], tf.get_logger().getEffectiveLevel())
        sys.stderr.write("last words, no newline")
        sys.exit(3)
    """
    quiet = _python(textwrap.dedent(body.format(verbose=False)), env=env)
    assert quiet.returncode == 3, quiet.stderr
    assert not TF_LINE.search(quiet.stderr), quiet.stderr
    assert "planted" not in quiet.stderr
    # everything else reaches the real stderr, in order, partial lines and errors included
    assert quiet.stderr.endswith(
        "an error stays\nstep 1/2\nlast words, no newline"
    )  # \r read as \n
    assert quiet.stdout.split() == ["2", "40"]  # C++ errors only; Python logger at ERROR
    loud = _python(textwrap.dedent(body.format(verbose=True)), env=env)
    assert loud.returncode == 3 and loud.stdout.split()[0] == "0"
    assert int(loud.stdout.split()[1]) < 40
    assert "planted info" in loud.stderr and "planted warning" in loud.stderr


@pytest.mark.slow
def test_gcn_traces_once_for_many_predictors_and_sizes():
    import logging

    import numpy as np

    from latbench.predictors import GCNPredictor, split_rows, usable_rows
    from latbench.predictors.gcn import _RUNNERS, GCNConfig

    rows = usable_rows(BUNDLED_SAMPLE)
    ids, y = rows["arch_id"].to_numpy(), rows["latency_ms"].to_numpy()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        preds = []
        for seed, n_train in enumerate((60, 60, 90, 60, 120, 60, 75)):
            sp = split_rows(rows, n_train, 20, seed)
            p = GCNPredictor(hidden=24, layers=2, max_epochs=2, seed=seed)
            p.fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val], val_latency_ms=y[sp.val])
            preds.append(p.predict(ids[: 3 + seed * 400]))
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]
    cfg = GCNConfig(hidden=24, layers=2)
    runner = next(r for k, r in _RUNNERS.items() if k[:2] == (cfg.layers, cfg.hidden))
    assert runner.run_epoch.experimental_get_tracing_count() == 1
    assert runner.loss.experimental_get_tracing_count() == 1
    assert runner.predict.experimental_get_tracing_count() == 1
    # one shared network, yet every predictor keeps its own weights
    again = preds[0], GCNPredictor(hidden=24, layers=2, max_epochs=2, seed=0)
    sp = split_rows(rows, 60, 20, 0)
    again[1].fit(ids[sp.train], y[sp.train], val_archs=ids[sp.val], val_latency_ms=y[sp.val])
    assert np.array_equal(again[1].predict(ids[:3]), again[0])
    assert not np.array_equal(preds[1][:3], preds[0])


# -- progress ----------------------------------------------------------------------------


def test_progress_lines_with_eta_when_not_a_terminal(monkeypatch):
    from latbench import progress as P

    monkeypatch.delenv("LATBENCH_PROGRESS", raising=False)
    monkeypatch.setattr(P, "_LINE_EVERY_S", 0.0)  # a line per step, whatever the speed
    out = io.StringIO()
    with P.Progress(4, "gcn repeats", unit="repeat", stream=out) as bar:
        bar.update(0, note="gcn #0 training")
        for i in range(4):
            bar.update(note=f"#{i}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "gcn repeats: 0/4 repeat, next gcn #0 training"
    assert re.fullmatch(r"gcn repeats: 4/4 repeat, \d\d:\d\d elapsed, ETA 00:00 #3", lines[-1])
    assert all("ETA" in ln for ln in lines[1:])

    monkeypatch.setenv("LATBENCH_PROGRESS", "0")
    quiet = io.StringIO()
    with P.Progress(4, "x", stream=quiet) as bar:
        bar.update(4)
    assert quiet.getvalue() == ""


@pytest.mark.slow
def test_analysis_cli_shows_progress_and_no_tensorflow_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GRPC"))}
    env.pop("LATBENCH_PROGRESS", None)  # a user who turned progress off still runs this
    env["LATBENCH_HOME"] = str(tmp_path / "home")
    res = subprocess.run(
        [sys.executable, "-m", "latbench.analysis.cli", "predictors", "--devices",
         BUNDLED_SAMPLE, "--predictors", "flops,gcn", "--repeats", "3", "--train", "100",
         "--gcn-epochs", "2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not TF_LINE.search(res.stderr), res.stderr
    assert "retracing" not in res.stderr
    assert re.search(rf"{BUNDLED_SAMPLE}: gcn: 3/3 repeat, .* elapsed, ETA 00:00", res.stderr)
    assert "gcn quick (3 repeats, ≤ 2 epochs)" in res.stderr
    assert "| protocol |" in res.stdout and "quick (3 repeats, ≤ 2 epochs)" in res.stdout


def test_analysis_help_defaults_match_the_protocol():
    from latbench.analysis import cli, predictors

    assert (cli.QUICK_GCN_REPEATS, cli.QUICK_GCN_EPOCHS) == (
        predictors.QUICK_GCN_REPEATS,
        predictors.QUICK_GCN_EPOCHS,
    )
    plan = predictors.protocols(["flops", "gcn"])
    assert plan["flops"].is_paper("flops") and not plan["gcn"].is_paper("gcn")
    paper = predictors.protocols(["flops", "gcn"], repeats=100)
    assert paper["gcn"].label("gcn") == "paper (100 repeats, Table S1)"
