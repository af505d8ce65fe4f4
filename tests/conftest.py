"""Shared test setup: keep every test's data and artifact cache out of the user's home."""

from __future__ import annotations

import os
import signal

import pytest

# A suite started in the background (``cmd &`` without job control) inherits SIGINT
# ignored, and so would every process it starts: the Ctrl-C tests send SIGINT to their
# children and need it delivered as KeyboardInterrupt, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("latbench-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATBENCH_HOME", str(home))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
        yield home


@pytest.fixture
def adapt_in_fresh_process():
    """Run select + fit + predict of the few-shot adapter in a new interpreter.

    ``run(prior_expr, model_kw)`` returns the finished process; its stdout is the
    sorted list of deep-learning framework modules the adaptation imported.
    """
    import subprocess
    import sys

    def run(prior_expr: str = "", model_kw: str = "") -> subprocess.CompletedProcess[str]:
        code = (
            "import sys, numpy as np\n"
            "from latbench.predictors.fewshot import FewShotAdapter, load_prior, select_archs\n"
            f"p = load_prior({prior_expr}); ids = select_archs(p, 10)\n"
            f"fit = FewShotAdapter(p{model_kw}).fit(ids, np.exp(p.design[ids] @ p.mean))\n"
            "fit.predict_frame(); fit.describe()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'torch', 'jax')))\n"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    return run


# --- the fake device tools (edge_fakes), for the tests of the hardware code paths ------


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    """Fake edgetpu_compiler, trtexec, adb, SNPE SDK and benchmark_model, installed once."""
    import edge_fakes

    return edge_fakes.install(tmp_path_factory.mktemp("fakes"))


@pytest.fixture
def env(fakes, tmp_path, monkeypatch):
    """The harness pointed at the fakes for one test; the test's ``tmp_path``."""
    import edge_fakes

    return edge_fakes.use(monkeypatch, fakes, tmp_path)


@pytest.fixture
def gpu_visible(monkeypatch):
    """Profiles that need an NVIDIA GPU see one (their tools are the fakes)."""
    import latbench.harness.runners.onnxrt as ort_runner

    monkeypatch.setattr(ort_runner, "nvidia_gpu_visible", lambda: True)
