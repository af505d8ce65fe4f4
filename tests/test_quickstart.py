"""docs/quickstart.md runs as written: every ```python and ```bash block, in order."""

from __future__ import annotations

import os
import re
import subprocess
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


@pytest.mark.slow
def test_quickstart_code_runs_in_order(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("LATBENCH_HOME", str(home))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "quickstart"}
    for i, (lang, code) in enumerate(blocks(DOC.read_text())):
        if lang == "python":
            exec(compile(code, f"quickstart.md block {i}", "exec"), namespace)
        else:
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True,
                                 text=True, env=dict(os.environ), timeout=900)  # fmt: skip
            assert res.returncode == 0, res.stderr
            assert "Traceback" not in res.stderr
    out = capsys.readouterr().out
    assert (tmp_path / "quickstart_devices.png").read_bytes()[:4] == b"\x89PNG"
    assert (home / "quickstart-cpu.parquet").exists()
    assert "15625 architectures, 15284 measured" in out
    mine = namespace["mine"]
    assert int((mine["status"] == "ok").sum()) == 5
    gcn_ms = namespace["gcn"].predict(["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                                       "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"])  # fmt: skip
    assert 0 < gcn_ms[0] < 10 * namespace["ok"]["latency_ms"].max()
