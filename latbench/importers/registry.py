"""Registry of every published LatBench release file: names, SHA-256, rows, median.

The release (BRP-NAS / Samsung Eagle, a Google Drive folder) has been served under
two spellings: the Eagle README's, with typos (``jetson-nono``, ``embeeded``,
``contex``, ``adren0``), and today's Drive folder, with them fixed. Users also hold
``.pkl`` copies, other cases, ``_`` for ``-``, browser suffixes like `` (1)``. So a
file is identified by **content first** (its SHA-256, as pooch does) and by **name
only as a fallback**, in which case the import records that it differs from the
published file. A name is not proof: the older copies' ``jetson-nono-fp16`` holds the
file named ``jetson-nano-fp32`` today, so a name-only file is accepted only when its
median latency is within :data:`MEDIAN_FACTOR` of a candidate entry's
(:func:`by_median`).

>>> identify("~/Downloads/embedded-gpu-jetson-nano-fp32.pickle").entry.key  # doctest: +SKIP
'jetson-nano-fp32'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from latbench.manifest import sha256_file

__all__ = [
    "DRIVE_FOLDER_ID",
    "JETSON_LABEL_HISTORY",
    "MEDIAN_FACTOR",
    "NB201_ACCURACY",
    "REGISTRY",
    "Identification",
    "PinnedFile",
    "ReleaseFile",
    "by_median",
    "by_name",
    "by_sha256",
    "candidates_by_name",
    "compact_name",
    "drop_copy_mark",
    "identify",
    "median_fits",
    "median_mismatch",
]

DRIVE_FOLDER_ID = "1lywFtYt6Y89nYbeDfqobU8TZAdFdZIbd"
"""The authors' Google Drive folder of the release (linked from the Eagle README)."""

JETSON_LABEL_HISTORY = (
    "The 14.5 ms Jetson Nano file (SHA-256 e129686b...) is named "
    "embedded-gpu-jetson-nano-fp32 on the current Drive folder but "
    "embedded-gpu-jetson-nono-fp16 in older copies of the release, which hold only this "
    "one Jetson file; the 5.27 ms file (08382730..., named fp16 today) exists only in the "
    "newer folder. The 14.5 ms file is the set behind the paper's E. GPU column: with it "
    "the paper's Table S4 (Spearman) reproduces to three decimals. Its precision label "
    "is therefore uncertain; LatBench follows the current Drive name (fp32)."
)
"""Why the Jetson Nano keys are what they are (recorded in both files' metadata)."""


@dataclass(frozen=True)
class ReleaseFile:
    """One published file of the release."""

    name: str
    """File name on today's Drive folder, without extension."""
    key: str
    """Catalog key it imports under."""
    sha256: str
    rows: int | None
    """Architectures the file holds (``None``: not published and not measured here)."""
    median_ms: float | None
    """Median latency in ms (``None`` where no copy was available to measure)."""
    variants: tuple[str, ...] = ()
    """Other names the same file is published under (README typos, older copies)."""
    note: str = ""

    def names(self) -> tuple[str, ...]:
        """Every published name of this file (Drive name first)."""
        return (self.name, *self.variants)


_JETSON_FP32_NOTE = JETSON_LABEL_HISTORY
_LARGE_NOTE = (
    "present in some copies of the Drive folder but not in the Eagle README's list; what "
    "'large' denotes (network, input size or batch) is not documented, so FLOPs/params of "
    "LatBench's standard network may not describe what was timed"
)

# rows: the published counts (mobile Snapdragon 450 / 675 files hold 15,252 /
# 15,261 of the 15,284 valid cells); medians: measured on copies of seven of the
# release files (None where no copy was at hand).
_FILES = [
    ReleaseFile("desktop-cpu-core-i7-7820x-fp32", "desktop-cpu-i7-7820x-fp32",
                "27f61a49ce38eac55c33070ae5cbabc64919daaa8f69d99828e5000b14750046", 15284, 4.78),
    ReleaseFile("desktop-gpu-gtx-1080ti-fp32", "desktop-gpu-gtx-1080-ti-fp32",
                "c66a2befb3a3e8a0d98fb7c1a56ba1a689351285d998bda37fe1845e060a5fab", 15284, 4.79,
                ("desktop-gpu-gtx-1080-ti-fp32",)),
    ReleaseFile("embedded-gpu-jetson-nano-fp16", "jetson-nano-fp16",
                "08382730eca6665f8332762edd40b28388aa6072f1ae1d432dc7d7e0be734fd6", 15284, 5.27,
                ("embedded-gpu-jetson-nono-fp16",),
                "only in the newer Drive folder; see the Jetson label history"),
    ReleaseFile("embedded-gpu-jetson-nano-fp32", "jetson-nano-fp32",
                "e129686b3950de8bde23350908bf819eb41f463fa6f9ed66a4d34b41d4a92440", 15284, 14.5,
                ("embedded-gpu-jetson-nono-fp32",), _JETSON_FP32_NOTE),
    ReleaseFile("embedded-tpu-edge-tpu-int8", "edgetpu-int8",
                "25fefd36c1f35f31421609bee238e46c31bcb006b3f11b9dd1976f755c8582ff", 15284, 1.12,
                ("embeeded-tpu-edgetpu-int8", "embedded-tpu-edgetpu-int8")),
    ReleaseFile("mobile-cpu-snapdragon-450-cortex-a53-int8", "snapdragon-450-cpu-int8",
                "5a2472c90094d61e054ac3dd69eb73e45e3190b4a5c63939a403452b2329b23f", 15252, None,
                ("mobile-cpu-snapdragon-450-contex-a53-int8",)),
    ReleaseFile("mobile-cpu-snapdragon-675-kryo-460-int8", "snapdragon-675-cpu-int8",
                "0b27513a9df6268ba72e88eb6a2b5252a7a5cced0670d5ed2ca6e5246f46f7cd", 15261, None),
    ReleaseFile("mobile-cpu-snapdragon-855-kryo-485-int8", "snapdragon-855-cpu-int8",
                "37dd050648b85c59c60872ecbd8e8f4acf1ea4947dad2af20f3d111644c8c70e", 15284, None),
    ReleaseFile("mobile-dsp-snapdragon-675-hexagon-685-int8", "snapdragon-675-dsp-int8",
                "31c902c45442d6877e6b8346aea62c3741eee53e5b6fe319468053f39f417971", 15261, None),
    ReleaseFile("mobile-dsp-snapdragon-855-hexagon-690-int8", "snapdragon-855-dsp-int8",
                "6174d899540f690e7746188cff4b2308024eea09602ce72ff4874d1944918e3a", 15284, 2.70),
    ReleaseFile("mobile-gpu-snapdragon-450-adreno-506-int8", "snapdragon-450-gpu-int8",
                "ecb5f459dc7d16399d79da9501014fa291bf2bd6dc355140235a92611e7a3df2", 15252, None),
    ReleaseFile("mobile-gpu-snapdragon-675-adreno-612-int8", "snapdragon-675-gpu-int8",
                "87259db1fa589d29009172688ed69b78b85d2ae413d8f213449f123daeedf024", 15261, 5.80,
                ("mobile-gpu-snapdragon-675-adren0-612-int8",)),
    ReleaseFile("mobile-gpu-snapdragon-855-adreno-640-int8", "snapdragon-855-gpu-int8",
                "a9637c8ffc7eb1e83393b55e47f04d9052a18949c2c07c3539bc6cd2ce810667", 15284, None,
                ("mobile-gpu-snapdragon-855-adren0-640-int8",)),
    ReleaseFile("desktop-gpu-gtx-1080ti-large", "desktop-gpu-gtx-1080-ti-large",
                "1a87dd7190311633d3bc2917f8b15035f342cfa903ca774e602e3f5bb569c6b4", None, None,
                ("desktop-gpu-gtx-1080-ti-large",), _LARGE_NOTE),
    ReleaseFile("embedded-tpu-edgetpu-large", "edgetpu-large",
                "78a95efa7f616a0f4a9e7cbe4d3c4dc311482f6ed9e2117b108235aa9c5c92bc", 14802, None,
                ("embedded-tpu-edge-tpu-large", "embeeded-tpu-edgetpu-large"), _LARGE_NOTE),
]  # fmt: skip

REGISTRY: Mapping[str, ReleaseFile] = {f.name: f for f in _FILES}
"""Drive file name (no extension) -> :class:`ReleaseFile`, for all 15 published files."""

_BY_SHA = {f.sha256: f for f in _FILES}
_SUFFIXES = (".pickle", ".pkl")
# " (1)", "-copy": what browsers and file managers append to a second download
_COPY_MARK = re.compile(r"(\s*\(\d+\)|[-_ ]copy(\d+)?)$")


def drop_copy_mark(stem: str) -> str:
    """``stem`` without the `` (1)`` or ``-copy`` a second download appends."""
    return _COPY_MARK.sub("", stem)


def compact_name(name: str) -> str:
    """A file or key name reduced to lower-case letters and digits, suffixes dropped.

    ``Embedded_GPU-Jetson Nano-FP32 (1).PKL`` and ``embedded-gpu-jetson-nano-fp32``
    compare equal under it.
    """
    n = Path(name.strip()).name.lower()
    for suffix in _SUFFIXES:
        if n.endswith(suffix):
            n = n[: -len(suffix)]
            break
    n = drop_copy_mark(n)
    return re.sub(r"[^a-z0-9]", "", n)


_BY_NAME: dict[str, ReleaseFile] = {}
for _f in _FILES:
    for _n in _f.names():
        _BY_NAME[compact_name(_n)] = _f


# Names an older copy of the release gave another file than today's folder gives: the
# older copies' only Jetson file (14.5 ms, jetson-nano-fp32 today) was called
# nono-fp16, the name that now spells the 5.27 ms file's. Either entry, first the
# older copies' meaning; the file's median decides (by_median).
_SHARED_NAMES = {
    compact_name("embedded-gpu-jetson-nono-fp16"): (
        "embedded-gpu-jetson-nano-fp32",
        "embedded-gpu-jetson-nano-fp16",
    ),
}

MEDIAN_FACTOR = 1.5
"""A file identified by name only must have a median latency within this factor of its
entry's ``median_ms`` (where one was measured)."""


def by_sha256(digest: str) -> ReleaseFile | None:
    """The published file with this SHA-256, or ``None``."""
    return _BY_SHA.get(digest.strip().lower())


def by_name(name: str) -> ReleaseFile | None:
    """The published file this file name is a spelling of, or ``None``."""
    return _BY_NAME.get(compact_name(name))


def candidates_by_name(name: str) -> tuple[ReleaseFile, ...]:
    """Every published file this file name may mean (two for the older copies' Jetson
    name ``jetson-nono-fp16``), the likeliest first; ``()`` for none."""
    compact = compact_name(name)
    shared = _SHARED_NAMES.get(compact)
    if shared is not None:
        return tuple(REGISTRY[n] for n in shared)
    entry = _BY_NAME.get(compact)
    return () if entry is None else (entry,)


def median_fits(entry: ReleaseFile, median_ms: float) -> bool:
    """Whether ``median_ms`` is within :data:`MEDIAN_FACTOR` of ``entry``'s median (true
    when the entry has none: no copy was at hand to measure)."""
    if entry.median_ms is None:
        return True
    if not median_ms > 0:  # NaN or no latency at all
        return False
    ratio = median_ms / entry.median_ms
    return 1 / MEDIAN_FACTOR <= ratio <= MEDIAN_FACTOR


def by_median(candidates: tuple[ReleaseFile, ...], median_ms: float) -> ReleaseFile | None:
    """The candidate whose median ``median_ms`` fits (:func:`median_fits`), the closest
    measured one first; ``None`` when none fits."""
    import math

    fitting = [c for c in candidates if median_fits(c, median_ms)]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda c: math.inf if c.median_ms is None else abs(math.log(median_ms / c.median_ms)),
    )


def median_mismatch(
    name: str, candidates: tuple[ReleaseFile, ...], median_ms: float, *, alone: bool = False
) -> str:
    """One line refusing a name-only file whose median fits none of its ``candidates``
    (``alone``: said of a file in a folder, which ``--key`` takes only on its own)."""
    listed = " or ".join(f"{c.key!r} (median {c.median_ms:g} ms)" for c in candidates)
    keys = " or ".join(f"--key {c.key}" for c in candidates)
    how = f"import it alone with {keys}" if alone else f"pass {keys}"
    return (
        f"{name}: its SHA-256 matches no published file and its median latency"
        f" {median_ms:.3g} ms is not within a factor {MEDIAN_FACTOR:g} of the published"
        f" {listed} its name says it is ({how} if it really is that device)"
    )


@dataclass(frozen=True)
class Identification:
    """How a local file relates to the release."""

    path: Path
    sha256: str
    entry: ReleaseFile | None
    """The published file it is (``how="sha256"``) or is named as (``how="name"``)."""
    how: str
    """``sha256`` (content identical), ``name`` (name only: content differs) or ``none``."""
    candidates: tuple[ReleaseFile, ...] = ()
    """Every published file its name may mean (:func:`candidates_by_name`); ``entry`` is
    the first until the file's median picks one (:func:`by_median`)."""

    @property
    def warning(self) -> str | None:
        """Why this file's data may not be the published data; ``None`` for an exact match."""
        if self.how != "name" or self.entry is None:
            return None
        return (
            f"{self.path.name}: named like the published file {self.entry.name} but it "
            f"differs from the published file (SHA-256 {self.sha256[:12]}..., published "
            f"{self.entry.sha256[:12]}...); imported by its name"
        )


def identify(path: str | os.PathLike[str]) -> Identification:
    """Identify a local file: by SHA-256 first, then by any spelling of its name."""
    path = Path(path).expanduser()
    digest = sha256_file(path)
    entry = by_sha256(digest)
    if entry is not None:
        return Identification(path, digest, entry, "sha256")
    candidates = candidates_by_name(path.name)
    entry = candidates[0] if candidates else None
    return Identification(path, digest, entry, "name" if entry else "none", candidates)


@dataclass(frozen=True)
class PinnedFile:
    """A file downloaded from a pinned URL and accepted only with this SHA-256."""

    name: str
    url: str
    sha256: str
    size: int
    note: str = ""


NB201_ACCURACY_COMMIT = "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7"
NB201_ACCURACY = PinnedFile(
    "nats_bench.csv",
    "https://raw.githubusercontent.com/v-tao/nats-bench-landscape/"
    f"{NB201_ACCURACY_COMMIT}/nats_bench.csv",
    "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e",
    3_024_008,
    "NATS-Bench topology-space accuracies (= NAS-Bench-201) of all 15,625 cells, exported"
    " with the NATS-Bench API (200 epochs, seed-averaged); GitHub v-tao/nats-bench-landscape",
)
"""The public CSV export of NAS-Bench-201 accuracies (``latbench fetch nb201-accuracy``)."""
