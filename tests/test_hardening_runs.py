"""Issue 12, runs and artifacts: keys, one writer per key, OS errors, --fresh, merge, manifests."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latbench.dataset import read_dataset, skeleton_frame, write_dataset
from latbench.harness import cli
from latbench.harness.keys import InvalidKeyError, validate_key
from latbench.harness.lock import KeyLocked, hold
from latbench.harness.manifest import (
    MANIFEST,
    MANIFEST_FORMAT,
    OLD_MANIFEST,
    ArtifactUnavailable,
    ManifestArtifacts,
    ManifestError,
)
from latbench.harness.merge import MergeError, merge_datasets

FAST = ["--runs", "2", "--group-size", "1", "--warmup", "0", "--quiet"]


@pytest.mark.parametrize(
    "key", ["../escaped", "a/b", "/abs", "x.layers", "x.raw", "x.predicted", "x.shard1of2",
            "x.pass1of2", "x..y", "", "１２", "x y", "-flag"],
)  # fmt: skip
def test_bad_keys_are_refused(key):
    with pytest.raises(InvalidKeyError):
        validate_key(key)


@pytest.mark.parametrize("key", ["xeon2c-onnxruntime-fp32", "host_1.cpu-tflite", "a+b"])
def test_good_keys_pass(key):
    assert validate_key(key) == key


def test_cli_refuses_an_escaping_key_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    # before: --key ../escaped wrote outside --out
    rc = cli.main(["--device", "cpu-onnxruntime", "--limit", "1", "--out", str(out),
                   "--key", "../escaped", *FAST])  # fmt: skip
    assert rc == 2 and "path separator" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*escaped*"))


def _hold_in_child(out: Path, stem: str):
    code = ("import sys, time\nfrom latbench.harness.lock import hold\n"
            f"with hold({str(out)!r}, {stem!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


@pytest.mark.slow  # real runs of the CLI
def test_second_run_on_a_key_refuses_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    first = write_dataset(skeleton_frame([0, 1, 2]), out / "k.parquet", {"source": "first"})
    before = first.read_bytes()
    child = _hold_in_child(out, "k")
    try:
        with pytest.raises(KeyLocked, match=f"PID {child.pid} on host"), hold(out, "k"):
            pass
        rc = cli.main(["--device", "cpu-onnxruntime", "--limit", "1", "--out", str(out),
                       "--key", "k", "--fresh", *FAST])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and f"PID {child.pid}" in err and len(err.strip().splitlines()) == 1
        assert first.read_bytes() == before  # even --fresh removed nothing
    finally:
        child.kill()
        child.wait()
    with hold(out, "k"):  # the kernel dropped the dead holder's lock
        pass


@pytest.mark.slow  # real runs of the CLI
def test_disk_full_is_one_line_keeps_parts_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    from latbench.harness import store

    args = ["--device", "cpu-onnxruntime", "--limit", "3", "--seed", "4", "--out",
            str(tmp_path / "out"), "--key", "full", "--cache", str(tmp_path / "cache"),
            "--flush-every", "1", *FAST]  # fmt: skip
    real = store.write_verified
    calls = {"n": 0}

    def full_after_one(table, path, **kw):
        calls["n"] += 1
        if calls["n"] > 2:  # run.json is not a part; let the first part through
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(table, path, **kw)

    monkeypatch.setattr(store, "write_verified", full_after_one)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "No space left" in err and "rerun" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    parts = list((tmp_path / "out" / "full.parts").glob("part-*.parquet"))
    assert parts and not (tmp_path / "out" / "full.parquet").exists()
    monkeypatch.setattr(store, "write_verified", real)
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "reused from earlier parts" in out and " 0 reused" not in out
    assert (read_dataset(tmp_path / "out" / "full.parquet")["status"] == "ok").sum() == 3


def test_fresh_removes_every_stale_file_of_the_key(tmp_path):
    from latbench.harness.lock import one_writer

    out = tmp_path / "out"
    (out / "k.parts").mkdir(parents=True)
    (out / "k.passes").mkdir()
    for name in (
        "k.parquet",
        "k.raw.h5",
        "k.layers.parquet",
        "k.parts/part-1.parquet",
        "other.raw.h5",
    ):
        (out / name).write_bytes(b"stale")

    class Plan:
        shard = (1, 1)

    seen = []
    one_writer(
        lambda profile, plan, **kw: seen.extend(
            sorted(p.name for p in out.iterdir() if p.name[0] != ".")
        )
    )(None, Plan(), out_dir=out, key="k", fresh=True)
    # before: --fresh left k.raw.h5 beside the new dataset
    assert seen == ["other.raw.h5"]


def test_a_run_without_raw_rows_leaves_no_earlier_raw_file(tmp_path):
    from latbench.harness.plan import make_plan, select_archs
    from latbench.harness.store import GraphResult, RunStore

    plan = make_plan(select_archs(limit=2, seed=3))
    store = RunStore(tmp_path, "k", {})
    store.open()
    store.raw_path.write_bytes(b"an earlier run's timings")
    for w in plan.work:
        store.add(GraphResult(w.key, w.timed_arch_id, "failed", error="x"))
    store.finalize(plan, {})
    assert not store.raw_path.exists()


# ---------------------------------------------------------------- merge


def _shard(tmp_path: Path, name: str, shard: str, ids, **meta) -> Path:
    df = skeleton_frame(ids)
    base = {"device": {"profile": "cpu-onnxruntime", "class": "desktop-cpu"},
            "runtime": {"name": "onnxruntime", "version": "1.0", "threads": 1},
            "precision": "fp32", "protocol": {"runs": 10}, "seed": 0,
            "selection_digest": "abc", "shard": shard}  # fmt: skip
    for k, v in meta.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) else v
    return write_dataset(df, tmp_path / name, base)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"runtime": {"threads": 4}}, "runtime.threads"),
     ({"runtime": {"version": "2.0"}}, "runtime.version"),
     ({"selection_digest": "zzz"}, "selection_digest"),
     ({"protocol": {"runs": 20}}, "protocol")],
)  # fmt: skip
def test_merge_refuses_shards_measured_differently(tmp_path, change, field):
    a = _shard(tmp_path, "a.parquet", "1/2", [0, 1])
    b = _shard(tmp_path, "b.parquet", "2/2", [2, 3], **change)
    with pytest.raises(MergeError, match=f"{field} differs"):
        merge_datasets([a, b], tmp_path / "m.parquet")


def test_merge_refuses_a_missing_or_repeated_shard_unless_partial(tmp_path):
    a = _shard(tmp_path, "a.parquet", "1/2", [0, 1])
    b = _shard(tmp_path, "b.parquet", "2/2", [2, 3])
    with pytest.raises(MergeError, match="2/2 missing"):
        merge_datasets([a], tmp_path / "m.parquet")
    with pytest.raises(MergeError, match="given twice"):
        merge_datasets([a, a, b], tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    merged = merge_datasets([a], tmp_path / "m.parquet", allow_partial=True)
    meta = read_dataset(merged).attrs["metadata"]
    assert meta["partial"] is True and meta["shards_present"] == ["1/2"]
    whole = read_dataset(merge_datasets([b, a], tmp_path / "w.parquet")).attrs["metadata"]
    assert whole["partial"] is False and whole["shards_present"] == ["1/2", "2/2"]


# ---------------------------------------------------------------- artifact manifests


def _artifact_folder(tmp_path: Path, file: str, payload: bytes, name: str = MANIFEST) -> Path:
    folder = tmp_path / "art"
    folder.mkdir(exist_ok=True)
    entry = {"kind": "graph", "key": "g", "timed_arch_id": 1, "status": "ok", "file": file,
             "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}  # fmt: skip
    manifest = {"format": MANIFEST_FORMAT, "build_format": "onnx", "seed": 0,
                "selection": {"arch_ids": [1], "shard": [1, 1]}, "entries": [entry]}  # fmt: skip
    (folder / name).write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("file", ["../secret.onnx", "../../../../etc/passwd", "ABSOLUTE"])
def test_manifest_paths_must_stay_inside_the_folder(tmp_path, file):
    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"outside")
    target = str(secret) if file == "ABSOLUTE" else file
    payload = Path("/etc/passwd").read_bytes() if "passwd" in file else b"outside"
    source = ManifestArtifacts(_artifact_folder(tmp_path, target, payload))
    # before: read and handed to the runner when the SHA-256 matched
    with pytest.raises(ArtifactUnavailable, match="outside"):
        source._verified("graph", "g")
    assert source.rejected


def test_manifest_entry_missing_fields_names_them(tmp_path):
    folder = _artifact_folder(tmp_path, "files/a.onnx", b"x")
    data = json.loads((folder / MANIFEST).read_text())
    del data["entries"][0]["sha256"]
    (folder / MANIFEST).write_text(json.dumps(data))
    # before: "error: sha256"
    with pytest.raises(ManifestError, match="lacks or has a malformed 'sha256'"):
        ManifestArtifacts(folder)


def test_old_manifest_name_is_still_read_and_data_homes_ignore_it(tmp_path, monkeypatch):
    import latbench
    from latbench import manifest as data_manifest

    folder = _artifact_folder(tmp_path, "files/a.onnx", b"x", name=OLD_MANIFEST)
    assert ManifestArtifacts(folder).manifest_path.name == OLD_MANIFEST
    # an artifact folder that is also the data home: datasets still load
    write_dataset(skeleton_frame([0, 1]), folder / "mine.parquet", {"source": "t"})
    data_manifest._manifest.cache_clear()
    monkeypatch.setenv("LATBENCH_HOME", str(folder))
    assert len(latbench.load("mine")) == 2


def test_a_tampered_cached_artifact_is_rebuilt_not_reused(tmp_path):
    from latbench.harness.artifacts import ArtifactCache
    from latbench.space import Arch

    cache = ArtifactCache(tmp_path / "cache")
    graph = Arch.parse(1234).graph if Arch.parse(1234).valid else Arch.parse(15624).graph
    path = cache.build(graph, "onnx", 0)
    good = path.read_bytes()
    path.write_bytes(good[:-8] + b"tampered")
    # before: the changed file was reused (and re-hashed into a new manifest)
    assert cache.get(graph, "onnx", 0) is None
    assert cache.build(graph, "onnx", 0).read_bytes() == good


def test_non_ascii_digits_and_binary_arch_files(tmp_path):
    from latbench.cli import parse_arch_arg
    from latbench.harness.plan import read_arch_file
    from latbench.space import ArchError

    with pytest.raises(ArchError, match="non-ASCII"):
        parse_arch_arg("１２３")  # before: arch 123
    listing = tmp_path / "archs.txt"
    listing.write_text("12\n１２３\n", encoding="utf-8")
    with pytest.raises(ArchError, match=f"{listing}:2:"):
        read_arch_file(listing)
    listing.write_bytes(b"12\n13\n\xff\xfe\x00binary")
    with pytest.raises(ArchError, match=f"{listing}:3: not UTF-8"):  # before: no file or line
        read_arch_file(listing)
    assert [a.id for a in read_arch_file(_ascii(tmp_path))] == [12, 13]


def _ascii(tmp_path: Path) -> Path:
    p = tmp_path / "ok.txt"
    p.write_text("12\n13  # comment\n")
    return p
