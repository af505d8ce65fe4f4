"""What users plausibly pass to the Python API by mistake gets a one-line error that says
what to pass, never a silent wrong result: keys that are not strings, file paths,
prediction keys, one key to ``load_wide``, NB201-ordered columns to tools that need
``arch_id`` order, Series in different orders, counts of the wrong type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import latbench
from latbench.catalog import UnknownDatasetError
from latbench.dataset import DatasetError, read_dataset
from latbench.loader import bundled_dir
from latbench.nas import aging_evolution, front_recovery, oracle_nas, pareto_front
from latbench.predicted import predicted_path, write_predicted
from latbench.predictors import PredictorError, make_predictor
from latbench.predictors.fewshot.nasaware import check_accuracy
from latbench.space import N_ARCHS

BUNDLED = "xeon2c-tflite-fp32"


@pytest.mark.parametrize(("key", "needle"), [(None, "NoneType"), (5, "int"),
                                             (["a"], "load_wide(keys) takes several")])  # fmt: skip
def test_a_key_that_is_not_a_string_says_so(key, needle):
    for call in (latbench.load, latbench.load_predicted):
        with pytest.raises(TypeError, match="dataset key must be a string") as err:
            call(key)
        assert needle in str(err.value)


def test_a_path_or_a_prediction_key_given_to_load_points_to_the_right_call(tmp_path):
    path = bundled_dir() / f"{BUNDLED}.parquet"
    with pytest.raises(UnknownDatasetError, match=r"latbench\.read_dataset\(path\)"):
        latbench.load(str(path))
    x = np.linspace(0.4, 2.0, N_ARCHS)
    frame = pd.DataFrame({"arch_id": np.arange(N_ARCHS, dtype=np.int32),
                          "valid": np.ones(N_ARCHS, bool), "latency_pred_ms": x,
                          "latency_lo_ms": 0.9 * x, "latency_hi_ms": 1.1 * x,
                          "measured": np.zeros(N_ARCHS, bool)})  # fmt: skip
    write_predicted(frame, predicted_path(tmp_path, "mybox"), {"adapter_version": "t"})
    with pytest.raises(UnknownDatasetError, match=r"load_predicted\('mybox'\)"):
        latbench.load("mybox", data_home=tmp_path)
    for spelled in ("mybox", "mybox.predicted.parquet"):  # the file name works as the key
        got = latbench.load_predicted(spelled, data_home=tmp_path)
        assert np.allclose(got["latency_pred_ms"], x)
    with pytest.raises(FileNotFoundError, match="read_predicted"):
        latbench.load_predicted(str(tmp_path / "mybox.predicted.parquet"))


def test_a_long_unknown_key_is_an_unknown_key():
    for n in (200, 240, 300):
        with pytest.raises(UnknownDatasetError):
            latbench.load("a" * n)


def test_load_wide_takes_one_key_collapses_spellings_and_names_its_values():
    one = latbench.load_wide(BUNDLED)
    assert list(one.columns) == [BUNDLED]
    assert latbench.load_wide([BUNDLED, BUNDLED.replace("-", "_")]).shape == one.shape
    with pytest.raises(ValueError, match="value must be one of latency_ms"):
        latbench.load_wide(BUNDLED, value="status")


def test_read_dataset_names_a_per_layer_table():
    with pytest.raises(DatasetError, match="a per-layer table, not a dataset"):
        read_dataset(bundled_dir() / f"{BUNDLED}.layers.parquet")


def test_predictor_names_are_case_insensitive_and_seed_is_accepted_by_all():
    assert make_predictor("FLOPS", seed=3).proxy == "flops"
    with pytest.raises(PredictorError, match="flops: .*unexpected keyword argument 'foo'"):
        make_predictor("flops", foo=1)


def test_accuracy_names_in_every_spelling():
    from latbench.accuracy_table import accuracy_dataset_name

    for name in ("imagenet-16-120", "ImageNet16-120", "imagenet16_120", "ImageNet 16-120"):
        assert accuracy_dataset_name(name) == "imagenet16-120"
    for name in ("CIFAR_100", "cifar-100", " cifar100 "):
        assert accuracy_dataset_name(name) == "cifar100"


def _nb201_ordered(values: np.ndarray) -> pd.Series:
    from latbench.space import nb201_indices

    s = pd.Series(values, index=pd.Index(nb201_indices(), name="nb201_index")).sort_index()
    assert list(s.index) == list(range(N_ARCHS))  # 0..N-1, as arch_id order would be
    return s


def test_columns_in_nb201_order_are_refused_where_arch_id_order_is_needed():
    rng = np.random.default_rng(0)
    acc, lat = rng.uniform(10, 70, N_ARCHS), rng.uniform(1, 5, N_ARCHS)
    with pytest.raises(ValueError, match="indexed by 'nb201_index'; this needs arch_id order"):
        aging_evolution(_nb201_ordered(acc), lat, lat, 3.0, steps=100, seeds=1)
    with pytest.raises(PredictorError, match="indexed by 'nb201_index'"):
        check_accuracy(_nb201_ordered(acc))
    by_id = pd.Series(acc, index=pd.RangeIndex(N_ARCHS, name="arch_id"))
    assert np.array_equal(check_accuracy(by_id), acc)
    frame = pd.DataFrame({"accuracy_cifar100": acc})  # as load(key, accuracy=...) adds it
    assert np.array_equal(check_accuracy(frame), acc)


def test_series_in_different_orders_are_refused_not_paired_by_position():
    a = pd.Series([60.0, 70.0, 65.0], index=[0, 1, 2])
    lat = pd.Series([1.0, 2.0, 3.0], index=[2, 1, 0])
    with pytest.raises(ValueError, match="different indexes"):
        pareto_front(lat, a)
    with pytest.raises(ValueError, match="different indexes"):
        oracle_nas(a, lat, lat, [2.0])
    with pytest.raises(ValueError, match="different indexes"):
        front_recovery(lat, lat.sort_index(), a)
    # aligned Series, or plain arrays, pair by position as documented
    assert pareto_front(lat.reindex(a.index), a).tolist() == pareto_front([3, 2, 1], a).tolist()


def test_nas_tools_refuse_tables_empty_sets_and_wrong_counts():
    df = pd.DataFrame({"latency_ms": [1.0, 2.0], "accuracy": [60.0, 70.0]})
    with pytest.raises(ValueError, match="pass one column"):
        oracle_nas(df, df["latency_ms"], df["latency_ms"], [1.5])
    with pytest.raises(ValueError, match="no models"):
        oracle_nas([], [], [], [1.0])
    rng = np.random.default_rng(1)
    acc, lat = rng.uniform(10, 70, N_ARCHS), rng.uniform(1, 5, N_ARCHS)
    res = aging_evolution(acc, lat, lat, 3.0, steps=80, population=16, sample=4,
                          seeds=np.int64(2))  # fmt: skip
    assert res.effective.shape == (2, 80)
    for bad in ({"seeds": 0}, {"seeds": 2.0}, {"seeds": True}, {"seeds": []},
                {"steps": 80.0}, {"seeds": "3"}):  # fmt: skip
        with pytest.raises(ValueError, match="seed|steps"):
            aging_evolution(acc, lat, lat, 3.0, **{"steps": 80, "population": 16, "sample": 4,
                                                   **bad})  # fmt: skip
    with pytest.raises(ValueError, match="limit_ms must be a number"):
        aging_evolution(acc, lat, lat, "3", steps=80, population=16, sample=4)


def test_a_file_named_for_one_dataset_holding_another_is_refused(tmp_path):
    from latbench.dataset import skeleton_frame, write_dataset

    df = skeleton_frame()
    ids = df.index[df["valid"]][:3]
    df.loc[ids, ["status", "latency_ms", "runs"]] = ["ok", 1.0, 10]
    # Jetson Nano fp16 measurements saved under the Edge TPU's name
    write_dataset(df, tmp_path / "edgetpu-int8.parquet", {"device": {"key": "jetson-nano-fp16"}})
    with pytest.raises(DatasetError, match="holds dataset 'jetson-nano-fp16', not 'edgetpu-int8'"):
        latbench.load("edgetpu-int8", data_home=tmp_path)
    # an alias of the same dataset, or a key of the user's own, is fine
    write_dataset(
        df, tmp_path / "d-gpu.parquet", {"device": {"key": "desktop-gpu-gtx-1080-ti-fp32"}}
    )
    write_dataset(df, tmp_path / "mybox.parquet", {"device": {"key": "mybox-old-name"}})
    assert len(latbench.load("d-gpu", data_home=tmp_path)) == N_ARCHS
    assert len(latbench.load("mybox", data_home=tmp_path)) == N_ARCHS
