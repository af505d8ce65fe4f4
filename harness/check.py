"""``latbench-measure --check``: can this profile run here, and does one tiny model time?

The check goes step by step and stops at the first step that fails: the build tools
an edge format needs are here (compiler, SDK, trtexec) and the runtime is importable
and the device reachable (:meth:`Runner.check`) -- both listed in full, so one
``--check`` names every missing piece --, a tiny network (the NAS-Bench-201 skeleton
with identity cells) builds in the profile's artifact format, and it runs and times
under a short protocol. ``stages`` limits the check to the ``build`` host or the
``run`` device of a split build/run. Every problem names what is missing and how to
get it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latbench.harness.profiles import Profile
from latbench.harness.runners import runner_class
from latbench.harness.timing import Protocol, time_runner

__all__ = ["CHECK_PROTOCOL", "TINY_ARCH", "CheckReport", "check_profile"]

TINY_ARCH = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
"""Cells that prune to the identity: the smallest network of the space."""

CHECK_PROTOCOL = Protocol(runs=20, group_size=10, warmup=3)
"""The short protocol the check times with."""


@dataclass
class CheckReport:
    """Outcome of :func:`check_profile`; ``lines`` is what ``--check`` prints."""

    profile: str
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    runner_info: dict[str, Any] = field(default_factory=dict)

    def _fail(self, step: str, problems: list[str]) -> CheckReport:
        self.problems.extend(problems)
        self.lines.append(f"  {step}: FAILED")
        self.lines.extend(f"    - {p}" for p in problems)
        self.lines.append(f"{self.profile}: not usable here")
        return self


def _build_tiny(profile: Profile, directory: Path, seed: int) -> Path:
    try:
        from latbench.harness.artifacts import ArtifactCache
    except ImportError as exc:
        raise RuntimeError(
            f"the artifact builders (latbench.harness.artifacts) cannot be imported: {exc}; "
            f"install the harness extra: pip install 'latbench[harness]'"
        ) from exc
    from latbench.graph import prune
    from latbench.harness.artifacts import artifact_spec
    from latbench.space import parse_arch

    cache = ArtifactCache(directory)
    fmt, options = artifact_spec(profile)
    return Path(cache.build(prune(parse_arch(TINY_ARCH)), fmt, seed, options=options))


def check_profile(
    profile: Profile,
    tiny_model_dir: str | os.PathLike[str] | None = None,
    *,
    artifact: str | os.PathLike[str] | None = None,
    protocol: Protocol = CHECK_PROTOCOL,
    seed: int = 0,
    stages: tuple[str, ...] = ("build", "run"),
) -> CheckReport:
    """Probe ``profile`` here: build tools, runtime, device, then one tiny model built and timed.

    The tiny model is built into ``tiny_model_dir`` (a temporary directory when None)
    unless ``artifact`` names a ready one of the profile's format. With
    ``stages=("build",)`` the check stops after building it; with ``("run",)`` it
    builds nothing and times ``artifact`` when given.
    """
    from latbench.harness.build.edge import build_format, build_problems

    rep = CheckReport(profile.name)
    rep.lines.append(
        f"{profile.name}: runtime {profile.runtime}, {profile.precision}, target "
        f"{profile.target}, artifact {profile.artifact_format}"
    )
    tool_problems = []
    if "build" in stages:
        try:
            fmt = build_format(profile.artifact_format, profile.precision)
            tool_problems = build_problems(fmt, profile.options)
        except ValueError as exc:
            tool_problems = [str(exc)]
    try:
        cls = runner_class(profile.runtime)
        problems = cls.check(profile) if "run" in stages else []
    except (KeyError, ImportError) as exc:
        return rep._fail("runtime", [str(exc).strip("'\"")])
    if tool_problems:
        if problems:  # list both, so one --check names every missing piece
            rep.lines.append("  build tools: FAILED")
            rep.lines.extend(f"    - {p}" for p in tool_problems)
            rep.problems.extend(tool_problems)
            return rep._fail("runtime and device", problems)
        return rep._fail("build tools", tool_problems)
    if problems:
        return rep._fail("runtime and device", problems)
    if "build" in stages and profile.artifact_format in ("edgetpu-tflite", "dlc", "trt-engine"):
        rep.lines.append("  build tools: ok")
    if "run" in stages:
        rep.lines.append("  runtime and device: ok")
    if "run" not in stages or (artifact is None and "build" not in stages):
        if "run" not in stages and artifact is None:
            try:
                with tempfile.TemporaryDirectory(prefix="latbench-check-") as tmp:
                    path = _build_tiny(profile, Path(tiny_model_dir or tmp), seed)
            except Exception as exc:
                return rep._fail(f"build tiny {profile.artifact_format} model", [str(exc)])
            rep.lines.append(f"  build tiny {profile.artifact_format} model: ok ({path.name})")
        rep.ok = True
        rep.lines.append(f"{profile.name}: ready for '{' and '.join(stages)}'")
        return rep

    with tempfile.TemporaryDirectory(prefix="latbench-check-") as tmp:
        if artifact is None:
            try:
                path = _build_tiny(profile, Path(tiny_model_dir or tmp), seed)
            except Exception as exc:
                return rep._fail(f"build tiny {profile.artifact_format} model", [str(exc)])
            rep.lines.append(f"  build tiny {profile.artifact_format} model: ok ({path.name})")
        else:
            path = Path(artifact)
        runner = cls(profile)
        try:
            runner.prepare(path, seed)
            timing = time_runner(runner, protocol)
            rep.runner_info = runner.info()
        except Exception as exc:
            return rep._fail("run and time", [f"{type(exc).__name__}: {exc}"])
        finally:
            runner.close()
    rep.latency_ms = timing.latency_ms
    rep.ok = True
    rep.lines.append(
        f"  run and time: ok ({timing.latency_ms:.4f} ms +- {timing.latency_std_ms:.4f}, "
        f"R={protocol.runs}, {rep.runner_info.get('name')} {rep.runner_info.get('version')})"
    )
    rep.lines.append(f"{profile.name}: ready")
    return rep
