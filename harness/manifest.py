"""Split build and run: a folder of artifacts with a manifest, built on one machine and
timed on another (docs/design.md §8).

``latbench-measure build`` writes ``ARTIFACTS/files/`` (the artifacts with their JSON
sidecars, an :class:`~latbench.harness.artifacts.ArtifactCache`, so a rerun only builds
what is missing, failed or no longer matches its recorded SHA-256) and
``ARTIFACTS/latbench-artifacts.json`` (older folders: ``manifest.json``, still read; the
new name never collides with a data folder's ``manifest.json``): the profile, build format,
seed, selection, build host and toolchain versions, and per graph (and layer) its
file, SHA-256, size and build report -- or the reason its build failed.
``latbench-measure run`` reads it back through :class:`ManifestArtifacts`, which hands
the session each artifact after checking that its file lies inside the folder and
matches its checksum, and counts those that do not (``run`` then exits 2).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from latbench.graph import PrunedGraph
from latbench.manifest import sha256_file  # one checksum routine for all manifests
from latbench.network import Layer

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "OLD_MANIFEST",
    "ArtifactUnavailable",
    "ManifestArtifacts",
    "ManifestError",
    "build_artifacts",
    "sha256_file",
]

MANIFEST = "latbench-artifacts.json"
OLD_MANIFEST = "manifest.json"
"""Name of the manifest before v0.2; read when ``MANIFEST`` is absent."""
MANIFEST_FORMAT = "latbench-artifacts/1"
_ENTRY_FIELDS = {"kind": str, "key": str, "status": str}
_OK_FIELDS = {"file": str, "sha256": str, "bytes": int}


class ManifestError(ValueError):
    """A manifest is missing, malformed, or does not fit the profile it is run with."""


class ArtifactUnavailable(RuntimeError):
    """One artifact of a manifest cannot be used (failed build, missing file, bad checksum)."""


def _target_id(target: Any) -> tuple[str, str]:
    if isinstance(target, PrunedGraph):
        return "graph", target.key
    if isinstance(target, Layer):
        return "layer", target.signature
    raise TypeError(f"target must be a PrunedGraph or a Layer, not {type(target).__name__}")


def build_artifacts(
    profile: Any,
    plan: Any,
    out_dir: str | os.PathLike[str],
    *,
    selection: Sequence[int],
    seed: int = 0,
    workers: int | None = None,
    layers: bool = False,
    description: str = "",
    on_built: Any = None,
) -> Path:
    """Build every artifact ``plan`` (and with ``layers`` every distinct layer) needs on
    ``profile`` into ``out_dir``; write and return ``out_dir/latbench-artifacts.json``.

    ``selection`` is the full selected ``arch_id`` list (before sharding) so that the
    run side rebuilds the same plan. A failed build is recorded with its reason and
    the others go on; :class:`~latbench.harness.tools.ToolError` is raised up front when
    the build tools are missing.
    """
    from latbench.dataset import atomic_path
    from latbench.harness.artifacts import ArtifactCache, artifact_spec, toolchain_versions
    from latbench.harness.build.edge import build_problems
    from latbench.harness.host import host_fingerprint
    from latbench.harness.tools import ToolError
    from latbench.network import distinct_layers

    fmt, options = artifact_spec(profile)
    problems = build_problems(fmt, options)
    if problems:
        raise ToolError(f"cannot build {fmt} artifacts here: " + "; ".join(problems))
    out = Path(out_dir)
    cache = ArtifactCache(out / "files")
    targets: list[Any] = [w.graph for w in plan.work] + (distinct_layers() if layers else [])
    timed = {w.key: w.timed_arch_id for w in plan.work}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for target, result in cache.build_many(targets, fmt, seed, workers, options=options):
        kind, key = _target_id(target)
        entry: dict[str, Any] = {"kind": kind, "key": key}
        if kind == "graph":
            entry["timed_arch_id"] = timed[key]
        if isinstance(result, BaseException):
            entry |= {"status": "failed", "error": f"{type(result).__name__}: {result}"}
        else:
            path = Path(result)
            entry |= {
                "status": "ok",
                "file": path.relative_to(out).as_posix(),
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
            }
            report = cache.report(target, fmt, seed, options)
            if report is not None:
                entry["report"] = report
        results[(kind, key)] = entry
        if on_built is not None:
            on_built(entry)
    manifest = {
        "format": MANIFEST_FORMAT,
        "profile": profile.name,
        "artifact_format": profile.artifact_format,
        "build_format": fmt,
        "precision": profile.precision,
        "seed": int(seed),
        "selection": {
            "arch_ids": [int(i) for i in selection],
            "shard": list(plan.shard),
            "selection_digest": plan.selection_digest,
            "description": description,
            "layers": bool(layers),
        },
        "toolchain": toolchain_versions(fmt, options),
        "build_host": host_fingerprint(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "entries": [results[_target_id(t)] for t in dict.fromkeys(targets)],
    }
    path = out / MANIFEST
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1))
    return path


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refused unless it resolves inside ``root`` (no ``..``, absolute
    paths or symlinks out of the folder)."""
    base = root.resolve()
    path = (root / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(base):
        raise ArtifactUnavailable(
            f"manifest entry file {name[:80]!r} points outside {root}; refusing to read it"
        )
    return path


def _checked_entries(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's entries, each with the fields its status needs, or ManifestError."""
    entries = data.get("entries", [])
    if not isinstance(entries, list):
        raise ManifestError(f"{path}: 'entries' must be a list")
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: entry {n} is not an object")
        need = dict(_ENTRY_FIELDS) | (_OK_FIELDS if entry.get("status") == "ok" else {})
        bad = [f for f, t in need.items() if not isinstance(entry.get(f), t)]
        if bad:
            raise ManifestError(
                f"{path}: entry {n} ({entry.get('kind', '?')} {str(entry.get('key', '?'))[:60]})"
                f" lacks or has a malformed {', '.join(repr(b) for b in bad)}; rebuild the"
                " folder with 'latbench-measure build'"
            )
    return entries


MAX_MANIFEST_BYTES = 64 << 20
"""Largest manifest read (15,625 graphs and their layers take a few MB)."""


def _read_capped(path: Path) -> str:
    from latbench.files import FileTooLarge, read_capped

    try:
        return read_capped(path, MAX_MANIFEST_BYTES).decode("utf-8")
    except FileTooLarge as exc:
        raise ValueError(f"{exc}, not a manifest") from None


def _check_header(path: Path, data: dict[str, Any]) -> None:
    """Refuse a manifest whose seed, selection or shard is out of range (one line)."""
    from latbench.harness.options import check_shard, check_value
    from latbench.space import N_ARCHS

    try:
        if not isinstance(data.get("build_format"), str):
            raise ValueError("'build_format' is not a string")
        check_value("seed", data.get("seed"), "'seed'")
        sel = data.get("selection")
        if not isinstance(sel, dict):
            raise ValueError("'selection' is not an object")
        ids = sel.get("arch_ids")
        if not isinstance(ids, list) or not 0 < len(ids) <= N_ARCHS:
            raise ValueError(f"'selection.arch_ids' is not a list of 1..{N_ARCHS} ids")
        if not all(type(i) is int and 0 <= i < N_ARCHS for i in ids):
            raise ValueError(f"'selection.arch_ids' holds an entry outside 0..{N_ARCHS - 1}")
        check_shard(sel.get("shard", [1, 1]), "'selection.shard'")
    except ValueError as exc:
        raise ManifestError(
            f"{path}: {exc}; rebuild the folder with 'latbench-measure build'"
        ) from None


class ManifestArtifacts:
    """The artifacts of a manifest folder, served like an ``ArtifactCache`` to the session."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Read the folder's manifest; :class:`ManifestError` if absent or malformed."""
        self.root = Path(directory)
        path = self.root / MANIFEST
        if not path.exists() and (self.root / OLD_MANIFEST).exists():
            path = self.root / OLD_MANIFEST
        self.manifest_path = path
        self.rejected: list[str] = []
        """Artifacts refused on the way to the runner (checksum, missing, outside)."""
        try:
            data = json.loads(_read_capped(path))
        except FileNotFoundError:
            raise ManifestError(
                f"no {MANIFEST} in {self.root}: build the artifacts first with "
                f"'latbench-measure build --device PROFILE --out {self.root}'"
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            text = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise ManifestError(f"cannot read {path}: {text}") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"{path} is not a LatBench artifact manifest ({MANIFEST_FORMAT})")
        _check_header(path, data)
        self.data: dict[str, Any] = data
        self.entries = {(e["kind"], e["key"]): e for e in _checked_entries(path, data)}

    @property
    def build_format(self) -> str:
        """The build format of every artifact in the folder."""
        return str(self.data["build_format"])

    @property
    def seed(self) -> int:
        """The seed the artifacts' weights were drawn with."""
        return int(self.data["seed"])

    def selection(self) -> tuple[list[int], tuple[int, int]]:
        """The selected ``arch_id`` list and the shard the folder was built for."""
        sel = self.data["selection"]
        shard = sel.get("shard", [1, 1])
        return [int(i) for i in sel["arch_ids"]], (int(shard[0]), int(shard[1]))

    def check_profile(self, profile: Any) -> None:
        """Raise :class:`ManifestError` unless the folder was built for ``profile``'s format."""
        from latbench.harness.artifacts import artifact_spec

        fmt, _ = artifact_spec(profile)
        if fmt != self.build_format:
            raise ManifestError(
                f"{self.root} holds {self.build_format} artifacts (built for profile "
                f"{self.data.get('profile')!r}); profile {profile.name!r} needs {fmt}"
            )

    def provenance(self) -> dict[str, Any]:
        """Build host, toolchain, time and profile, for the dataset's metadata."""
        host = self.data.get("build_host", {})
        return {
            "profile": self.data.get("profile"),
            "build_format": self.build_format,
            "created": self.data.get("created"),
            "toolchain": self.data.get("toolchain", {}),
            "host": {k: host.get(k) for k in ("hostname", "cpu_model", "machine", "os")},
            "manifest_sha256": sha256_file(self.manifest_path),
        }

    def path(self, target: Any) -> Path:
        """The verified artifact of ``target``; :class:`ArtifactUnavailable` says why not."""
        return self._verified(*_target_id(target))

    def _verified(self, kind: str, key: str) -> Path:
        entry = self.entries.get((kind, key))
        if entry is None:
            raise ArtifactUnavailable(f"{kind} {key} is not in {self.manifest_path}")
        if entry.get("status") != "ok":
            raise ArtifactUnavailable(f"its build failed: {entry.get('error', 'no reason')}")
        try:
            path = _inside(self.root, entry["file"])
            if not path.is_file():
                raise ArtifactUnavailable(f"{path} is missing (copy the whole artifacts folder)")
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise ArtifactUnavailable(
                    f"checksum mismatch for {path}: sha256 {digest[:16]}..., manifest says "
                    f"{entry['sha256'][:16]}... (corrupted or changed since the build)"
                )
        except ArtifactUnavailable as exc:
            self.rejected.append(f"{kind} {key}: {exc}")
            raise
        return path

    def first_ok(self) -> Path | None:
        """The first artifact that verifies (for ``run --check``), or ``None``."""
        for (kind, key), entry in self.entries.items():
            if kind == "graph" and entry.get("status") == "ok":
                try:
                    return self._verified(kind, key)
                except ArtifactUnavailable:
                    continue
        return None

    def build_many(
        self, targets: Iterable[Any], fmt: str, seed: int = 0, workers: int | None = None,
        *, options: Mapping[str, Any] | None = None, nice: int = 0,
    ) -> Iterator[tuple[Any, Path | BaseException]]:  # fmt: skip
        """Yield ``(target, verified path or error)`` in order; builds nothing."""
        if fmt != self.build_format or int(seed) != self.seed:
            raise ManifestError(
                f"{self.root} holds {self.build_format} artifacts with seed {self.seed}, "
                f"not {fmt} with seed {seed}"
            )
        for target in targets:
            try:
                yield target, self.path(target)
            except (ArtifactUnavailable, TypeError) as exc:
                yield target, exc

    def report(
        self, target: Any, fmt: str, seed: int = 0, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The build report the manifest holds for ``target``, if any."""
        entry = self.entries.get(_target_id(target))
        return None if entry is None else entry.get("report")
