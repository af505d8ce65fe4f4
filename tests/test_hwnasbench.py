"""HW-NAS-Bench importer on a fixture built to the layout its API documents.

``hw_nas_bench_api.HWNASBenchAPI`` reads ``HW_metrics["nasbench201"][dataset][metric]
[arch_index]`` and ``...[dataset]["config"][arch_index]["arch_str"]``; the fixture
holds numpy arrays, plain lists and lists of numpy scalars, as copies may.
"""

from __future__ import annotations

import functools
import os
import pickle

import numpy as np
import pytest

import latbench
from latbench.importers import ImportFormatError, import_datasets, read_source
from latbench.importers.hwnasbench import DEVICES, FILE_NAME
from latbench.safepickle import UnsafePickleError
from latbench.space import N_ARCHS, all_archs

METRICS = [
    "edgegpu_latency", "edgegpu_energy", "raspi4_latency", "edgetpu_latency",
    "pixel3_latency", "eyeriss_latency", "eyeriss_energy", "eyeriss_arithmetic_intensity",
    "fpga_latency", "fpga_energy",
]  # fmt: skip


@functools.cache
def _layout(seed: int = 0) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """(pickle object, arch_id per NB201 index, metric -> values by NB201 index)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(N_ARCHS)  # NB201 index i is architecture order[i]
    archs = list(all_archs())
    configs = [
        {"name": "infer.tiny", "C": 16, "N": 5, "arch_str": archs[a].str, "num_classes": 10}
        for a in order
    ]
    values = {m: rng.uniform(0.5, 30.0, N_ARCHS) for m in METRICS}
    values["pixel3_latency"][7] = -1.0  # HW-NAS-Bench's "no measurement"
    cifar10 = {"config": configs}
    for i, m in enumerate(METRICS):
        # as copies hold them: numpy arrays, lists of floats, a list of numpy scalars
        cifar10[m] = values[m] if i % 2 else [float(x) for x in values[m]]
    cifar10["edgetpu_latency"] = list(values["edgetpu_latency"])
    cifar100 = dict(cifar10)
    imagenet = dict(cifar10, raspi4_latency=values["raspi4_latency"] * 1.5)
    obj = {
        "nasbench201": {"cifar10": cifar10, "cifar100": cifar100, "ImageNet16-120": imagenet},
        "fbnet": {"edgegpu_latency": {"ConvNorm_H32": 0.1}},
    }
    return obj, order, values


@pytest.fixture(scope="module")
def hwnas(tmp_path_factory):
    obj, order, values = _layout()
    d = tmp_path_factory.mktemp("hwnas")
    (d / FILE_NAME).write_bytes(pickle.dumps(obj, protocol=4))
    return d / FILE_NAME, order, values


def test_imports_six_devices_keyed_through_config(hwnas, tmp_path):
    path, order, values = hwnas
    home = tmp_path / "home"
    reports = import_datasets("hwnasbench", path.parent, data_home=home)
    assert sorted(r.key for r in reports) == sorted(f"hwnasbench-{d}" for d in DEVICES)
    for device, has_energy in DEVICES.items():
        df = latbench.load(f"hwnasbench-{device}", data_home=home)
        by_arch = np.empty(N_ARCHS)
        by_arch[order] = values[f"{device}_latency"]
        got = df["latency_ms"].to_numpy()
        good = by_arch > 0
        np.testing.assert_array_equal(got[good], by_arch[good])  # exact, every arch
        assert df["nb201_index"].tolist() == np.argsort(order).tolist()
        assert ("energy_mj" in df.columns) == has_energy
        if has_energy:
            e = np.empty(N_ARCHS)
            e[order] = values[f"{device}_energy"]
            np.testing.assert_array_equal(df["energy_mj"].to_numpy(), e)
        # unpruned networks: invalid cells were timed too, and keep their figure
        invalid = ~df["valid"]
        assert (df.loc[invalid & (df["status"] != "failed"), "status"] == "invalid").all()
        assert df.loc[invalid & good, "latency_ms"].notna().all()
        meta = df.attrs["metadata"]
        assert "unpruned" in meta["networks"] and meta["imported_from"]["dataset"] == "cifar10"
    px = latbench.load("hwnasbench-pixel3", data_home=home)
    row = px.loc[px["arch_id"] == order[7]].iloc[0]
    assert row["status"] == "failed" and np.isnan(row["latency_ms"])
    assert row["error"] == "published latency -1.0"
    shared = latbench.load("hwnasbench-raspi4", data_home=home).attrs["metadata"]
    shared = shared["imported_from"]["latencies_shared"]
    assert shared == {"identical_in": ["cifar100"], "differs_in": ["ImageNet16-120"]}


def test_only_and_aliases(hwnas):
    path, _, _ = hwnas
    (item,) = read_source("hwnasbench", path, ["hw-nas-bench-eyeriss"])
    assert item.key == "hwnasbench-eyeriss" and "energy_mj" in item.frame.columns


def test_refuses_code_and_object_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pickle"
    bad.write_bytes(pickle.dumps({"nasbench201": Evil()}))
    with pytest.raises(UnsafePickleError, match="system"):
        read_source("hwnasbench", bad)
    obj_arr = tmp_path / "objarr.pickle"
    obj_arr.write_bytes(pickle.dumps({"nasbench201": np.array([{"a": 1}], dtype=object)}))
    with pytest.raises(UnsafePickleError):
        read_source("hwnasbench", obj_arr)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.pop("fpga_latency"), r"no 'fpga_latency' entry"),
        (lambda c: c.update(raspi4_latency=["fast"] * N_ARCHS), r"entry 0 is 'fast'"),
        (lambda c: c["config"].__setitem__(3, {"arch_str": "|bogus~0|"}), r"config\[3\]"),
    ],
)
def test_layout_errors_are_named(tmp_path, mutate, match):
    cifar10 = dict(_layout()[0]["nasbench201"]["cifar10"])  # the cached layout stays intact
    cifar10["config"] = list(cifar10["config"])
    mutate(cifar10)
    p = tmp_path / FILE_NAME
    p.write_bytes(pickle.dumps({"nasbench201": {"cifar10": cifar10}}, protocol=4))
    with pytest.raises(ImportFormatError, match=match):
        read_source("hwnasbench", p)
    short = {"nasbench201": {"cifar10": {"config": [], "fpga_latency": [1.0]}}}
    p.write_bytes(pickle.dumps(short))
    with pytest.raises(ImportFormatError, match="expected 15625 network configs, got 0"):
        read_source("hwnasbench", p)


def test_cli_import_hwnasbench(hwnas, tmp_path, capsys):
    from latbench.cli import main

    path, _, _ = hwnas
    rc = main(["import", "hwnasbench", str(path), "--only", "hwnasbench-fpga",
               "--data-home", str(tmp_path)])  # fmt: skip
    assert rc == 0 and "wrote hwnasbench-fpga" in capsys.readouterr().out
    assert main(["import", "hwnasbench", str(tmp_path / "absent")]) == 2
    assert "HW-NAS-Bench's file is HW-NAS-Bench-v1_0.pickle" in capsys.readouterr().err
