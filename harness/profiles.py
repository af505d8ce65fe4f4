"""Device profiles: one TOML file per device configuration (runtime, precision, protocol).

Bundled profiles live in ``harness/profiles/<name>.toml``; :func:`load_profile` also
takes a path to a profile file of one's own. Fields::

    name, description, runtime, artifact_format, precision, threads (0 = runtime
    default), target ("cpu", "gpu", ...), providers (ONNX Runtime, in priority order)
    [device]   class, hardware ("auto" = detect from the host), name (optional)
    [protocol] runs, group_size, warmup, filter (optional, "quartile2")
    [options]  runtime-specific settings, passed to the runner as they are
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latbench.harness.runners import ARTIFACT_FORMATS, RUNTIMES
from latbench.harness.timing import Protocol

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "PRECISIONS",
    "PROFILE_DIR",
    "TARGETS",
    "Profile",
    "ProfileError",
    "detect_hardware",
    "list_profiles",
    "load_profile",
]

PROFILE_DIR = Path(__file__).with_name("profiles")
"""Directory of the bundled ``*.toml`` profiles."""

PRECISIONS = ("fp32", "fp16", "int8")
TARGETS = ("cpu", "gpu", "tpu", "dsp", "npu")

_TOP = {
    "name": str,
    "description": str,
    "runtime": str,
    "artifact_format": str,
    "precision": str,
    "threads": int,
    "target": str,
    "providers": list,
    "device": dict,
    "protocol": dict,
    "options": dict,
}
_REQUIRED = ("name", "runtime", "artifact_format", "precision", "target", "protocol")
_DEVICE = {"class": str, "hardware": str, "name": str}
_PROTOCOL = {"runs": int, "group_size": int, "warmup": int, "filter": str}


class ProfileError(ValueError):
    """A profile is unknown, unreadable or malformed; the message names file and field."""


@dataclass(frozen=True)
class Profile:
    """One device configuration: how to run and time a model there."""

    name: str
    runtime: str
    artifact_format: str
    precision: str
    target: str
    protocol: Protocol
    description: str = ""
    threads: int = 0
    providers: tuple[str, ...] = ()
    device_class: str = ""
    hardware: str = "auto"
    device_name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def with_protocol(
        self, runs: int | None = None, group_size: int | None = None, warmup: int | None = None
    ) -> Profile:
        """A copy with R, g or warm-up overridden; :class:`ValueError` unless R % g == 0."""
        p = self.protocol
        protocol = Protocol(
            runs=p.runs if runs is None else runs,
            group_size=p.group_size if group_size is None else group_size,
            warmup=p.warmup if warmup is None else warmup,
            filter=p.filter,
        )
        return dataclasses.replace(self, protocol=protocol)

    def with_threads(self, threads: int) -> Profile:
        """A copy with the thread count overridden (0 = runtime default)."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(
                f"threads must be an integer >= 0 (0 = runtime default), got {threads!r}"
            )
        return dataclasses.replace(self, threads=threads)

    def with_options(self, **options: Any) -> Profile:
        """A copy with ``[options]`` entries set (e.g. ``builder="converter"``)."""
        return dataclasses.replace(self, options={**self.options, **options})

    def to_metadata(self) -> dict[str, Any]:
        """Profile, device, runtime settings, precision and protocol for dataset metadata.

        ``hardware = "auto"`` is resolved on this host (:func:`detect_hardware`).
        """
        hardware = detect_hardware(self.target) if self.hardware == "auto" else self.hardware
        return {
            "profile": self.name,
            "device": {
                "name": self.device_name or self.name,
                "class": self.device_class,
                "hardware": hardware,
                "target": self.target,
            },
            "runtime": {
                "name": self.runtime,
                "threads": self.threads,
                "providers": list(self.providers),
                "options": dict(self.options),
            },
            "precision": self.precision,
            "artifact_format": self.artifact_format,
            "protocol": self.protocol.to_metadata(),
        }

    def summary(self, width: int = 22) -> str:
        """One line for ``--list-devices``: name (padded to ``width``), runtime,
        precision, target, protocol."""
        p = self.protocol
        return (
            f"{self.name:<{width}} {self.runtime:<12} {self.precision:<5} {self.target:<4} "
            f"R={p.runs} ({p.groups}x{p.group_size}) warm-up {p.warmup}  {self.description}"
        )


def detect_hardware(target: str) -> str:
    """This host's CPU model, or for ``gpu`` the first NVIDIA GPU's name (``nvidia-smi``)."""
    if target == "gpu":
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                out = subprocess.run(
                    [smi, "--query-gpu=name", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=20,
                    check=True,
                ).stdout
                if out.strip():
                    return out.strip().splitlines()[0].strip()
            except (OSError, subprocess.SubprocessError):
                pass
        return "unknown GPU"
    from latbench.harness.host import cpu_model

    return cpu_model()


def _err(source: str, msg: str) -> ProfileError:
    return ProfileError(f"profile {source}: {msg}")


def _typed(table: Mapping[str, Any], spec: Mapping[str, type], where: str, source: str) -> None:
    for key, value in table.items():
        if key not in spec:
            close = difflib.get_close_matches(key, spec, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _err(source, f"unknown field {where}{key!r}{hint}")
        want = spec[key]
        if isinstance(value, bool) and want is not bool or not isinstance(value, want):
            raise _err(source, f"field {where}{key!r} must be {want.__name__}, got {value!r}")


def _one_of(
    value: str, allowed: tuple[str, ...] | Mapping[str, Any], field_: str, src: str
) -> None:
    if value not in allowed:
        raise _err(src, f"field {field_!r} is {value!r}; expected one of {', '.join(allowed)}")


def _from_table(data: Mapping[str, Any], source: str, path: Path | None) -> Profile:
    _typed(data, _TOP, "", source)
    for key in _REQUIRED:
        if key not in data:
            raise _err(source, f"missing field {key!r}")
    device = data.get("device", {})
    proto = data["protocol"]
    _typed(device, _DEVICE, "device.", source)
    _typed(proto, _PROTOCOL, "protocol.", source)
    for key in ("runs", "group_size", "warmup"):
        if key not in proto:
            raise _err(source, f"missing field 'protocol.{key}'")
    _one_of(data["runtime"], RUNTIMES, "runtime", source)
    _one_of(data["artifact_format"], ARTIFACT_FORMATS, "artifact_format", source)
    _one_of(data["precision"], PRECISIONS, "precision", source)
    _one_of(data["target"], TARGETS, "target", source)
    providers = data.get("providers", [])
    if not all(isinstance(p, str) for p in providers):
        raise _err(source, "field 'providers' must be a list of strings")
    threads = data.get("threads", 0)
    if threads < 0:
        raise _err(source, f"field 'threads' must be >= 0 (0 = runtime default), got {threads}")
    try:
        protocol = Protocol(**proto)
    except ValueError as exc:
        raise _err(source, f"[protocol]: {exc}") from None
    return Profile(
        name=data["name"],
        runtime=data["runtime"],
        artifact_format=data["artifact_format"],
        precision=data["precision"],
        target=data["target"],
        protocol=protocol,
        description=data.get("description", ""),
        threads=threads,
        providers=tuple(providers),
        device_class=device.get("class", ""),
        hardware=device.get("hardware", "auto"),
        device_name=device.get("name", ""),
        options=dict(data.get("options", {})),
        source=path,
    )


def _read(path: Path) -> Profile:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from None
    return _from_table(data, str(path), path)


def _bundled() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.toml"))}


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """A bundled profile by name (``"cpu-onnxruntime"``) or a profile file by path.

    Raises :class:`ProfileError` for an unknown name (listing close matches), a file
    that is not TOML, or a missing or malformed field (naming file and field).
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.is_file() or os.sep in text:
        if not path.is_file():
            raise ProfileError(f"profile file not found: {path}")
        return _read(path)
    known = _bundled()
    if text not in known:
        close = difflib.get_close_matches(text, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProfileError(
            f"unknown device profile {text!r}{hint} (known: {', '.join(known)}; or give a "
            f"path to a .toml profile)"
        )
    return _read(known[text])


def list_profiles() -> list[Profile]:
    """Every bundled profile, sorted by name."""
    return [_read(p) for p in _bundled().values()]
