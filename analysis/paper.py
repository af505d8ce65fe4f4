"""The BRP-NAS paper's LatBench numbers (Table S4, Table S2), to set beside ours.

Paper devices map to the catalog keys of the published LatBench release; a
comparison is made only where the dataset analysed *is* that release file, never a
similar device from another source. The embedded GPU of Tables S2/S4 is the Jetson
Nano; the release holds fp16 and fp32 files and the catalog's ``jetson_nano`` /
``e-gpu`` aliases name the fp16 one, which we follow.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "PAPER_DEVICES",
    "TABLE_S2",
    "TABLE_S4",
    "paper_correlation",
    "paper_label",
    "paper_predictor_table",
]

PAPER_DEVICES: dict[str, str] = {
    "D. CPU": "desktop-cpu-i7-7820x-fp32",
    "D. GPU": "desktop-gpu-gtx-1080-ti-fp32",
    "E. GPU": "jetson-nano-fp16",
    "E. TPU": "edgetpu-int8",
    "M. GPU": "snapdragon-675-gpu-int8",
    "M. DSP": "snapdragon-855-dsp-int8",
}
"""Paper column label -> catalog key of the release dataset it was computed on."""

_S4_ROWS = [
    [1.000, 0.997, 0.700, 0.844, 0.751, 0.727],
    [0.997, 1.000, 0.702, 0.844, 0.752, 0.728],
    [0.700, 0.702, 1.000, 0.574, 0.866, 0.821],
    [0.844, 0.844, 0.574, 1.000, 0.548, 0.690],
    [0.751, 0.752, 0.866, 0.548, 1.000, 0.821],
    [0.727, 0.728, 0.821, 0.690, 0.821, 1.000],
]
TABLE_S4 = pd.DataFrame(_S4_ROWS, index=list(PAPER_DEVICES), columns=list(PAPER_DEVICES))
"""Table S4: Pearson correlation of latency between the paper's six devices."""

# (predictor, bound) -> six devices' (mean, std) in %; None = N/A in the paper
_S2 = {
    ("GCN (900 pts.)", 1): [(36.0, 3.5), (36.7, 4.0), (24.3, 1.4), (16.2, 3.6), (17.5, 2.8), (21.3, 1.9)],
    ("GCN (900 pts.)", 5): [(85.2, 1.8), (85.9, 1.9), (82.5, 1.5), (64.0, 5.7), (67.5, 7.4), (77.5, 2.6)],
    ("GCN (900 pts.)", 10): [(96.4, 0.7), (96.4, 0.7), (96.3, 0.5), (87.4, 2.7), (90.5, 5.5), (94.2, 0.4)],
    ("GCN (100 pts.)", 1): [(6.1, 1.7), (5.9, 1.3), (9.9, 1.3), (6.2, 1.0), (5.2, 0.9), (10.3, 1.1)],
    ("GCN (100 pts.)", 5): [(27.9, 5.5), (28.7, 3.6), (44.6, 4.0), (30.0, 3.6), (24.9, 3.4), (48.0, 3.8)],
    ("GCN (100 pts.)", 10): [(51.5, 8.3), (52.9, 5.0), (71.8, 3.5), (54.6, 5.7), (46.3, 4.1), (78.4, 3.6)],
    ("Layer-wise (900 pts.)", 1): [(3.5, 0.2), (4.2, 0.2), (6.1, 0.3), None, None, None],
    ("Layer-wise (900 pts.)", 5): [(18.2, 1.5), (17.1, 0.3), (29.7, 0.8), None, None, None],
    ("Layer-wise (900 pts.)", 10): [(29.6, 1.1), (32.6, 1.2), (54.0, 0.8), None, None, None],
}  # fmt: skip

TABLE_S2 = pd.DataFrame(
    [
        {"predictor": p, "bound_pct": b, "device": d, "mean": v[0], "std": v[1]}
        for (p, b), vals in _S2.items()
        for d, v in zip(PAPER_DEVICES, vals, strict=True)
        if v is not None
    ]
)
"""Table S2 in long form: predictor, bound_pct, device (paper label), mean, std (%).

Table 1 of the paper repeats the D. CPU/D. GPU/E. GPU columns with two small
differences (layer-wise D. CPU +-5%: 18.2+-0.4; GCN D. GPU +-10%: 96.9+-0.8);
Table S2 is used here.
"""


def paper_label(key: str) -> str | None:
    """The paper's column label for a catalog key, or ``None``."""
    for label, k in PAPER_DEVICES.items():
        if k == key:
            return label
    return None


def paper_correlation(keys: list[str]) -> pd.DataFrame:
    """Table S4 restricted to the ``keys`` that are paper datasets, indexed by key."""
    labels = {k: paper_label(k) for k in keys}
    present = [k for k in keys if labels[k] is not None]
    t = TABLE_S4.loc[[labels[k] for k in present], [labels[k] for k in present]]
    t.index = t.columns = present
    return t


def paper_predictor_table(keys: list[str]) -> pd.DataFrame:
    """Table S2 rows for the ``keys`` that are paper datasets, with a ``key`` column."""
    by_label = {paper_label(k): k for k in keys if paper_label(k) is not None}
    t = TABLE_S2[TABLE_S2["device"].isin(list(by_label))].copy()
    t.insert(0, "key", t["device"].map(by_label))
    return t.reset_index(drop=True)
