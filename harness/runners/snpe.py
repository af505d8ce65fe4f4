"""SNPE runner: DLCs timed by ``snpe-net-run`` on an Android phone over ``adb``.

Once per session the SDK's device binary and libraries go to
``<device_dir>/sdk`` (``[options] device_dir``, default ``/data/local/tmp/latbench``).
Per model the DLC and its seeded input files go to ``<device_dir>/model``; timing
writes an input list of ``W + R`` lines (the same input each time), runs
``snpe-net-run`` once with the runtime flag (none for CPU, ``--use_gpu``,
``--use_dsp``) and ``--profiling_level basic``, pulls the output folder, converts its
``SNPEDiag*.log`` with the host's ``snpe-diagview --output diag.csv`` and keeps the
per-execution *Total Inference Time* of executions ``W+1 .. W+R``
(:func:`parse_diagview_csv`). The model folder is removed before the next model and
the whole ``<device_dir>`` by :meth:`SNPERunner.close`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness import snpe_sdk
from latbench.harness.adb import Adb, device_problems, option_problems
from latbench.harness.build.dlc import input_list_line
from latbench.harness.profiles import Profile
from latbench.harness.runners.base import Runner
from latbench.harness.timing import Protocol
from latbench.harness.tools import ToolError, check_wall, reported_ns, run_tool

__all__ = ["SNPERunner", "diagview_command", "net_run_command", "parse_diagview_csv"]

DEFAULT_INPUTS = [{"name": "input", "shape": [1, 32, 32, 3], "dtype": "float32"}]
"""A network's input, used when an artifact comes without a build report."""

DEFAULT_DEVICE_DIR = "/data/local/tmp/latbench"
_RUNTIME_FLAGS = {"cpu": [], "gpu": ["--use_gpu"], "dsp": ["--use_dsp"], "npu": ["--use_aip"]}
_UNITS = {"us": "us", "usec": "us", "microseconds": "us", "ms": "ms", "msec": "ms",
          "ns": "ns", "nsec": "ns"}  # fmt: skip
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().lower())


def parse_diagview_csv(text: str) -> np.ndarray:
    """Per-execution *Total Inference Time* (int64 ns, in execution order) from the CSV
    that ``snpe-diagview --input_log SNPEDiag.log --output diag.csv`` writes.

    The format parsed: comma-separated rows; the header row is the first whose cells
    include one containing ``name`` and one containing ``value`` (SNPE writes
    ``Log Id,Message Name,Message Type,Message Value,Message Unit,...``); without such
    a header the name is column 1 and the value column 3. Each execution adds a row
    named ``Total Inference Time`` (case, spaces and underscores ignored); summary
    rows (``Avg_Total_Inference_Time`` and the like) do not match. Values are in the
    row's unit column (``USEC``/``us``, ``ms`` or ``ns``; microseconds when absent).
    Raises :class:`ToolError` when no such row is found or a value is not a number
    above 0 (``nan``, ``-3``, ``3,348`` in another locale: :func:`reported_ns`).
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    name_col, value_col, unit_col, start = 1, 3, None, 0
    for i, row in enumerate(rows[:20]):
        cells = [_norm(c) for c in row]
        names = [j for j, c in enumerate(cells) if "name" in c]
        values = [j for j, c in enumerate(cells) if "value" in c]
        if names and values:
            name_col, value_col, start = names[0], values[0], i + 1
            units = [j for j, c in enumerate(cells) if "unit" in c]
            unit_col = units[0] if units else None
            break
    out = []
    for row in rows[start:]:
        if len(row) <= max(name_col, value_col) or _norm(row[name_col]) != "total inference time":
            continue
        unit = _norm(row[unit_col]) if unit_col is not None and unit_col < len(row) else "us"
        if unit not in _UNITS:
            raise ToolError(f"snpe-diagview: unknown unit {row[unit_col]!r} in row {row}")
        text = row[value_col].strip()
        if not _NUMBER.fullmatch(text):  # float() would also take 'nan', '1_000', 'inf'
            raise ToolError(f"snpe-diagview: value {text[:40]!r} is not a number")
        out.append(reported_ns([float(text)], _UNITS[unit], "snpe-diagview", len(out) + 1)[0])
    if not out:
        raise ToolError(
            "snpe-diagview output has no per-execution 'Total Inference Time' rows (was "
            "snpe-net-run run with --profiling_level basic?)"
        )
    return np.asarray(out, np.int64)


def net_run_command(device_dir: str, runtime: str, options: dict[str, Any]) -> str:
    """The device shell line that runs ``snpe-net-run`` on the prepared model folder."""
    sdk, model = f"{device_dir}/sdk", f"{device_dir}/model"
    adsp = f"{sdk}/dsp;/vendor/lib/rfsa/adsp;/system/lib/rfsa/adsp;/vendor/dsp;/dsp"
    args = [
        f"{sdk}/bin/snpe-net-run", "--container", f"{model}/model.dlc",
        "--input_list", f"{model}/input_list.txt", "--output_dir", f"{model}/output",
        *_RUNTIME_FLAGS[runtime],
        "--perf_profile", str(options.get("perf_profile", "burst")),
        "--profiling_level", str(options.get("profiling_level", "basic")),
        *map(str, options.get("net_run_args", ())),
    ]  # fmt: skip
    return (
        f"rm -rf {model}/output && cd {model} && LD_LIBRARY_PATH={sdk}/lib "
        f"ADSP_LIBRARY_PATH={shlex.quote(adsp)} {shlex.join(args)}"
    )


def diagview_command(diagview: Path, log: Path, csv_path: Path) -> list[str]:
    """``snpe-diagview --input_log LOG --output CSV``."""
    return [str(diagview), "--input_log", str(log), "--output", str(csv_path)]


def _sdk_problems(profile: Profile) -> list[str]:
    opts = profile.options
    root = snpe_sdk.sdk_root(opts)
    if root is None:
        return [f"no SNPE/QAIRT SDK (SNPE_ROOT, QAIRT_SDK_ROOT and [options] sdk_root are "
                f"unset): {snpe_sdk.SDK_INSTALL}"]  # fmt: skip
    problems = []
    arch = snpe_sdk.target_arch(opts)
    need = [root / "bin" / arch / "snpe-net-run", root / "lib" / arch]
    if profile.target == "dsp":
        need.append(root / "lib" / snpe_sdk.dsp_arch(opts) / "unsigned")
    for path in need:
        if not path.exists():
            problems.append(f"SDK at {root} has no {path.relative_to(root)} (check "
                            f"[options] target_arch / dsp_arch): {snpe_sdk.SDK_INSTALL}")  # fmt: skip
    if snpe_sdk.host_tool("snpe-diagview", opts) is None:
        problems.append(f"snpe-diagview not found in {root / 'bin' / snpe_sdk.HOST_ARCH} "
                        f"or on PATH: {snpe_sdk.SDK_INSTALL}")  # fmt: skip
    return problems


class SNPERunner(Runner):
    """Times DLCs with ``snpe-net-run`` on an Android device's CPU, GPU or DSP."""

    name = "snpe"
    formats = ("dlc",)
    host_bound = False

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        if profile.target not in _RUNTIME_FLAGS:
            raise ValueError(f"SNPE targets cpu, gpu, dsp or npu, not {profile.target!r}")
        if problems := option_problems(profile.options, DEFAULT_DEVICE_DIR):
            raise ValueError("; ".join(problems))
        self.device_dir = str(profile.options.get("device_dir", DEFAULT_DEVICE_DIR))
        self._adb: Adb | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._inputs: list[dict[str, Any]] = []
        self._device_props: dict[str, str] = {}

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: SDK, its device binaries, snpe-diagview, adb, the device and its state."""
        opts = profile.options
        problems = _sdk_problems(profile) + option_problems(opts, DEFAULT_DEVICE_DIR)
        return problems + device_problems(opts)

    @property
    def version(self) -> str:
        """The SDK's version (from its folder name)."""
        return snpe_sdk.sdk_version(self.profile.options)

    def _session(self) -> Adb:
        if self._adb is not None:
            return self._adb
        opts, wd = self.profile.options, self.device_dir
        root = snpe_sdk.sdk_root(opts)
        assert root is not None
        arch = snpe_sdk.target_arch(opts)
        adb = Adb(opts)
        adb.shell(f"rm -rf {wd} && mkdir -p {wd}/sdk/bin {wd}/sdk/lib {wd}/sdk/dsp {wd}/model")
        adb.push(root / "bin" / arch / "snpe-net-run", f"{wd}/sdk/bin/snpe-net-run")
        adb.push(f"{root / 'lib' / arch}/.", f"{wd}/sdk/lib/")
        if self.profile.target == "dsp":
            adb.push(f"{root / 'lib' / snpe_sdk.dsp_arch(opts) / 'unsigned'}/.", f"{wd}/sdk/dsp/")
        adb.shell(f"chmod 755 {wd}/sdk/bin/snpe-net-run")
        for prop in ("ro.product.model", "ro.board.platform", "ro.build.version.release"):
            self._device_props[prop] = adb.shell(f"getprop {prop}").strip()
        self._adb = adb
        return adb

    @staticmethod
    def _report_inputs(artifact: Path) -> list[dict[str, Any]]:
        sidecar = artifact.with_suffix(artifact.suffix + ".json")
        try:
            return json.loads(sidecar.read_text())["report"]["inputs"]
        except (OSError, ValueError, KeyError, TypeError):
            return DEFAULT_INPUTS

    def _drop_model(self) -> None:
        if self._adb is not None and self.artifact is not None:
            self._adb.shell(f"rm -rf {self.device_dir}/model && mkdir -p {self.device_dir}/model")
        if self._tmp is not None:
            self._tmp.cleanup()
        self._tmp, self.artifact, self.inputs = None, None, {}

    def prepare(self, artifact: Path, seed: int) -> None:
        """Push the DLC and seeded float32 input files (one per model input) to the device."""
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"DLC not found: {artifact}")
        self._drop_model()
        adb = self._session()
        self._tmp = tempfile.TemporaryDirectory(prefix="latbench-snpe-")
        local = Path(self._tmp.name)
        model = f"{self.device_dir}/model"
        adb.push(artifact, f"{model}/model.dlc")
        rng = np.random.default_rng(seed)
        self._inputs = self._report_inputs(artifact)
        for i, spec in enumerate(self._inputs):
            arr = rng.standard_normal(spec["shape"]).astype(np.float32)
            path = local / f"input_{i}.raw"
            arr.tofile(path)
            adb.push(path, f"{model}/input_{i}.raw")
            self.inputs[spec["name"]] = arr
        self.artifact = artifact

    def run_once(self) -> None:
        """One execution on the device (a one-line input list)."""
        self.time(Protocol(runs=1, group_size=1, warmup=0))

    def time(self, protocol: Protocol) -> np.ndarray:
        """W + R executions in one ``snpe-net-run``; the R timings the device's diag log holds."""
        self._require_prepared()
        adb, local = self._session(), Path(self._tmp.name)  # type: ignore[union-attr]
        model = f"{self.device_dir}/model"
        line = input_list_line(
            {s["name"]: f"{model}/input_{i}.raw" for i, s in enumerate(self._inputs)}
        )
        listing = local / "input_list.txt"
        listing.write_text((line + "\n") * (protocol.warmup + protocol.runs))
        adb.push(listing, f"{model}/input_list.txt")
        t0 = time.perf_counter()
        adb.shell(  # a timeout or Ctrl-C kills snpe-net-run on the phone too
            net_run_command(self.device_dir, self.profile.target, dict(self.profile.options)),
            stop=f"{self.device_dir}/sdk/bin/snpe-net-run",
        )
        wall = time.perf_counter() - t0
        out = local / "output"
        shutil.rmtree(out, ignore_errors=True)
        adb.pull(f"{model}/output", out)
        logs = sorted(out.glob("SNPEDiag*.log"))
        if not logs:
            raise ToolError(f"snpe-net-run wrote no SNPEDiag*.log into {model}/output")
        diagview = snpe_sdk.host_tool("snpe-diagview", self.profile.options)
        if diagview is None:
            raise ToolError(f"snpe-diagview not found: {snpe_sdk.SDK_INSTALL}")
        csv_path = local / "diag.csv"
        run_tool(diagview_command(diagview, logs[0], csv_path),
                 env=snpe_sdk.host_env(self.profile.options), timeout=300)  # fmt: skip
        times = parse_diagview_csv(csv_path.read_text(errors="replace"))
        want = protocol.warmup + protocol.runs
        if times.size != want:
            raise ToolError(f"snpe-diagview listed {times.size} executions, expected {want}")
        check_wall(times, wall, "snpe-net-run (via snpe-diagview)")
        return times[protocol.warmup :]

    def close(self) -> None:
        """Remove the model and the SDK copy from the device."""
        try:
            self._drop_model()
            if self._adb is not None:
                self._adb.shell(f"rm -rf {self.device_dir}")
        finally:
            self._adb = None

    def info(self) -> dict[str, Any]:
        """SDK version, runtime flag, device serial and properties, settings."""
        opts = self.profile.options
        return {
            "name": self.name,
            "version": self.version,
            "accelerator": self.profile.target,
            "runtime_flag": " ".join(_RUNTIME_FLAGS[self.profile.target]) or "(cpu default)",
            "serial": self._adb.serial if self._adb else opts.get("serial"),
            "device_properties": dict(self._device_props),
            "threads": self.profile.threads,
            "settings": {
                "perf_profile": opts.get("perf_profile", "burst"),
                "profiling_level": opts.get("profiling_level", "basic"),
                "target_arch": snpe_sdk.target_arch(opts),
                "dsp_arch": snpe_sdk.dsp_arch(opts),
            },
        }
