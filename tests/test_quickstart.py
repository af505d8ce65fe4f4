"""docs/quickstart.md runs as written: every ```python and ```bash block, in order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "quickstart.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced python/bash block, in order."""
    return re.findall(r"^```(python|bash)\n(.*?)^```", text, re.S | re.M)


def test_quickstart_has_the_five_steps_and_its_figure():
    text = DOC.read_text()
    for step in ("Load", "Plot", "Measure", "Compare", "Predict"):
        assert re.search(rf"^## \d\. {step}$", text, re.M), step
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert figures == ["quickstart_devices.png"]
    assert (DOC.parent / figures[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    langs = [lang for lang, _ in blocks(text)]
    assert langs.count("python") >= 4 and "bash" in langs


# Runs the page's blocks in order in a fresh interpreter, as a reader would: the test
# suite's own TensorFlow environment (conftest sets TF_CPP_MIN_LOG_LEVEL) must not hide
# what a Python API user sees on stderr.
_RUNNER = r"""
import json, re, subprocess, sys
blocks = re.findall(r"^```(python|bash)\n(.*?)^```", open(sys.argv[1]).read(), re.S | re.M)
ns = {"__name__": "quickstart"}
for i, (lang, code) in enumerate(blocks):
    sys.stdout.flush(); sys.stderr.flush()
    if lang == "python":
        exec(compile(code, f"quickstart.md block {i}", "exec"), ns)
    else:
        subprocess.run(["bash", "-euo", "pipefail", "-c", code], check=True, timeout=900)
mine, ok = ns["mine"], ns["ok"]
gcn_ms = ns["gcn"].predict(["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                            "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"])
print("RESULT " + json.dumps({"mine_ok": int((mine["status"] == "ok").sum()),
                              "gcn_ms": float(gcn_ms[0]), "max_ms": float(ok["latency_ms"].max())}))
"""
BANNERS = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|^[IWE]\d{4} \d\d:\d\d:\d\d", re.M
)


@pytest.mark.slow
def test_quickstart_code_runs_in_order(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(LATBENCH_HOME=str(home), MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, "-c", _RUNNER, str(DOC)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=1800)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    # TensorFlow's native banners reach Python API users unless the library drops them
    assert not BANNERS.search(res.stderr), res.stderr[-3000:]
    out = res.stdout
    assert (tmp_path / "quickstart_devices.png").read_bytes()[:4] == b"\x89PNG"
    assert (home / "quickstart-cpu.parquet").exists()
    assert "15625 architectures, 15284 measured" in out
    got = json.loads(out.rsplit("RESULT ", 1)[1])
    assert got["mine_ok"] == 5
    assert 0 < got["gcn_ms"] < 10 * got["max_ms"]
