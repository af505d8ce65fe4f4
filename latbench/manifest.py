"""Registry of bundled files with sizes and SHA-256 checksums (in the spirit of pooch).

``data/manifest.json`` lists every file shipped in ``latbench.data`` and the datasets
they form. The loader verifies a bundled file against it before reading (once per
file version, so warm loads stay fast); a mismatch raises :class:`ChecksumError`
instead of returning silently corrupted data. Maintainers regenerate the manifest
after a campaign with ``python -m latbench.manifest data/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from latbench.dataset import DatasetError, atomic_path, read_metadata

__all__ = [
    "MANIFEST_NAME",
    "ChecksumError",
    "bundled_datasets",
    "read_manifest",
    "sha256_file",
    "verify_file",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_SUFFIXES = (".parquet", ".raw.h5", ".layers.parquet")


class ChecksumError(DatasetError):
    """A bundled file whose size or SHA-256 differs from the manifest."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bundled_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("latbench.data")))


@cache
def _manifest(directory: str) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        return {"files": {}, "datasets": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(data.get("files"), dict) or not isinstance(data.get("datasets"), dict):
        raise DatasetError(f"{path}: manifest must hold 'files' and 'datasets' objects")
    return data


def read_manifest(directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of ``directory`` (default: the bundled data folder)."""
    return _manifest(str(Path(directory) if directory else _bundled_dir()))


def bundled_datasets() -> dict[str, dict[str, Any]]:
    """Bundled datasets by key: name, class, hardware, runtime, precision, files."""
    return dict(read_manifest()["datasets"])


def verify_file(path: str | os.PathLike[str]) -> None:
    """Check a file in a manifest-bearing folder against its entry.

    Files outside such a folder pass. Raises :class:`ChecksumError` when the size or
    SHA-256 differs, or when a file in the bundled folder has no entry.
    """
    path = Path(path)
    manifest = read_manifest(path.parent)
    if not manifest["files"]:
        return
    entry = manifest["files"].get(path.name)
    if entry is None:
        raise ChecksumError(f"{path}: not listed in {path.parent / MANIFEST_NAME}")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise ChecksumError(
            f"{path}: {size} bytes, the manifest says {entry['bytes']} (truncated or replaced); "
            "reinstall latbench to restore it"
        )
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ChecksumError(
            f"{path}: SHA-256 {digest[:16]}... differs from the manifest's "
            f"{entry['sha256'][:16]}... (corrupted); reinstall latbench to restore it"
        )


def write_manifest(directory: str | os.PathLike[str]) -> Path:
    """Write ``manifest.json`` for the dataset files in ``directory`` (atomic)."""
    directory = Path(directory)
    files: dict[str, dict[str, Any]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.iterdir()):
        if not path.name.endswith(_SUFFIXES) or path.name.startswith("."):
            continue
        files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        if path.name.endswith(".parquet") and not path.name.endswith(".layers.parquet"):
            meta = read_metadata(path)
            key = path.name.removesuffix(".parquet")
            dev, rt = meta.get("device", {}), meta.get("runtime", {})
            datasets[key] = {
                "name": dev.get("name", key),
                "class": dev.get("class", ""),
                "hardware": dev.get("hardware", ""),
                "runtime": f"{rt.get('name', '')} {rt.get('version', '')}".strip(),
                "precision": meta.get("precision", ""),
                "source": meta.get("source", ""),
                "created": meta.get("created", ""),
            }
    for key, entry in datasets.items():
        entry["files"] = sorted(n for n in files if n.startswith(f"{key}."))
    out = directory / MANIFEST_NAME
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"files": files, "datasets": datasets}, indent=2) + "\n")
    _manifest.cache_clear()
    return out


if __name__ == "__main__":  # python -m latbench.manifest data/
    print(write_manifest(sys.argv[1] if len(sys.argv) > 1 else _bundled_dir()))
