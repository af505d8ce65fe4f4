"""The report's few-shot section from whatever `evaluate-adapt` CSV a user has: another
protocol than `siblings`, other groups, no N = 10. Before, a `--protocol help --n 5` CSV
gave empty panels (the figure drew `siblings` only), matplotlib's "No artists with
labels" warning, and an empty "Spearman per target at N = 10" table."""

from __future__ import annotations

import warnings

import pandas as pd

from latbench.analysis.fewshot import fewshot_figure, write_fewshot


def _rows(protocol: str, groups: dict[str, str], ns: tuple[int, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "target": t,
                "group": g,
                "protocol": protocol,
                "mode": "chip",
                "method": m,
                "n": n,
                "repeat": r,
                "spearman": 0.9 - (0.2 if m == "flops" else 0) + 0.001 * n,
                "within_10pct": 0.5,
                "coverage_90": 0.9,
                "n_sources": 9,
                "seconds": 0.1,
            }
            for t, g in groups.items()
            for m in ("adapter", "flops")
            for n in ns
            for r in (0, 1)
        ]  # fmt: skip
    )


def test_a_help_protocol_csv_without_n10_gives_a_full_section(tmp_path):
    res = _rows("help", {"help-pixel2": "help-meta-test", "help-fpga": "help-meta-test"}, (5,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No artists with labels" from matplotlib
        section = write_fewshot(res, tmp_path)
    md = (tmp_path / "fewshot.md").read_text()
    assert "Spearman per target at N = 5" in md and "N = 10" not in md
    per_target = md.split("Spearman per target at N = 5:")[1]
    assert "help-pixel2" in per_target and "0.905" in per_target  # adapter at N = 5
    assert "protocol `help`" in section.body


def test_the_figure_has_a_panel_per_group_present_with_lines_in_each():
    res = _rows("class", {"edgetpu-int8": "latbench-release", "xeon2c-tf-fp32": "bundled"},
                (5, 10, 20))  # fmt: skip
    fig = fewshot_figure(res)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["LatBench release (class)", "bundled (class)"]
    assert all(ax.get_lines() for ax in fig.axes)
    labels = fig.axes[-1].get_legend().get_texts()
    assert {t.get_text() for t in labels} == {"adapter (mean)", "FLOPs fit"}


def test_siblings_is_drawn_when_present():
    res = pd.concat([_rows("help", {"help-fpga": "help-meta-test"}, (10,)),
                     _rows("siblings", {"help-fpga": "help-meta-test"}, (10,))])  # fmt: skip
    fig = fewshot_figure(res)
    assert [ax.get_title() for ax in fig.axes] == ["HELP's meta-test devices (siblings)"]
