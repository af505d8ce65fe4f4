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
import warnings
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from latbench.dataset import DatasetError, atomic_path, read_metadata
from latbench.files import read_capped

__all__ = [
    "MANIFEST_NAME",
    "ChecksumError",
    "bundled_datasets",
    "read_manifest",
    "sha256_file",
    "update_entry",
    "verify_file",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_LOCK_NAME = f".{MANIFEST_NAME}.lck"
"""The lock a manifest update holds, beside the manifest."""
MAX_MANIFEST_BYTES = 16 * 2**20
"""A data folder's manifest is read only up to this size (thousands of entries fit)."""
MANIFEST_WAIT_NOTICE_S = 10.0
"""Seconds an update waits for another's before saying that it waits."""
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
    bundled = _is_bundled(directory)
    if not path.exists():
        if bundled:  # deleting the manifest must not switch every check off
            raise ChecksumError(
                f"{path} is missing, so the bundled datasets cannot be verified; "
                "reinstall latbench to restore it"
            )
        return {"files": {}, "datasets": {}}
    try:
        data = json.loads(read_capped(path, MAX_MANIFEST_BYTES).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest: {exc}") from exc
    ok = (
        isinstance(data, dict)
        and isinstance(data.get("files"), dict)
        and isinstance(data.get("datasets"), dict)
    )
    if not ok:
        if not bundled:  # someone else's manifest.json (an old artifact folder): not ours
            return {"files": {}, "datasets": {}}
        raise DatasetError(f"{path}: manifest must hold 'files' and 'datasets' objects")
    for name, entry in data["files"].items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("bytes"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            raise DatasetError(f"{path}: entry {name!r} needs 'bytes' and 'sha256'")
    return data


def _is_bundled(directory: str | os.PathLike[str]) -> bool:
    try:
        return Path(directory).resolve() == _bundled_dir().resolve()
    except (OSError, ModuleNotFoundError):
        return False


def read_manifest(directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of ``directory`` (default: the bundled data folder)."""
    return _manifest(str(Path(directory) if directory else _bundled_dir()))


def bundled_datasets() -> dict[str, dict[str, Any]]:
    """Bundled datasets by key: name, class, hardware, runtime, precision, files."""
    return dict(read_manifest()["datasets"])


def verify_file(path: str | os.PathLike[str]) -> None:
    """Check a file in a manifest-bearing folder against its entry.

    Every file of the bundled folder is checked (datasets, per-layer tables, raw
    timings): a missing manifest, a file it does not list, a size or a SHA-256 that
    differs raise :class:`ChecksumError`. Files in folders without a data manifest
    pass (their own checksums are checked by their readers). A file version that
    verified once is not hashed again in this process.
    """
    path = Path(path)
    st = path.stat()
    _verify_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _verify_cached(name: str, mtime_ns: int, size: int) -> None:
    path = Path(name)
    manifest = read_manifest(path.parent)
    if not manifest["files"] and not _is_bundled(path.parent):
        return
    entry = manifest["files"].get(path.name)
    if entry is None:
        raise ChecksumError(f"{path}: not listed in {path.parent / MANIFEST_NAME}")
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


def update_entry(path: str | os.PathLike[str]) -> bool:
    """Record ``path``'s new size and SHA-256 in its folder's data manifest, if it has
    one listing the file (after a deliberate rewrite); returns whether it did."""
    from filelock import FileLock, Timeout

    path = Path(path)
    mpath = path.parent / MANIFEST_NAME
    if not mpath.is_file():
        return False
    # the folder's one manifest is shared by its datasets, whose own locks differ: two
    # rewrites of different files would each drop the other's entry
    from latbench.lock import LOCK_FILE_MODE, open_to_group

    # ".lck", not ".lock": a dataset named manifest.json.parquet has ".manifest.json.lock"
    lock_path = path.parent / MANIFEST_LOCK_NAME
    lock = FileLock(lock_path, mode=LOCK_FILE_MODE)
    try:
        lock.acquire(timeout=MANIFEST_WAIT_NOTICE_S)
    except Timeout:
        warnings.warn(
            f"waiting for another process updating {mpath} (Ctrl-C gives up)", stacklevel=2
        )
        lock.acquire()
    open_to_group(lock_path)  # one an earlier version left 0644
    try:
        _manifest.cache_clear()
        try:
            data = read_manifest(path.parent)
        except DatasetError:
            return False
        if path.name not in data["files"]:
            return False
        data = json.loads(json.dumps(data))
        data["files"][path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        with atomic_path(mpath) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")
        _manifest.cache_clear()
    finally:
        lock.release()
    _verify_cached.cache_clear()
    return True


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
    _verify_cached.cache_clear()
    return out


if __name__ == "__main__":  # python -m latbench.manifest data/
    print(write_manifest(sys.argv[1] if len(sys.argv) > 1 else _bundled_dir()))
