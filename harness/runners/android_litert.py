"""LiteRT on an Android phone: ``.tflite`` models timed by ``benchmark_model`` over ``adb``.

``benchmark_model`` is LiteRT's own benchmark binary (``tensorflow/lite/tools/benchmark``),
the tool nn-Meter, LitePred and the TFLite docs time phones with. Its path on the host
is ``[options] benchmark_model``, else ``$LATBENCH_BENCHMARK_MODEL``; get a prebuilt one
from https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/android_aarch64_benchmark_model
or build it (``bazel build -c opt --config=android_arm64
//tensorflow/lite/tools/benchmark:benchmark_model``). ``docs/devices.md`` has the steps.

Once per session the binary goes to ``<device_dir>/benchmark_model`` (``[options]
device_dir``, default ``/data/local/tmp/latbench-litert``) and the device is
fingerprinted: ``getprop`` (model, manufacturer, SoC, board, Android version, SDK, ABI),
the thermal status (``dumpsys thermalservice``) and each CPU's ``scaling_governor``
where readable. Per model the ``.tflite`` goes to ``<device_dir>/model.tflite``.

Per-run times: ``benchmark_model`` reports only aggregates of a run block (``count=
first= curr= min= max= avg= std=`` and ``Inference timings in us: Init: ..., First
inference: ..., Warmup (avg): ..., Inference (avg): ...``). So each of the protocol's R
timed runs is one invocation with ``--warmup_runs=W --warmup_min_secs=0 --num_runs=1
--min_secs=0``: W warm-up runs, then exactly one timed run, whose time is the
measured block's ``curr=`` (:func:`parse_benchmark_output`). Every timed run thus comes
after W warm-ups in a process of its own; the R values go through the harness's
two-stage filter like any other runner's. It costs R model loads per model, which is
fine at the mobile protocol (R = 10).

CPU threads (``threads``), the affinity mask (``[options] cpu_mask``, run under
``taskset MASK``), the delegate (``[options] delegate``: ``xnnpack``, ``none``,
``gpu``, ``nnapi``) and extra flags (``[options] benchmark_args``) are recorded. A
delegate that fails to apply, or that takes no node of the model, fails the model
with the tool's own message, never a silent CPU fallback; so does one that leaves some
operations to the CPU (the message names them).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench.harness.adb import Adb, device_problems, option_problems
from latbench.harness.profiles import Profile
from latbench.harness.runners.base import Runner
from latbench.harness.timing import Protocol
from latbench.harness.tools import ToolError, check_wall, reported_ns

__all__ = [
    "BENCHMARK_MODEL_ENV",
    "BENCHMARK_MODEL_INSTALL",
    "AndroidLiteRTRunner",
    "BenchmarkRun",
    "benchmark_command",
    "find_benchmark_model",
    "parse_benchmark_output",
]

BENCHMARK_MODEL_ENV = "LATBENCH_BENCHMARK_MODEL"
BENCHMARK_MODEL_INSTALL = (
    "download LiteRT's Android benchmark binary (e.g. https://storage.googleapis.com/"
    "tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
    "android_aarch64_benchmark_model) or build it with bazel build -c opt "
    "--config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model, then set "
    f"[options] benchmark_model or ${BENCHMARK_MODEL_ENV} to its path"
)
DEFAULT_DEVICE_DIR = "/data/local/tmp/latbench-litert"
DELEGATES = ("xnnpack", "none", "gpu", "nnapi")
_DELEGATE_FLAGS = {
    "xnnpack": ["--use_xnnpack=true"],
    "none": ["--use_xnnpack=false"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}
_PROPS = (
    "ro.product.model",
    "ro.product.manufacturer",
    "ro.soc.manufacturer",
    "ro.soc.model",
    "ro.board.platform",
    "ro.hardware",
    "ro.build.version.release",
    "ro.build.version.sdk",
    "ro.product.cpu.abi",
)


def find_benchmark_model(options: dict[str, Any]) -> tuple[Path | None, str]:
    """``(path, where it was configured)``; the path is ``None`` when the file is absent.

    An Android binary does not run on the host, so only its presence is checked.
    """
    configured = options.get("benchmark_model")
    if configured:
        where = "[options] benchmark_model"
    elif os.environ.get(BENCHMARK_MODEL_ENV):
        configured, where = os.environ[BENCHMARK_MODEL_ENV], f"${BENCHMARK_MODEL_ENV}"
    else:
        return None, ""
    path = Path(configured).expanduser()
    return (path if path.is_file() else None), f"{configured!r} (from {where})"


# --------------------------------------------------------------------- the output


class BenchmarkRun(dict):
    """What one ``benchmark_model`` run printed: ``init_us``, ``first_us``, ``warmup_avg_us``,
    ``inference_avg_us`` (the summary line), ``blocks`` (each run block's ``count=...``
    line as a dict, warm-up block first), ``delegated`` (``(nodes, total or None,
    delegate)`` per ``Replacing ... node(s) with delegate`` line), ``applied``
    (``(delegate, "completely" | "partially")`` per ``Explicitly applied`` line),
    ``unsupported`` (the operations a delegate listed as not supported, as printed),
    ``errors`` (ERROR/failure lines), ``malformed`` (summary or block fields that are not
    numbers, as printed) and ``old_summary`` (the pre-2.3 summary line was seen)."""


# Values are taken whole (\S+) and must then be numbers: a prefix match would read
# another locale's '2,189' as 2 us.
_SUMMARY = re.compile(
    r"Inference timings in us: Init: (\S+), First inference: (\S+), "
    r"Warmup \(avg\): (\S+), Inference \(avg\): (\S+)(.*)$"
)
_BLOCK = re.compile(r"(?:^|\s)count=(\d+)(?=\s|$)(.*)")
_NUMBER = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)", re.IGNORECASE)
# 'out of M' came with TF 2.4; older builds print 'Replacing N node(s) with delegate'
_REPLACING = re.compile(
    r"Replacing (\d+) (?:out of (\d+) )?node\(s\) with delegate \(([^)\s]+)\) node"
)
# benchmark_model's own verdict (tools/benchmark/benchmark_tflite_model.cc); builds whose
# core logs are off print this line and no 'Replacing' one
_APPLIED = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially)"
)
_UNSUPPORTED = re.compile(r"Following operations are not supported by (\w+) delegate")
_OLD_SUMMARY = "Average inference timings in us:"  # TF 2.2 and older
_RUN_FIELD = re.compile(r"(^|\s)(curr|avg)=")  # every run block has one
_ERROR = re.compile(
    r"(^|\s)(ERROR:.*|.*Failed to apply .*delegate.*|Benchmarking failed.*|"
    r".*will not be executed by the delegate.*|.*: not found$|.*Permission denied.*|"
    r".*CANNOT LINK EXECUTABLE.*)"
)


def parse_benchmark_output(text: str) -> BenchmarkRun:
    """Parse ``benchmark_model``'s log (any version that prints the ``Inference timings in
    us:`` summary; ``INFO:``/logcat prefixes ignored). Never raises: fields it cannot
    find are absent, so the caller decides what is missing."""
    out = BenchmarkRun(blocks=[], delegated=[], applied=[], unsupported=[], errors=[],
                       malformed=[])  # fmt: skip
    listing = False  # inside a delegate's list of operations it does not support

    def number(name: str, text: str) -> float | None:
        if _NUMBER.fullmatch(text):
            return float(text)
        out["malformed"].append(f"{name}={text[:40]}")
        return None

    for line in text.replace("\r", "").splitlines():
        if listing:  # 'MEAN: Operation is not supported.' ... 'N operations will run on'
            if line.strip() and "operations will run on" not in line:
                out["unsupported"].append(line.strip()[:200])
                continue
            listing = False
        if _UNSUPPORTED.search(line):
            listing = True
            continue
        if m := _SUMMARY.search(line):
            names = ("init_us", "first_us", "warmup_avg_us", "inference_avg_us")
            for name, value in zip(names, m.groups()[:4], strict=True):
                if (v := number(name, value)) is not None:
                    out[name] = v
            if m.group(5).strip():  # '2 189' with a space (or NBSP) as thousands separator
                out["malformed"].append(f"Inference (avg)={m.group(4)}{m.group(5)[:40]}")
        elif _OLD_SUMMARY in line:
            out["old_summary"] = True
        elif (m := _BLOCK.search(line)) and _is_run_block(line, m.group(2)):
            block: dict[str, float] = {"count": int(m.group(1))}
            # a block whose runs all took one time prints 'curr=X(all same)'
            for token in m.group(2).replace("(all same)", "").split():
                k, eq, v = token.partition("=")
                if not eq:  # '2 189' with a space (or NBSP) as thousands separator
                    out["malformed"].append(token[:40])
                elif (x := number(k, v)) is not None:
                    block[k] = x
            out["blocks"].append(block)
        if m := _REPLACING.search(line):
            total = int(m.group(2)) if m.group(2) else None
            out["delegated"].append((int(m.group(1)), total, m.group(3)))
        if m := _APPLIED.search(line):
            out["applied"].append((m.group(1), m.group(2)))
        if m := _ERROR.search(line):
            out["errors"].append(m.group(2).strip())
    return out


def _is_run_block(line: str, fields: str) -> bool:
    """Whether a ``count=`` line is a run block: the op profiler's tables (``Timings
    (microseconds)``, ``Memory (bytes): count=0``) are not, and every run block has
    ``curr=`` or ``avg=``."""
    return "Timings (microseconds)" not in line and bool(_RUN_FIELD.search(fields))


def _one_run_us(run: BenchmarkRun, text: str) -> float:
    # The measured block is the last 'count=' line: with --num_runs=1 --min_secs=0 it holds
    # one run, whose time is 'curr' (and 'avg'); the summary's 'Inference (avg)' agrees.
    if run.get("malformed"):
        raise ToolError(
            f"benchmark_model printed {', '.join(run['malformed'][:3])}, not numbers as its "
            f"2.x log has them (another locale or version?)"
        )
    blocks = run["blocks"]
    if run.get("old_summary") and "inference_avg_us" not in run:
        raise ToolError(
            "benchmark_model printed the 'Average inference timings in us:' summary of "
            "TensorFlow 2.2 or older, which has no per-run figures to read: use a LiteRT "
            "benchmark_model of TensorFlow 2.3 or newer (docs/devices.md says where)"
        )
    if "inference_avg_us" not in run or not blocks:
        tail = "\n".join(text.strip().splitlines()[-12:])
        raise ToolError(
            "benchmark_model printed no 'Inference timings in us:' summary and 'count=' "
            f"block (is it LiteRT's benchmark_model?); its output ends:\n{tail}"
        )
    last = blocks[-1]
    if last["count"] != 1:
        raise ToolError(
            f"benchmark_model timed {last['count']} runs, expected 1 (--num_runs=1 "
            f"--min_secs=0); flags in [options] benchmark_args may override them"
        )
    us = float(last.get("curr", last.get("avg", run["inference_avg_us"])))
    summary = run["inference_avg_us"]
    # Two figures of the same single run: a version printing one of them in another unit
    # (or a garbled log) shows up as a disagreement.
    finite = math.isfinite(us) and math.isfinite(summary)  # else reported_ns names it
    if finite and abs(us - summary) > max(1.0, 0.01 * abs(summary)):
        raise ToolError(
            f"benchmark_model's timed run curr={us:g} us and its summary's Inference (avg) "
            f"{summary:g} us disagree (one run, so they should not): unknown output format"
        )
    return us


def _require_delegation(run: BenchmarkRun, delegate: str) -> None:
    """Refuse a run the ``gpu``/``nnapi`` delegate did not take whole: failed to apply,
    took no node, or left operations to the CPU (named): never a silent CPU fallback."""
    if run["unsupported"]:
        ops = "; ".join(dict.fromkeys(run["unsupported"]))
        raise ToolError(
            f"the {delegate} delegate does not support every operation of the model, so "
            f"part of it would run on the CPU: {ops}"
        )
    if run["errors"]:
        raise ToolError(f"{delegate} delegate: " + "; ".join(dict.fromkeys(run["errors"])))
    mine = [(n, total) for n, total, name in run["delegated"] if delegate in name.lower()]
    took = any(n > 0 for n, _ in mine)
    applied = {how for name, how in run["applied"] if name.lower() == delegate}
    part = next(((n, total) for n, total in mine if total is not None and 0 < n < total), None)
    if part is not None:
        raise ToolError(
            f"the {delegate} delegate took {part[0]} of the model's {part[1]} nodes: the"
            f" rest would run on the CPU"
        )
    if "partially" in applied:
        raise ToolError(
            f"benchmark_model says the {delegate} delegate executes the model only "
            f"partially: part of it would run on the CPU"
        )
    if not (took or applied):
        raise ToolError(
            f"the {delegate} delegate took no node of the model (benchmark_model printed "
            f"neither a 'Replacing N node(s) with delegate' line naming it nor 'Explicitly "
            f"applied' it): it would run on the CPU"
        )


# ------------------------------------------------------------------------ command


def benchmark_command(
    device_dir: str, profile: Profile, warmup: int, model: str | None = None
) -> str:
    """The device shell line for one ``benchmark_model`` invocation (W warm-ups + 1 run)."""
    opts = profile.options
    delegate = str(opts.get("delegate", "xnnpack"))
    args = [
        f"{device_dir}/benchmark_model",
        f"--graph={model or device_dir + '/model.tflite'}",
        f"--warmup_runs={warmup}",
        "--warmup_min_secs=0",
        "--num_runs=1",
        "--min_secs=0",
        f"--max_secs={float(opts.get('max_secs', 150))}",
        "--enable_op_profiling=false",
        *_DELEGATE_FLAGS[delegate],
    ]
    if profile.threads > 0:
        args.append(f"--num_threads={profile.threads}")
    if delegate == "gpu":
        for key in ("gpu_backend", "gpu_precision_loss_allowed"):
            if key in opts:
                args.append(f"--{key}={str(opts[key]).lower()}")
    if delegate == "nnapi":
        for key in ("nnapi_accelerator_name", "nnapi_execution_preference"):
            if key in opts:
                args.append(f"--{key}={opts[key]}")
    args += [str(a) for a in opts.get("benchmark_args", ())]
    mask = opts.get("cpu_mask")
    prefix = f"taskset {mask} " if mask else ""
    return f"cd {device_dir} && {prefix}{shlex.join(args)} 2>&1"


def _problems(profile: Profile) -> list[str]:
    opts = profile.options
    problems = []
    delegate = opts.get("delegate", "xnnpack")
    if delegate not in DELEGATES:
        problems.append(f"[options] delegate is {delegate!r}; choose one of {', '.join(DELEGATES)}")
    mask = opts.get("cpu_mask")
    if mask is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", str(mask)):
        problems.append(f"[options] cpu_mask must be a hex CPU mask such as 'f0', not {mask!r}")
    max_secs = opts.get("max_secs", 150)
    if (
        isinstance(max_secs, bool)
        or not isinstance(max_secs, int | float)
        or not (0 < max_secs <= 86_400)
    ):
        problems.append(f"[options] max_secs must be seconds in (0, 86400], not {max_secs!r:.40}")
    problems += option_problems(opts, DEFAULT_DEVICE_DIR)
    path, where = find_benchmark_model(dict(opts))
    if path is None:
        what = f"benchmark_model not found at {where}" if where else (
            f"no benchmark_model binary configured ([options] benchmark_model, "
            f"${BENCHMARK_MODEL_ENV})"
        )  # fmt: skip
        problems.append(f"{what}: {BENCHMARK_MODEL_INSTALL}")
    return problems


class AndroidLiteRTRunner(Runner):
    """Times ``.tflite`` models with ``benchmark_model`` on an Android device (CPU, GPU, NNAPI)."""

    name = "android-litert"
    formats = ("tflite", "tflite-int8")
    host_bound = False

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        problems = [p for p in _problems(profile) if "benchmark_model" not in p]
        if problems:
            raise ValueError("; ".join(problems))
        self.device_dir = str(profile.options.get("device_dir", DEFAULT_DEVICE_DIR))
        self._adb: Adb | None = None
        self._fingerprint: dict[str, Any] = {}
        self._delegated: list[tuple[int, int, str]] = []

    @classmethod
    def check(cls, profile: Profile) -> list[str]:
        """Problems: options, the benchmark_model binary, adb, the device and its state."""
        return _problems(profile) + device_problems(profile.options)

    @property
    def version(self) -> str:
        """``[options] benchmark_model_version`` when given (the binary cannot say), else ``unknown``."""
        return str(self.profile.options.get("benchmark_model_version", "unknown"))

    @property
    def delegate(self) -> str:
        """The delegate benchmark_model is asked to apply."""
        return str(self.profile.options.get("delegate", "xnnpack"))

    def _session(self) -> Adb:
        if self._adb is not None:
            return self._adb
        binary, where = find_benchmark_model(dict(self.profile.options))
        if binary is None:
            raise ToolError(f"benchmark_model not found {where}: {BENCHMARK_MODEL_INSTALL}")
        adb = Adb(self.profile.options)
        wd = self.device_dir
        adb.shell(f"rm -rf {wd} && mkdir -p {wd}")
        adb.push(binary, f"{wd}/benchmark_model")
        adb.shell(f"chmod 755 {wd}/benchmark_model")
        self._fingerprint = self._read_fingerprint(adb)
        self._adb = adb
        return adb

    @staticmethod
    def _read_fingerprint(adb: Adb) -> dict[str, Any]:
        props = {}
        for prop in _PROPS:
            value = adb.shell(f"getprop {prop}").strip()
            if value:
                props[prop] = value
        out: dict[str, Any] = {"properties": props}
        # Readable without root on most phones; absent values are simply not recorded.
        thermal = adb.shell(
            "dumpsys thermalservice 2>/dev/null | grep -m1 'Thermal Status' || true"
        )
        if m := re.search(r"Thermal Status:\s*(\d+)", thermal):
            out["thermal_status"] = int(m.group(1))
        gov = adb.shell(
            "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do "
            "[ -r $f ] && echo $f=$(cat $f); done; true"
        )
        governors = dict(re.findall(r"/(cpu\d+)/cpufreq/scaling_governor=(\S+)", gov))
        if governors:
            out["cpu_governors"] = governors
        return out

    def prepare(self, artifact: Path, seed: int) -> None:
        """Push the model; benchmark_model feeds its own random inputs (see ``info``)."""
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"TFLite model not found: {artifact}")
        adb = self._session()
        adb.shell(f"rm -f {self.device_dir}/model.tflite")
        adb.push(artifact, f"{self.device_dir}/model.tflite")
        self.artifact, self.inputs = artifact, {}

    def _invoke(self, warmup: int) -> int:
        """One benchmark_model process: ``warmup`` runs, then one timed run; its ns."""
        adb = self._session()
        cmd = benchmark_command(self.device_dir, self.profile, warmup)
        t0 = time.perf_counter()
        try:  # a timeout or Ctrl-C kills benchmark_model on the phone too
            text = adb.shell(cmd, stop=f"{self.device_dir}/benchmark_model")
            wall = time.perf_counter() - t0
        except ToolError as exc:
            run = parse_benchmark_output(str(exc))
            unsupported = [f"not supported by the delegate: {op}" for op in run["unsupported"]]
            reason = "; ".join(dict.fromkeys([*unsupported, *run["errors"]]))
            reason = reason or str(exc).splitlines()[-1]
            raise ToolError(f"benchmark_model failed on {adb.serial}: {reason}") from None
        run = parse_benchmark_output(text)
        if self.delegate in ("gpu", "nnapi"):
            _require_delegation(run, self.delegate)
        self._delegated = run["delegated"]
        ns = reported_ns([_one_run_us(run, text)], "us", "benchmark_model")
        check_wall(ns, wall, "benchmark_model")
        return int(ns[0])

    def run_once(self) -> None:
        """One invocation: no warm-up, one run."""
        self._require_prepared()
        self._invoke(0)

    def time(self, protocol: Protocol) -> np.ndarray:
        """R invocations of W warm-ups + 1 timed run; the R runs' times (int64 ns)."""
        self._require_prepared()
        return np.asarray([self._invoke(protocol.warmup) for _ in range(protocol.runs)], np.int64)

    def close(self) -> None:
        """Remove the binary and model from the device."""
        try:
            if self._adb is not None:
                self._adb.shell(f"rm -rf {self.device_dir}")
        finally:
            self._adb, self.artifact = None, None

    def info(self) -> dict[str, Any]:
        """benchmark_model, delegate, threads, affinity, device serial and fingerprint."""
        opts = self.profile.options
        return {
            "name": self.name,
            "version": self.version,
            "tool": "benchmark_model",
            "delegate": self.delegate,
            "delegated_nodes": [list(d) for d in self._delegated],
            "accelerator": self.profile.target,
            "threads": self.profile.threads,
            "serial": self._adb.serial if self._adb else opts.get("serial"),
            "device": dict(self._fingerprint),
            "settings": {
                "cpu_mask": opts.get("cpu_mask"),
                "benchmark_args": [str(a) for a in opts.get("benchmark_args", ())],
                "per_run": "one benchmark_model process per timed run (W warm-ups + 1 run)",
                "inputs": "benchmark_model's own random inputs",
            },
        }
