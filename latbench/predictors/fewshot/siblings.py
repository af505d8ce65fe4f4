"""Which datasets are the same hardware as a target, and so must not be its sources.

docs/design.md §10 protocol (b) excludes a target's *siblings*: the same SoC's CPU/GPU/DSP,
the same GPU at other batch sizes, the same board at another precision or runtime.
:func:`hardware_ids` names the chip, SoC or board a dataset ran on from its key and
metadata (rules below, for the LatBench release, HELP and HW-NAS-Bench names and for
datasets this harness measured, whose host is the board). ``mode="host"`` is
stricter: it also joins devices in one machine (the BRP-NAS desktop whose GTX 1080 Ti
and i7-7820X files are 0.997 Spearman-correlated, the GPU timing being host-bound).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CLASSES", "MODES", "device_class", "hardware_ids", "siblings", "sources_for"]

MODES = ("chip", "host")
"""``chip``: the issue's rule (same chip, SoC or board); ``host``: also the same machine."""

# (pattern over "key hardware name", id). Order matters only for readability: every
# matching rule adds its id.
_RULES: tuple[tuple[str, str], ...] = (
    (r"1080[\s_-]*ti", "gpu:gtx-1080-ti"),
    (r"2080[\s_-]*ti", "gpu:rtx-2080-ti"),
    (r"titan[\s_-]*rtx", "gpu:titan-rtx"),
    (r"titan[\s_-]*xp", "gpu:titan-xp"),
    (r"titan[\s_-]*x(?![\s_-]*p)", "gpu:titan-x"),
    (r"jetson[\s_-]*n[ao]no", "board:jetson-nano"),
    (r"edge[\s_-]*tpu", "chip:edgetpu"),
    (r"snapdragon[\s_-]*855|hexagon[\s_-]*690|adren[o0][\s_-]*640|kryo[\s_-]*485", "soc:sd855"),
    (r"snapdragon[\s_-]*675|hexagon[\s_-]*685|adren[o0][\s_-]*612|kryo[\s_-]*460", "soc:sd675"),
    (r"snapdragon[\s_-]*450|adren[o0][\s_-]*506|cont?ex[\s_-]*a53", "soc:sd450"),
    (r"pixel[\s_-]*2|essential", "soc:sd835"),
    (r"pixel[\s_-]*3", "soc:sd845"),
    (r"i7[\s_-]*7820x", "cpu:i7-7820x"),
    (r"gold[\s_-]*6226", "cpu:xeon-gold-6226"),
    (r"gold[\s_-]*6240", "cpu:xeon-gold-6240"),
    (r"silver[\s_-]*4114", "cpu:xeon-silver-4114"),
    (r"silver[\s_-]*4210", "cpu:xeon-silver-4210r"),
)
_HOST_RULES: tuple[tuple[str, str], ...] = (
    # The BRP-NAS desktop: one machine holds the i7-7820X and the GTX 1080 Ti of the release.
    (r"desktop[\s_-]*(cpu|gpu).*(7820x|1080)|i7[\s_-]*7820x", "host:brp-nas-desktop"),
)


CLASSES = (
    "desktop-gpu",
    "desktop-cpu",
    "embedded-gpu",
    "accelerator",
    "mobile-cpu",
    "mobile-gpu",
    "dsp",
)
"""Device classes of the leave-one-class-out protocol (``accelerator``: TPU, ASIC, FPGA)."""
_CLASS_OF = {
    "desktop-gpu": "desktop-gpu",
    "desktop-cpu": "desktop-cpu",
    "server-cpu": "desktop-cpu",
    "embedded-gpu": "embedded-gpu",
    "embedded-tpu": "accelerator",
    "asic": "accelerator",
    "fpga": "accelerator",
    "npu": "accelerator",
    "mobile-cpu": "mobile-cpu",
    # an ARM board's CPU (Raspberry Pi 4) runs the same cores and kernels as a phone's
    "embedded-cpu": "mobile-cpu",
    "mobile-gpu": "mobile-gpu",
    "mobile-dsp": "dsp",
}


def device_class(key: str, metadata: Mapping[str, Any] | None = None) -> str:
    """One of :data:`CLASSES` from the dataset's ``device.class``, else ``other``."""
    meta = metadata or {}
    dev = meta.get("device") if isinstance(meta.get("device"), Mapping) else {}
    return _CLASS_OF.get(str(dev.get("class", "")).lower(), "other")


def hardware_ids(
    key: str, metadata: Mapping[str, Any] | None = None, mode: str = "chip"
) -> set[str]:
    """Hardware a dataset ran on (never empty: unknown hardware is its own key)."""
    if mode not in MODES:
        raise ValueError(f"unknown sibling mode {mode!r}; choose one of {', '.join(MODES)}")
    meta = metadata or {}
    dev = meta.get("device") if isinstance(meta.get("device"), Mapping) else {}
    text = " ".join(str(x) for x in (key, dev.get("hardware", ""), dev.get("name", ""))).lower()
    rules = _RULES + (_HOST_RULES if mode == "host" else ())
    ids = {ident for pattern, ident in rules if re.search(pattern, text)}
    if "harness_version" in meta and isinstance(meta.get("host"), Mapping):
        # measured here: the board is the host (keys are <host>-<runtime>-<precision>)
        ids.add("board:" + key.split("-", 1)[0])
    return ids or {"dataset:" + key}


def siblings(
    target: str,
    keys: Iterable[str],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    mode: str = "chip",
) -> list[str]:
    """The datasets among ``keys`` (other than ``target``) that share its hardware."""
    metadata = metadata or {}
    mine = hardware_ids(target, metadata.get(target), mode)
    return [k for k in keys if k != target and hardware_ids(k, metadata.get(k), mode) & mine]


def sources_for(
    target: str,
    keys: Iterable[str],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    mode: str = "chip",
) -> list[str]:
    """``keys`` less the target and its :func:`siblings` (protocol (b))."""
    keys = list(keys)
    drop = set(siblings(target, keys, metadata, mode)) | {target}
    return [k for k in keys if k not in drop]
