"""Device profiles: bundled files load, overrides validate, errors name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.harness.profiles import (
    PROFILE_DIR,
    Profile,
    ProfileError,
    list_profiles,
    load_profile,
)

REQUIRED = {
    "cpu-tf",
    "cpu-tflite",
    "cpu-tflite-int8",
    "cpu-onnxruntime",
    "gpu-tf",
    "gpu-onnxruntime-cuda",
    "gpu-onnxruntime-trt",
}

GOOD = """\
# a test profile
name = "my-ort"
runtime = "onnxruntime"
artifact_format = "onnx"
precision = "fp32"
target = "cpu"
threads = 2
providers = ["CPUExecutionProvider"]
[device]
class = "desktop-cpu"
hardware = "Test CPU 9000"
[protocol]
runs = 100
group_size = 10
warmup = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_bundled_profiles_load() -> None:
    profiles = {p.name: p for p in list_profiles()}
    assert set(profiles) >= REQUIRED
    for name, p in profiles.items():
        assert p.source == PROFILE_DIR / f"{name}.toml"
        assert load_profile(name) == p
        assert p.source.read_text().lstrip().startswith("#")  # documented
        assert p.device_class
        if p.device_class.startswith("mobile"):  # paper, mobile devices: R = 10, G = 1
            assert (p.protocol.runs, p.protocol.groups) == (10, 1), name
            continue
        # Desktop and embedded default protocol of the paper: R = 1000 = 100 x 10.
        assert (p.protocol.runs, p.protocol.groups, p.protocol.group_size) == (1000, 100, 10)
        assert p.protocol.warmup == 10
        if p.device_class.startswith("desktop"):
            assert p.hardware == "auto"
    assert profiles["cpu-tflite-int8"].precision == "int8"
    assert profiles["cpu-tflite-int8"].artifact_format == "tflite-int8"
    assert profiles["gpu-onnxruntime-trt"].providers[0] == "TensorrtExecutionProvider"
    assert profiles["gpu-onnxruntime-cuda"].providers[0] == "CUDAExecutionProvider"
    assert {profiles[n].target for n in REQUIRED if n.startswith("gpu-")} == {"gpu"}


def test_load_by_path_and_metadata(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, GOOD))
    assert (p.name, p.threads, p.providers) == ("my-ort", 2, ("CPUExecutionProvider",))
    meta = p.to_metadata()
    assert meta["device"]["hardware"] == "Test CPU 9000"
    assert meta["runtime"] == {
        "name": "onnxruntime",
        "threads": 2,
        "providers": ["CPUExecutionProvider"],
        "options": {},
    }
    assert meta["protocol"]["groups"] == 10
    auto = load_profile("cpu-tf").to_metadata()["device"]["hardware"]
    assert auto and auto != "auto"


def test_with_protocol_overrides_and_validates() -> None:
    p = load_profile("cpu-onnxruntime")
    q = p.with_protocol(runs=50, group_size=5)
    assert (q.protocol.runs, q.protocol.groups, q.protocol.group_size) == (50, 10, 5)
    assert q.protocol.warmup == p.protocol.warmup and q.name == p.name
    assert p.protocol.runs == 1000  # the original is untouched
    assert p.with_protocol(runs=10).protocol.groups == 1
    with pytest.raises(ValueError, match="multiple of group_size"):
        p.with_protocol(runs=55)
    with pytest.raises(ValueError, match="multiple of group_size"):
        p.with_protocol(group_size=3)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ProfileError, match="did you mean cpu-onnxruntime") as exc:
        load_profile("cpu-onnxruntim")
    assert "known:" in str(exc.value)
    with pytest.raises(ProfileError, match="not found"):
        load_profile("missing/profile.toml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('runtime = "onnxruntime"\n', ""), "missing field 'runtime'"),
        (lambda t: t.replace("warmup = 5\n", ""), "missing field 'protocol.warmup'"),
        (lambda t: t.replace("threads = 2", "thread = 2"), "unknown field 'thread'.*'threads'"),
        (lambda t: t.replace("threads = 2", 'threads = "2"'), "'threads' must be int"),
        (lambda t: t.replace('"fp32"', '"fp8"'), "'precision' is 'fp8'"),
        (lambda t: t.replace('"onnxruntime"', '"onnxrt"'), "'runtime' is 'onnxrt'"),
        (lambda t: t.replace("runs = 100", "runs = 105"), r"\[protocol\].*multiple"),
        (lambda t: t.replace("[device]", "[device\n"), "not valid TOML"),
    ],
)
def test_bad_file_errors_name_file_and_field(tmp_path: Path, edit, message: str) -> None:
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(ProfileError, match=message) as exc:
        load_profile(path)
    assert str(path) in str(exc.value)


def test_summary_line() -> None:
    line = load_profile("cpu-tflite").summary()
    assert line.startswith("cpu-tflite") and "R=1000 (100x10)" in line
    assert isinstance(load_profile("cpu-tflite"), Profile)
