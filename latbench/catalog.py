"""The catalog of known datasets: keys, aliases, hardware and provenance (DESIGN §7).

Every dataset ``latbench.load(key)`` knows is listed here whether or not its file is
present: the published LatBench release (Eagle pickles), HELP's NAS-Bench-201 files,
and datasets this harness measured (discovered from their files' metadata).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

__all__ = [
    "CATALOG",
    "Dataset",
    "UnknownDatasetError",
    "eagle_key_for_file",
    "normalize_key",
    "resolve",
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
            return "latbench import eagle PATH/TO/LatBench  (folder of the release's .pickle files)"
        if self.importer == "help":
            return "latbench import help PATH/TO/HELP/data/nasbench201"
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
    # key, name, class, hardware, runtime, precision, release file names, aliases
    ("desktop-cpu-i7-7820x-fp32", "Desktop CPU (Intel Core i7-7820X)", "desktop-cpu",
     "Intel Core i7-7820X", "TensorFlow 1.15.0", "fp32",
     ("desktop-cpu-core-i7-7820x-fp32",), ("desktop-cpu", "d-cpu")),
    ("desktop-gpu-gtx-1080-ti-fp32", "Desktop GPU (NVIDIA GTX 1080 Ti)", "desktop-gpu",
     "NVIDIA GeForce GTX 1080 Ti", "TensorFlow 1.15.0", "fp32",
     ("desktop-gpu-gtx-1080-ti-fp32", "desktop-gpu-gtx-1080ti-fp32"), ("desktop-gpu", "d-gpu")),
    ("jetson-nano-fp16", "Embedded GPU (NVIDIA Jetson Nano), fp16", "embedded-gpu",
     "NVIDIA Jetson Nano (Maxwell GPU)", "TensorFlow 1.15.0", "fp16",
     ("embedded-gpu-jetson-nono-fp16",), ("jetson-nano", "embedded-gpu", "e-gpu")),
    ("jetson-nano-fp32", "Embedded GPU (NVIDIA Jetson Nano), fp32", "embedded-gpu",
     "NVIDIA Jetson Nano (Maxwell GPU)", "TensorFlow 1.15.0", "fp32",
     ("embedded-gpu-jetson-nono-fp32",), ()),
    ("edgetpu-int8", "Embedded TPU (Google EdgeTPU)", "embedded-tpu",
     "Google Coral EdgeTPU", "TensorFlow Lite Runtime 2.1.0", "int8",
     ("embeeded-tpu-edgetpu-int8",), ("edgetpu", "embedded-tpu", "e-tpu")),
    ("snapdragon-450-cpu-int8", "Mobile CPU (Snapdragon 450, Cortex-A53)", "mobile-cpu",
     "Qualcomm Snapdragon 450 (Cortex-A53)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-450-contex-a53-int8",), ()),
    ("snapdragon-675-cpu-int8", "Mobile CPU (Snapdragon 675, Kryo 460)", "mobile-cpu",
     "Qualcomm Snapdragon 675 (Kryo 460)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-675-kryo-460-int8",), ()),
    ("snapdragon-855-cpu-int8", "Mobile CPU (Snapdragon 855, Kryo 485)", "mobile-cpu",
     "Qualcomm Snapdragon 855 (Kryo 485)", "SNPE 1.36.0", "int8",
     ("mobile-cpu-snapdragon-855-kryo-485-int8",), ("mobile-cpu",)),
    ("snapdragon-675-dsp-int8", "Mobile DSP (Snapdragon 675, Hexagon 685)", "mobile-dsp",
     "Qualcomm Hexagon 685 DSP", "SNPE 1.36.0", "int8",
     ("mobile-dsp-snapdragon-675-hexagon-685-int8",), ()),
    ("snapdragon-855-dsp-int8", "Mobile DSP (Snapdragon 855, Hexagon 690)", "mobile-dsp",
     "Qualcomm Hexagon 690 DSP", "SNPE 1.36.0", "int8",
     ("mobile-dsp-snapdragon-855-hexagon-690-int8",), ("mobile-dsp", "m-dsp")),
    ("snapdragon-450-gpu-int8", "Mobile GPU (Snapdragon 450, Adreno 506)", "mobile-gpu",
     "Qualcomm Adreno 506 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-450-adreno-506-int8",), ()),
    ("snapdragon-675-gpu-int8", "Mobile GPU (Snapdragon 675, Adreno 612)", "mobile-gpu",
     "Qualcomm Adreno 612 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-675-adren0-612-int8",), ("mobile-gpu", "m-gpu")),
    ("snapdragon-855-gpu-int8", "Mobile GPU (Snapdragon 855, Adreno 640)", "mobile-gpu",
     "Qualcomm Adreno 640 GPU", "SNPE 1.36.0", "int8",
     ("mobile-gpu-snapdragon-855-adren0-640-int8",), ()),
]  # fmt: skip

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
        source="LatBench release (BRP-NAS, Samsung Eagle)",
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

_ALIASES: dict[str, str] = {}
for _d in CATALOG.values():
    for _a in (*_d.aliases, *_d.files):
        _ALIASES[normalize_key(_a)] = _d.key


class UnknownDatasetError(KeyError):
    """A dataset key that is neither in the catalog nor found on disk."""

    def __init__(self, key: str, candidates: list[str]) -> None:
        close = difflib.get_close_matches(normalize_key(key), candidates, n=5, cutoff=0.4)
        msg = f"unknown dataset key {key!r}"
        msg += f"; did you mean: {', '.join(close)}?" if close else ""
        msg += " (list them all with `latbench devices`)"
        super().__init__(msg)
        self.key, self.close_matches = key, close

    def __str__(self) -> str:
        return str(self.args[0])


def resolve(key: str) -> str | None:
    """The canonical catalog key for ``key`` or one of its aliases, or ``None``."""
    k = normalize_key(key)
    if k in CATALOG:
        return k
    return _ALIASES.get(k)


def eagle_key_for_file(stem: str) -> str:
    """Catalog key for a release file name; unknown names get a key derived from it."""
    return resolve(stem) or normalize_key(stem)
