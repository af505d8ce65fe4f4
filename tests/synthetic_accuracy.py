"""A synthetic NAS-Bench-201 accuracy table for tests that must not need the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import latbench
from latbench.accuracy_table import write_accuracy_table
from latbench.space import N_ARCHS


def write_synthetic_accuracy(home: Path, noise_sd: float = 0.0, seed: int = 0) -> Path:
    """Write into ``home`` a table whose accuracy grows with log-FLOPs (CIFAR-10; 20 and
    40 points less for CIFAR-100 and ImageNet16-120), plus normal noise of ``noise_sd``."""
    from latbench.dataset import arch_table

    t = arch_table()
    noise = np.random.default_rng(seed).normal(0, noise_sd, N_ARCHS) if noise_sd else 0.0
    acc = np.clip(10 * np.log(t["flops"].to_numpy() / 7e6) + 40 + noise, 1, 99)
    frame = pd.DataFrame({
        "arch_id": t["arch_id"].to_numpy(dtype=np.int32),
        "nb201_index": latbench.space.nb201_indices(),
        "valid": t["valid"].to_numpy(),
        "cifar10": acc, "cifar100": acc - 20, "imagenet16-120": acc - 40,
    })  # fmt: skip
    return write_accuracy_table(frame, {"file": "synthetic"}, home)
