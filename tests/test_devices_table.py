"""`latbench devices` fits the terminal and never cuts a key (issue 24)."""

from __future__ import annotations

import pandas as pd
import pytest

from latbench.cli import fit_table, main
from latbench.loader import devices


@pytest.mark.parametrize("columns", [80, 120])
def test_devices_lines_fit_the_terminal(columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    lines = out.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= columns
    for key in devices()["key"]:  # keys are what users type: never shortened
        assert f"\n{key} " in out
    assert lines[0].split() == ["key", "class", "precision", "local", "name"]


def test_fit_table_clips_long_cells_with_an_ellipsis():
    df = pd.DataFrame({"key": ["a", "bb"], "precision": ["as published by X", "fp32"],
                       "name": ["n" * 200, None]})  # fmt: skip
    text = fit_table(df, 40)
    lines = text.splitlines()
    assert max(len(line) for line in lines) == 40
    assert "as publis…" in lines[1] and lines[1].endswith("…")
    assert lines[2].split() == ["bb", "fp32", "-"]
