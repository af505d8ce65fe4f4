"""Build and cache model artifacts of pruned graphs and single layers (docs/design.md §8).

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
import errno
import functools
import hashlib
import json
import multiprocessing
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from importlib import metadata
from pathlib import Path
from typing import Any

from latbench.graph import PrunedGraph
from latbench.harness.build.edge import EDGE_FORMATS, build_format, uses_tensorflow
from latbench.network import Layer

__all__ = [
    "BUILDER_VERSION",
    "FORMATS",
    "ArtifactCache",
    "Target",
    "TFLITE_BUILDERS",
    "artifact_spec",
    "build_artifact",
    "default_cache_dir",
    "ledger_dir",
    "tflite_builder",
    "toolchain_versions",
]

FORMATS: dict[str, str] = {
    "keras": ".keras",
    "tflite": ".tflite",
    "tflite-int8": ".tflite",
    "onnx": ".onnx",
    **EDGE_FORMATS,
}
"""Artifact (build) formats and their file suffixes; the edge ones come from build_edge."""

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


def artifact_spec(profile: Any) -> tuple[str, dict[str, Any]]:
    """``(build format, build options)`` of a profile: its artifact format at its precision
    (``dlc`` + int8 -> ``dlc-int8``) and its ``[options]`` (tool paths and arguments)."""
    return build_format(profile.artifact_format, profile.precision), dict(profile.options)


TFLITE_BUILDERS = ("direct", "converter")
"""Writers of ``.tflite`` artifacts: the direct schema builder (default) and the TF converter."""


def tflite_builder(fmt: str, options: Mapping[str, Any] | None = None) -> str | None:
    """Who writes a ``.tflite``-family artifact (``[options] builder``, default ``direct``);
    ``None`` for formats that are not ``.tflite``. Raises ``ValueError`` for an unknown one."""
    if fmt not in ("tflite", "tflite-int8", "edgetpu-tflite"):
        return None
    builder = (options or {}).get("builder", "direct")
    if builder not in TFLITE_BUILDERS:
        raise ValueError(
            f"unknown TFLite builder {builder!r} ([options] builder / --builder); "
            f"choose one of {', '.join(TFLITE_BUILDERS)}"
        )
    return str(builder)


def _uses_tensorflow(fmt: str, options: Mapping[str, Any] | None) -> bool:
    return uses_tensorflow(fmt) and tflite_builder(fmt, options) != "direct"


def toolchain_versions(fmt: str, options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Versions of the packages (and edge tools) whose output ends up in a ``fmt`` artifact.

    ``.tflite`` formats also record their builder, so direct and converter artifacts
    never share a cache entry.
    """
    _check_fmt(fmt)
    versions = {"builder": str(BUILDER_VERSION), "numpy": _version("numpy")}
    builder = tflite_builder(fmt, options)
    if not uses_tensorflow(fmt):
        from latbench.harness.build.onnx_net import IR_VERSION, OPSET

        versions |= {"onnx": _version("onnx"), "opset": str(OPSET), "ir": str(IR_VERSION)}
    elif builder == "direct":
        from latbench.harness.build.tflite_direct import DIRECT_BUILDER_VERSION

        versions |= {
            "tflite_builder": f"direct-{DIRECT_BUILDER_VERSION}",
            "tflite_schema": _version("tflite"),
            "flatbuffers": _version("flatbuffers"),
        }
    else:
        versions |= {"tensorflow": _version(*_TF_DISTS), "keras": _version("keras")}
        if builder is not None:
            versions["tflite_builder"] = "converter"
    if fmt in EDGE_FORMATS:
        from latbench.harness.build.edge import edge_toolchain

        versions |= edge_toolchain(fmt, options or {})
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


def build_artifact(
    target: Target, fmt: str, seed: int, dest: Path, options: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Build ``target`` as a ``fmt`` artifact with weights from ``seed`` into ``dest``.

    ``dest`` must carry the format's suffix (Keras insists on ``.keras``). Edge formats
    take tool paths and arguments from ``options`` and return their build report (the
    Edge TPU compiler's summary, the model's inputs); the others return ``None``.
    """
    _check_fmt(fmt)
    if fmt in EDGE_FORMATS:
        from latbench.harness.build.edge import build_edge

        _target_key(target)  # rejects invalid graphs and foreign types before any tool runs
        return build_edge(target, fmt, seed, dest, options or {})
    layer = isinstance(target, Layer)
    if fmt == "onnx":
        from latbench.harness.build.onnx_net import build_layer_onnx, build_onnx

        model = build_layer_onnx(target, seed) if layer else build_onnx(target, seed)
        dest.write_bytes(model.SerializeToString())
        return None
    if fmt != "keras" and tflite_builder(fmt, options) == "direct":
        from latbench.harness.build.tflite_direct import (
            build_layer_tflite_direct,
            build_tflite_direct,
        )

        build = build_layer_tflite_direct if layer else build_tflite_direct
        dest.write_bytes(build(target, seed, quantize=fmt == "tflite-int8"))
        return None
    import keras

    from latbench.harness.build.keras_net import build_keras, build_layer_keras

    try:
        model = build_layer_keras(target, seed) if layer else build_keras(target, seed)
        if fmt == "keras":
            model.save(dest)
        else:
            from latbench.harness.build.tflite_converter import convert_tflite

            dest.write_bytes(convert_tflite(model, quantize=fmt == "tflite-int8", seed=seed))
    finally:
        # Long-lived workers build hundreds of models; free each one's graph state.
        keras.backend.clear_session()
    return None


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


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
"""Build errors that are the disk's, not the graph's: they end the run (exit 2)."""


def _worker_init(log_path: str, nice: int, fmt: str, use_tf: bool = True) -> None:
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
    if not uses_tensorflow(fmt):
        import latbench.harness.build.onnx_net  # noqa: F401

        return
    if not use_tf:  # the direct .tflite builder: no TensorFlow in the worker
        import latbench.harness.build.tflite_direct  # noqa: F401

        return
    import tensorflow as tf

    # One thread per worker: the pool, not TF, provides the parallelism.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import latbench.harness.build.keras_net
    import latbench.harness.build.tflite_converter  # noqa: F401


def _worker_build(
    root: str, target: Target, fmt: str, seed: int, options: Mapping[str, Any] | None
) -> str:
    return str(ArtifactCache(Path(root)).build(target, fmt, seed, options=options))


def _sha256(path: Path) -> str:
    from latbench.manifest import sha256_file

    return sha256_file(path)


def ledger_dir() -> Path:
    """Where this builder records what it built: ``<data home>/.artifact-ledger``.

    It lies outside every cache folder, so whoever can write a (shared) cache cannot
    vouch for its files: only an entry this data home's builder wrote and recorded here
    is reused; anything else is built again.
    """
    from latbench.loader import data_home

    return data_home() / ".artifact-ledger"


def _ledger_entry(path: Path) -> Path:
    folder = hashlib.sha256(str(path.parent.resolve()).encode()).hexdigest()[:24]
    return ledger_dir() / folder / f"{path.name}.sha256"


def _record(path: Path, digest: str) -> None:
    entry = _ledger_entry(path)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(entry) as tmp:
        tmp.write_text(digest)


def _intact(path: Path) -> bool:
    """Whether a cached artifact may be reused: this builder recorded building exactly it.

    The file's SHA-256 must equal the one the ledger (:func:`ledger_dir`, outside the
    cache) recorded when this data home's builder wrote it; its sidecar must agree. A
    changed, swapped or foreign file (another user's build in a shared cache, an edit
    with a rewritten sidecar) is not reused: it is built again.
    """
    try:
        st = path.stat()
        sidecar = json.loads(path.with_suffix(path.suffix + ".json").read_text())
        trusted = _ledger_entry(path).read_text().strip()
    except (OSError, ValueError):
        return False
    want = sidecar.get("sha256") if isinstance(sidecar, dict) else None
    if want != trusted or sidecar.get("bytes") != st.st_size:
        return False
    return _hash_of(str(path), st.st_mtime_ns, st.st_size) == trusted


@functools.lru_cache(maxsize=4096)
def _hash_of(path: str, mtime_ns: int, size: int) -> str:
    return _sha256(Path(path))


class ArtifactCache:
    """A directory of built artifacts keyed by target, format, seed and toolchain."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        """Cache under ``root`` (default :func:`default_cache_dir`); created on first write."""
        self.root = Path(root) if root is not None else default_cache_dir()

    def key(
        self, target: Target, fmt: str, seed: int = 0, options: Mapping[str, Any] | None = None
    ) -> dict[str, object]:
        """The readable key that names ``target``'s ``fmt`` artifact."""
        return {
            **_target_key(target),
            "format": fmt,
            "seed": int(seed),
            "toolchain": toolchain_versions(fmt, options),
        }

    def path_for(
        self, target: Target, fmt: str, seed: int = 0, options: Mapping[str, Any] | None = None
    ) -> Path:
        """Where ``target``'s ``fmt`` artifact lives (whether or not it is built).

        Raises ``ValueError`` for an unknown format or an invalid graph and
        ``TypeError`` for a target that is neither a graph nor a layer.
        """
        key = self.key(target, fmt, seed, options)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.root / f"{key['kind']}-{fmt}-{digest}{FORMATS[fmt]}"

    def get(
        self, target: Target, fmt: str, seed: int = 0, options: Mapping[str, Any] | None = None
    ) -> Path | None:
        """The cached artifact's path, or ``None`` when it is not built."""
        path = self.path_for(target, fmt, seed, options)
        return path if _intact(path) else None

    def report(
        self, target: Target, fmt: str, seed: int = 0, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The build report stored with a built artifact (edge formats), else ``None``."""
        path = self.get(target, fmt, seed, options)
        if path is None:
            return None
        try:
            sidecar = json.loads(path.with_suffix(path.suffix + ".json").read_text())
        except (OSError, ValueError):
            return None
        return sidecar.get("report")

    def build(
        self, target: Target, fmt: str, seed: int = 0, *, force: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> Path:  # fmt: skip
        """Return the artifact's path, building it in this process unless cached.

        ``options`` (a profile's ``[options]``) tell edge builders where their tools are.
        Raises whatever the builder raises (``ValueError`` for an invalid graph,
        ``RuntimeError`` for a failed TFLite conversion or edge tool); nothing is left behind.
        """
        path = self.path_for(target, fmt, seed, options)
        if not force and _intact(path):
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with _atomic(path) as tmp:
            report = build_artifact(target, fmt, seed, tmp, options)
        st = path.stat()
        digest = _hash_of(str(path), st.st_mtime_ns, st.st_size)  # a later get() hashes no more
        sidecar = {
            **self.key(target, fmt, seed, options),
            "file": path.name,
            "bytes": st.st_size,
            "sha256": digest,
            "build_s": round(time.perf_counter() - start, 3),
        }
        if report is not None:
            sidecar["report"] = report
        with _atomic(path.with_suffix(path.suffix + ".json")) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))
        _record(path, digest)  # last: an interrupted build is never trusted
        return path

    def build_many(
        self,
        targets: Iterable[Target],
        fmt: str,
        seed: int = 0,
        workers: int | None = None,
        *,
        nice: int = 5,
        options: Mapping[str, Any] | None = None,
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
        ``options`` go to :meth:`build` (edge tool paths and arguments).
        """
        _check_fmt(fmt)
        pending: dict[Path, list[Target]] = {}
        for target in targets:
            try:
                path = self.path_for(target, fmt, seed, options)
            except (TypeError, ValueError) as exc:
                yield target, exc
                continue
            if _intact(path):  # a cached file that no longer matches is rebuilt
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
            initargs=(str(self.root / "build.log"), nice, fmt, _uses_tensorflow(fmt, options)),
        )
        try:
            futures = {
                pool.submit(_worker_build, str(self.root), group[0], fmt, seed, options): group
                for group in pending.values()
            }
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        result: Path | BaseException = Path(fut.result())
                    except OSError as exc:
                        if exc.errno in _DISK_ERRNOS:  # a full disk fails every build: stop
                            raise
                        result = exc
                    except Exception as exc:  # a worker's error, or a dead pool
                        result = exc
                    for target in futures[fut]:
                        yield target, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
