"""The catalog of known datasets: keys, aliases, hardware and provenance (docs/design.md §7).

Every dataset ``latbench.load(key)`` knows is listed here whether or not its file is
present: the published LatBench release (Eagle pickles), HELP's NAS-Bench-201 files,
and datasets this harness measured (discovered from their files' metadata).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

__all__ = [
    "CATALOG",
    "PAPER_COLUMNS",
    "Dataset",
    "UnknownDatasetError",
    "eagle_key_for_file",
    "normalize_key",
    "resolve",
    "suggest",
]

BRP_NAS_CITATION = (
    "Dudziak, L., Chau, T., Abdelfattah, M. S., Lee, R., Kim, H., Lane, N. D. "
    "BRP-NAS: Prediction-based NAS using GCNs. NeurIPS 2020."
)
HELP_CITATION = (
    "Lee, H., Lee, S., Chong, S., Hwang, S. J. HELP: Hardware-Adaptive Efficient Latency "
    "Prediction for NAS via Meta-Learning. NeurIPS 2021."
)
HWNASBENCH_CITATION = (
    "Li, C., Yu, Z., Fu, Y., Zhang, Y., Zhao, Y., You, H., Yu, Q., Wang, Y., Lin, Y. "
    "HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark. ICLR 2021."
)


@dataclass(frozen=True)
class Dataset:
    """One dataset (one device configuration) in the catalog."""

    key: str
    name: str
    device_class: str
    hardware: str
    runtime: str
    precision: str
    source: str
    citation: str = BRP_NAS_CITATION
    license: str = "unknown"
    aliases: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=(), repr=False)
    """Original file names (without extension) this dataset is imported from."""
    importer: str = ""
    """Importer name for ``latbench import <importer> PATH``; empty for measured sets."""
    batch: int = 1
    bundled: bool = False
    """Shipped inside the package (listed in ``data/manifest.json``)."""

    @property
    def import_command(self) -> str:
        """The command that makes this dataset available locally."""
        if self.importer == "eagle":
            return (
                "latbench fetch latbench  (or: latbench import eagle PATH/TO/LatBench,"
                " a folder of the release's .pickle files)"
            )
        if self.importer == "help":
            return "latbench fetch help  (or: latbench import help PATH/TO/HELP/data/nasbench201)"
        if self.importer == "hwnasbench":
            return (
                "latbench fetch hwnasbench  (or: latbench import hwnasbench"
                " PATH/TO/HW-NAS-Bench-v1_0.pickle)"
            )
        if self.bundled:
            return "pip install --force-reinstall latbench  (it is bundled with the package)"
        return f"latbench-measure --device <profile> --key {self.key}  (measure it yourself)"


def normalize_key(key: str) -> str:
    """Lower-case, strip, ``_``/space -> ``-``, drop a ``.pickle``/``.parquet`` suffix."""
    k = key.strip().lower()
    for suffix in (".pickle", ".pkl", ".parquet", ".pt"):
        if k.endswith(suffix):
            k = k[: -len(suffix)]
    return k.replace("_", "-").replace(" ", "-")


_EAGLE_LICENSE = "Apache-2.0 (Samsung Eagle release)"
_EAGLE = [
    # key, name, class, hardware, runtime, precision, release file names (Drive name
    # first, then the README's typo'd and other published spellings), aliases
    ("desktop-cpu-i7-7820x-fp32", "Desktop CPU (Intel Core i7-7820X)", "desktop-cpu",
     "Intel Core i7-7820X", "TensorFlow 1.15.0", "fp32",
     ("desktop-cpu-core-i7-7820x-fp32",),
     ("desktop-cpu", "d-cpu", "i7-7820x", "core-i7-7820x")),
    ("desktop-gpu-gtx-1080-ti-fp32", "Desktop GPU (NVIDIA GTX 1080 Ti)", "desktop-gpu",
     "NVIDIA GeForce GTX 1080 Ti", "TensorFlow 1.15.0", "fp32",
     ("desktop-gpu-gtx-1080ti-fp32", "desktop-gpu-gtx-1080-ti-fp32"),
     ("desktop-gpu", "d-gpu", "1080ti", "gtx-1080-ti", "gtx-1080ti")),
    ("jetson-nano-fp32", "Embedded GPU (NVIDIA Jetson Nano), labelled fp32", "embedded-gpu",
     "NVIDIA Jetson Nano (Maxwell GPU)", "TensorFlow 1.15.0", "fp32",
     ("embedded-gpu-jetson-nano-fp32", "embedded-gpu-jetson-nono-fp32"),
     ("jetson-nano", "jetson", "embedded-gpu", "e-gpu")),
    ("jetson-nano-fp16", "Embedded GPU (NVIDIA Jetson Nano), labelled fp16", "embedded-gpu",
     "NVIDIA Jetson Nano (Maxwell GPU)", "TensorFlow 1.15.0", "fp16",
     ("embedded-gpu-jetson-nano-fp16", "embedded-gpu-jetson-nono-fp16"), ()),
    ("edgetpu-int8", "Embedded TPU (Google EdgeTPU)", "embedded-tpu",
     "Google Coral EdgeTPU", "TensorFlow Lite Runtime 2.1.0", "int8",
     ("embedded-tpu-edge-tpu-int8", "embeeded-tpu-edgetpu-int8", "embedded-tpu-edgetpu-int8"),
     ("edgetpu", "edge-tpu", "coral", "embedded-tpu", "e-tpu")),
    ("snapdragon-450-cpu-int8", "Mobile CPU (Snapdragon 450, Cortex-A53)", "mobile-cpu",
     "Qualcomm Snapdragon 450 (Cortex-A53)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-450-cortex-a53-int8", "mobile-cpu-snapdragon-450-contex-a53-int8"),
     ("cortex-a53", "snapdragon-450-cpu")),
    ("snapdragon-675-cpu-int8", "Mobile CPU (Snapdragon 675, Kryo 460)", "mobile-cpu",
     "Qualcomm Snapdragon 675 (Kryo 460)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-675-kryo-460-int8",), ("kryo-460", "snapdragon-675-cpu")),
    ("snapdragon-855-cpu-int8", "Mobile CPU (Snapdragon 855, Kryo 485)", "mobile-cpu",
     "Qualcomm Snapdragon 855 (Kryo 485)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-855-kryo-485-int8",),
     ("mobile-cpu", "kryo-485", "snapdragon-855-cpu")),
    ("snapdragon-675-dsp-int8", "Mobile DSP (Snapdragon 675, Hexagon 685)", "mobile-dsp",
     "Qualcomm Hexagon 685 DSP", "SNPE 1.36.0", "int8",
     ("mobile-dsp-snapdragon-675-hexagon-685-int8",), ("hexagon-685", "snapdragon-675-dsp")),
    ("snapdragon-855-dsp-int8", "Mobile DSP (Snapdragon 855, Hexagon 690)", "mobile-dsp",
     "Qualcomm Hexagon 690 DSP", "SNPE 1.36.0", "int8",
     ("mobile-dsp-snapdragon-855-hexagon-690-int8",),
     ("mobile-dsp", "m-dsp", "hexagon-690", "snapdragon-855-dsp")),
    ("snapdragon-450-gpu-int8", "Mobile GPU (Snapdragon 450, Adreno 506)", "mobile-gpu",
     "Qualcomm Adreno 506 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-450-adreno-506-int8",), ("adreno-506", "snapdragon-450-gpu")),
    ("snapdragon-675-gpu-int8", "Mobile GPU (Snapdragon 675, Adreno 612)", "mobile-gpu",
     "Qualcomm Adreno 612 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-675-adreno-612-int8", "mobile-gpu-snapdragon-675-adren0-612-int8"),
     ("mobile-gpu", "m-gpu", "adreno-612", "snapdragon-675-gpu")),
    ("snapdragon-855-gpu-int8", "Mobile GPU (Snapdragon 855, Adreno 640)", "mobile-gpu",
     "Qualcomm Adreno 640 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-855-adreno-640-int8", "mobile-gpu-snapdragon-855-adren0-640-int8"),
     ("adreno-640", "snapdragon-855-gpu")),
    ("desktop-gpu-gtx-1080-ti-large", "Desktop GPU (NVIDIA GTX 1080 Ti), 'large' file",
     "desktop-gpu", "NVIDIA GeForce GTX 1080 Ti", "TensorFlow 1.15.0 (assumed)", "unknown",
     ("desktop-gpu-gtx-1080ti-large", "desktop-gpu-gtx-1080-ti-large"), ("1080ti-large",)),
    ("edgetpu-large", "Embedded TPU (Google EdgeTPU), 'large' file", "embedded-tpu",
     "Google Coral EdgeTPU", "TensorFlow Lite Runtime 2.1.0 (assumed)", "int8",
     ("embedded-tpu-edgetpu-large", "embedded-tpu-edge-tpu-large", "embeeded-tpu-edgetpu-large"),
     ("edgetpu-int8-large",)),
]  # fmt: skip

_LARGE_SOURCE = (
    "LatBench release (BRP-NAS, Samsung Eagle): a '-large' file found in some copies of "
    "the Drive folder, not in the Eagle README's list. Undocumented: what 'large' means "
    "(network, input or batch) and the protocol; FLOPs/params are LatBench's standard "
    "network's and may not describe what was timed. Not used by the paper's tables."
)

_HELP_HW = {
    "1080ti": ("desktop-gpu", "NVIDIA GeForce GTX 1080 Ti"),
    "2080ti": ("desktop-gpu", "NVIDIA GeForce RTX 2080 Ti"),
    "titanx": ("desktop-gpu", "NVIDIA GeForce GTX Titan X"),
    "titanxp": ("desktop-gpu", "NVIDIA Titan Xp"),
    "titan_rtx": ("desktop-gpu", "NVIDIA Titan RTX"),
    "gold_6226": ("desktop-cpu", "Intel Xeon Gold 6226"),
    "gold_6240": ("desktop-cpu", "Intel Xeon Gold 6240"),
    "silver_4114": ("desktop-cpu", "Intel Xeon Silver 4114"),
    "silver_4210r": ("desktop-cpu", "Intel Xeon Silver 4210R"),
    "pixel2": ("mobile-cpu", "Google Pixel 2"),
    "pixel3": ("mobile-cpu", "Google Pixel 3"),
    "samsung_a50": ("mobile-cpu", "Samsung Galaxy A50"),
    "samsung_s7": ("mobile-cpu", "Samsung Galaxy S7"),
    "essential_ph_1": ("mobile-cpu", "Essential Phone PH-1"),
    "raspi4": ("embedded-cpu", "Raspberry Pi 4"),
    "eyeriss": ("asic", "Eyeriss (simulated ASIC)"),
    "fpga": ("fpga", "FPGA (simulated)"),
}
_HWNASBENCH_SUBSET = {"eyeriss", "fpga", "pixel3", "raspi4"}


def _help_entries() -> list[Dataset]:
    out = []
    for dev, (cls, hw) in _HELP_HW.items():
        batches = (1, 32, 256) if cls == "desktop-gpu" else (None,)
        for b in batches:
            stem = f"{dev}_{b}" if b else dev
            hwnas = dev in _HWNASBENCH_SUBSET
            out.append(
                Dataset(
                    key=normalize_key(f"help-{stem}"),
                    name=f"{hw}" + (f", batch {b}" if b else "") + " (HELP)",
                    device_class=cls,
                    hardware=hw,
                    runtime="as published by HW-NAS-Bench" if hwnas else "PyTorch (HELP)",
                    precision="fp32",
                    source="HELP, HayeonLee/HELP data/nasbench201"
                    + (" (HW-NAS-Bench subset; unpruned networks)" if hwnas else ""),
                    citation=HELP_CITATION + (" " + HWNASBENCH_CITATION if hwnas else ""),
                    license="MIT",
                    files=(stem,),
                    importer="help",
                    batch=b or 1,
                )
            )
    return out


CATALOG: dict[str, Dataset] = {}
for _k, _name, _cls, _hw, _rt, _prec, _files, _aliases in _EAGLE:
    CATALOG[_k] = Dataset(
        _k, _name, _cls, _hw, _rt, _prec,
        source=_LARGE_SOURCE if _k.endswith("-large") else
        "LatBench release (BRP-NAS, Samsung Eagle)",
        license=_EAGLE_LICENSE, aliases=_aliases, files=_files, importer="eagle",
    )  # fmt: skip
for _d in _help_entries():
    CATALOG[_d.key] = _d


def _bundled_entries() -> list[Dataset]:
    from latbench.manifest import bundled_datasets

    return [
        Dataset(
            key=key,
            name=d.get("name", key),
            device_class=d.get("class", ""),
            hardware=d.get("hardware", ""),
            runtime=d.get("runtime", ""),
            precision=d.get("precision", ""),
            source=f"bundled; {d.get('source', 'measured with latbench-measure')}",
            citation="LatBench (software); BRP-NAS, NeurIPS 2020",
            license="CC-BY-4.0",
            bundled=True,
        )
        for key, d in bundled_datasets().items()
    ]


for _d in _bundled_entries():
    CATALOG[_d.key] = _d

_HWNAS_DEVICES = {
    # metric prefix: (class, hardware, measured or estimated, has energy); runtimes and
    # settings are those of the HW-NAS-Bench paper, which LatBench does not restate
    "edgegpu": ("embedded-gpu", "NVIDIA Jetson TX2 (edge GPU)", "measured", True),
    "raspi4": ("embedded-cpu", "Raspberry Pi 4", "measured", False),
    "edgetpu": ("embedded-tpu", "Google Coral EdgeTPU", "measured", False),
    "pixel3": ("mobile-cpu", "Google Pixel 3", "measured", False),
    "eyeriss": ("asic", "Eyeriss (simulated ASIC)", "estimated", True),
    "fpga": ("fpga", "FPGA (simulated)", "estimated", True),
}  # fmt: skip
HWNASBENCH_SOURCE = (
    "HW-NAS-Bench v1.0 (RICE-EIC/GATECH-EIC HW-NAS-Bench, HW-NAS-Bench-v1_0.pickle), "
    "NAS-Bench-201 part, CIFAR-10 entries (its CIFAR-100 and ImageNet16-120 entries "
    "share the latencies; each import records whether they were identical); measured "
    "or estimated on unpruned networks"
)


def _hwnas_entries() -> list[Dataset]:
    out = []
    for dev, (cls, hw, how, energy) in _HWNAS_DEVICES.items():
        out.append(
            Dataset(
                key=f"hwnasbench-{dev}",
                name=f"{hw} (HW-NAS-Bench, {how}{', with energy' if energy else ''})",
                device_class=cls,
                hardware=hw,
                runtime="as published by HW-NAS-Bench",
                precision="int8" if dev == "edgetpu" else "as published by HW-NAS-Bench",
                source=HWNASBENCH_SOURCE,
                citation=HWNASBENCH_CITATION,
                license="MIT",
                aliases=(f"hw-nas-bench-{dev}", f"hwnas-{dev}"),
                files=("HW-NAS-Bench-v1_0",),
                importer="hwnasbench",
            )
        )
    return out


for _d in _hwnas_entries():
    CATALOG[_d.key] = _d

# The paper's column labels (Tables S2/S4) as people type them: "D.CPU", "E. TPU", ...
PAPER_COLUMNS: dict[str, str] = {
    "D. CPU": "desktop-cpu-i7-7820x-fp32",
    "D. GPU": "desktop-gpu-gtx-1080-ti-fp32",
    "E. GPU": "jetson-nano-fp32",
    "E. TPU": "edgetpu-int8",
    "M. GPU": "snapdragon-675-gpu-int8",
    "M. DSP": "snapdragon-855-dsp-int8",
}
"""The BRP-NAS paper's device columns -> the catalog key of the release file behind each."""

_ALIASES: dict[str, str] = {}
for _d in CATALOG.values():
    for _a in (*_d.aliases, *_d.files):
        if _d.importer == "hwnasbench" and _a in _d.files:
            continue  # one file holds all six HW-NAS-Bench datasets: not an alias
        _ALIASES[normalize_key(_a)] = _d.key


def _compact(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", normalize_key(key))


# Punctuation-blind lookup ("D.CPU", "Adreno 612", "adreno_612" -> one entry); a compact
# form two entries share would be ambiguous and is left out.
_COMPACT: dict[str, str | None] = {}
for _name, _target in [*((k, k) for k in CATALOG), *_ALIASES.items(), *PAPER_COLUMNS.items()]:
    _c = _compact(_name)
    if _c and _COMPACT.get(_c, _target) != _target:
        _COMPACT[_c] = None
    else:
        _COMPACT[_c] = _target


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower()) if t}


def _entry_tokens(d: Dataset) -> set[str]:
    words = _tokens(" ".join((d.key, d.name, d.hardware, *d.aliases, *d.files)))
    # "adreno612" typed as one word still meets "adreno-612"
    return words | {_compact(a) for a in (d.key, *d.aliases)}


def suggest(key: str, candidates: list[str] | None = None, n: int = 6) -> list[str]:
    """Catalog keys (and ``candidates``) whose names share a word with ``key``, best first.

    Rare shared words count more than common ones (``adreno`` over ``int8``); close
    spellings (difflib) fill up the list.
    """
    wanted = _tokens(normalize_key(key)) | {_compact(key)}
    pool: dict[str, set[str]] = {k: _entry_tokens(d) for k, d in CATALOG.items()}
    for c in candidates or []:
        pool.setdefault(c, _tokens(c) | {_compact(c)})
    df: dict[str, int] = {}
    for words in pool.values():
        for w in words:
            df[w] = df.get(w, 0) + 1
    scored = []
    for k, words in pool.items():
        shared = wanted & words
        if shared:
            scored.append((-sum(1.0 / df[w] for w in shared), k))
    ranked = [k for _, k in sorted(scored)[:n]]
    close = difflib.get_close_matches(normalize_key(key), list(pool), n=n, cutoff=0.6)
    return list(dict.fromkeys([*ranked, *close]))[:n]


class UnknownDatasetError(KeyError):
    """A dataset key that is neither in the catalog nor found on disk."""

    def __init__(self, key: str, candidates: list[str], hint: str | None = None) -> None:
        close = suggest(key, candidates)
        msg = f"unknown dataset key {key!r}"
        msg += f"; did you mean: {', '.join(close)}?" if close else ""
        msg += f"; {hint}" if hint else " (list them all with `latbench devices`)"
        super().__init__(msg)
        self.key, self.close_matches = key, close

    def __str__(self) -> str:
        return str(self.args[0])


def resolve(key: str) -> str | None:
    """The canonical catalog key for ``key`` or one of its aliases, or ``None``.

    Case, ``_``/``-``/``.``/spaces do not matter: ``jetson_nano``, ``Adreno 612`` and
    the paper's ``E.GPU`` all resolve.
    """
    k = normalize_key(key)
    if k in CATALOG:
        return k
    if k in _ALIASES:
        return _ALIASES[k]
    return _COMPACT.get(_compact(key))


def eagle_key_for_file(stem: str) -> str:
    """Catalog key for a release file name; unknown names get a key derived from it."""
    return resolve(stem) or normalize_key(stem)
