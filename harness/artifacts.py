"""Build and cache model artifacts of pruned graphs and single layers (DESIGN §8).

An artifact is one file per (target, format, seed, toolchain versions), where the
target is a :class:`~latbench.graph.PrunedGraph` (the whole network) or a
:class:`~latbench.network.Layer` (that layer alone). Its name is a hash of that key;
a JSON sidecar next to it holds the readable key. Writes go to a temporary file in
the cache directory and are renamed into place, so concurrent writers of one key
leave one complete file (the last rename wins; both wrote the same model).

:meth:`ArtifactCache.build_many` converts in a pool of spawned processes so that a
caller can keep a device busy with finished artifacts while others convert.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from importlib import metadata
from pathlib import Path

from latbench.graph import PrunedGraph
from latbench.network import Layer

__all__ = [
    "BUILDER_VERSION",
    "FORMATS",
    "ArtifactCache",
    "Target",
    "build_artifact",
    "default_cache_dir",
    "toolchain_versions",
]

FORMATS: dict[str, str] = {
    "keras": ".keras",
    "tflite": ".tflite",
    "tflite-int8": ".tflite",
    "onnx": ".onnx",
}
"""Artifact formats and their file suffixes."""

BUILDER_VERSION = 1
"""Bump when a builder's output changes for the same inputs (invalidates the cache)."""

Target = PrunedGraph | Layer

_TF_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")


@functools.cache
def _version(*dists: str) -> str:
    for dist in dists:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return "missing"


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown artifact format {fmt!r}; choose one of {', '.join(FORMATS)}")


def toolchain_versions(fmt: str) -> dict[str, str]:
    """Versions of the packages whose output ends up in a ``fmt`` artifact."""
    _check_fmt(fmt)
    versions = {"builder": str(BUILDER_VERSION), "numpy": _version("numpy")}
    if fmt == "onnx":
        from latbench.harness.build_onnx import IR_VERSION, OPSET

        versions |= {"onnx": _version("onnx"), "opset": str(OPSET), "ir": str(IR_VERSION)}
    else:
        versions |= {"tensorflow": _version(*_TF_DISTS), "keras": _version("keras")}
    return versions


def default_cache_dir() -> Path:
    """``<data home>/cache/artifacts``."""
    from latbench.loader import data_home

    return data_home() / "cache" / "artifacts"


def _target_key(target: Target) -> dict[str, object]:
    if isinstance(target, PrunedGraph):
        if not target.valid:
            raise ValueError("an invalid graph (output not reachable from input) has no network")
        return {"kind": "graph", "key": target.key}
    if isinstance(target, Layer):
        return {"kind": "layer", "key": target.signature, "layer": dataclasses.asdict(target)}
    raise TypeError(f"target must be a PrunedGraph or a Layer, not {type(target).__name__}")


def build_artifact(target: Target, fmt: str, seed: int, dest: Path) -> None:
    """Build ``target`` as a ``fmt`` artifact with weights from ``seed`` into ``dest``.

    ``dest`` must carry the format's suffix (Keras insists on ``.keras``).
    """
    _check_fmt(fmt)
    layer = isinstance(target, Layer)
    if fmt == "onnx":
        from latbench.harness.build_onnx import build_layer_onnx, build_onnx

        model = build_layer_onnx(target, seed) if layer else build_onnx(target, seed)
        dest.write_bytes(model.SerializeToString())
        return
    import keras

    from latbench.harness.build_keras import build_keras, build_layer_keras

    try:
        model = build_layer_keras(target, seed) if layer else build_keras(target, seed)
        if fmt == "keras":
            model.save(dest)
        else:
            from latbench.harness.build_tflite import convert_tflite

            dest.write_bytes(convert_tflite(model, quantize=fmt == "tflite-int8", seed=seed))
    finally:
        # Long-lived workers build hundreds of models; free each one's graph state.
        keras.backend.clear_session()


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    # Like latbench.dataset.atomic_path, but the temporary name keeps the suffix.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _worker_init(log_path: str, nice: int, fmt: str) -> None:
    # Runs once per spawned worker: quiet TF, keep its C++ chatter out of the
    # caller's terminal (in a log file, not lost), and import the builders once.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(OSError):
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    if nice:
        with contextlib.suppress(OSError, AttributeError):
            os.nice(nice)
    if fmt == "onnx":
        import latbench.harness.build_onnx  # noqa: F401

        return
    import tensorflow as tf

    # One thread per worker: the pool, not TF, provides the parallelism.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import latbench.harness.build_keras
    import latbench.harness.build_tflite  # noqa: F401


def _worker_build(root: str, target: Target, fmt: str, seed: int) -> str:
    return str(ArtifactCache(Path(root)).build(target, fmt, seed))


class ArtifactCache:
    """A directory of built artifacts keyed by target, format, seed and toolchain."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        """Cache under ``root`` (default :func:`default_cache_dir`); created on first write."""
        self.root = Path(root) if root is not None else default_cache_dir()

    def key(self, target: Target, fmt: str, seed: int = 0) -> dict[str, object]:
        """The readable key that names ``target``'s ``fmt`` artifact."""
        return {
            **_target_key(target),
            "format": fmt,
            "seed": int(seed),
            "toolchain": toolchain_versions(fmt),
        }

    def path_for(self, target: Target, fmt: str, seed: int = 0) -> Path:
        """Where ``target``'s ``fmt`` artifact lives (whether or not it is built).

        Raises ``ValueError`` for an unknown format or an invalid graph and
        ``TypeError`` for a target that is neither a graph nor a layer.
        """
        key = self.key(target, fmt, seed)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.root / f"{key['kind']}-{fmt}-{digest}{FORMATS[fmt]}"

    def get(self, target: Target, fmt: str, seed: int = 0) -> Path | None:
        """The cached artifact's path, or ``None`` when it is not built."""
        path = self.path_for(target, fmt, seed)
        return path if path.is_file() else None

    def build(self, target: Target, fmt: str, seed: int = 0, *, force: bool = False) -> Path:
        """Return the artifact's path, building it in this process unless cached.

        Raises whatever the builder raises (``ValueError`` for an invalid graph,
        ``RuntimeError`` for a failed TFLite conversion); nothing is left behind.
        """
        path = self.path_for(target, fmt, seed)
        if path.is_file() and not force:
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with _atomic(path) as tmp:
            build_artifact(target, fmt, seed, tmp)
        sidecar = {
            **self.key(target, fmt, seed),
            "file": path.name,
            "bytes": path.stat().st_size,
            "build_s": round(time.perf_counter() - start, 3),
        }
        with _atomic(path.with_suffix(path.suffix + ".json")) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))
        return path

    def build_many(
        self,
        targets: Iterable[Target],
        fmt: str,
        seed: int = 0,
        workers: int | None = None,
        *,
        nice: int = 5,
    ) -> Iterator[tuple[Target, Path | BaseException]]:
        """Build ``targets`` in a process pool; yield ``(target, path or error)``.

        Cache hits and targets rejected up front (bad type, invalid graph) are
        yielded first, without starting the pool; the rest are yielded as their
        builds finish. A failed build is yielded as its exception and the others go
        on. Duplicate targets are built once and yielded once each. ``workers``
        defaults to half the CPU cores (at least 1), leaving room for timing; workers
        are spawned (TensorFlow is not fork-safe), run TF single-threaded at
        ``nice`` priority, and log to ``<root>/build.log``. Safe to iterate from a
        non-main thread; closing the iterator early cancels builds not yet started.
        """
        _check_fmt(fmt)
        pending: dict[Path, list[Target]] = {}
        for target in targets:
            try:
                path = self.path_for(target, fmt, seed)
            except (TypeError, ValueError) as exc:
                yield target, exc
                continue
            if path.is_file():
                yield target, path
            else:
                pending.setdefault(path, []).append(target)
        if not pending:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        n = workers if workers is not None else max(1, (os.cpu_count() or 2) // 2)
        pool = ProcessPoolExecutor(
            max_workers=max(1, min(n, len(pending))),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(str(self.root / "build.log"), nice, fmt),
        )
        try:
            futures = {
                pool.submit(_worker_build, str(self.root), group[0], fmt, seed): group
                for group in pending.values()
            }
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        result: Path | BaseException = Path(fut.result())
                    except Exception as exc:  # a worker's error, or a dead pool
                        result = exc
                    for target in futures[fut]:
                        yield target, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
