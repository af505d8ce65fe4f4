"""The ``latbench`` command line."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import latbench
from latbench.cli import build_parser, main, parse_arch_arg
from latbench.space import N_ARCHS, Arch, ArchError, all_archs, arch_id, parse_arch

CPU_FILE = "desktop-cpu-core-i7-7820x-fp32"
CPU_KEY = "desktop-cpu-i7-7820x-fp32"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def release() -> dict:
    rng = np.random.default_rng(11)
    valid = [a.vector for a in all_archs() if a.valid]
    chosen = [valid[i] for i in sorted(rng.choice(len(valid), 300, replace=False))]
    chosen.append(parse_arch(ARCH))
    return {
        v: np.float64(x) for v, x in zip(chosen, rng.uniform(1e-3, 2e-2, len(chosen)), strict=True)
    }


@pytest.fixture
def release_dir(tmp_path, release) -> Path:
    d = tmp_path / "LatBench"
    d.mkdir()
    (d / f"{CPU_FILE}.pickle").write_bytes(pickle.dumps(release, protocol=3))
    return d


@pytest.fixture
def home(tmp_path, release_dir, capsys) -> Path:
    h = tmp_path / "home"
    assert main(["import", "eagle", str(release_dir), "--data-home", str(h)]) == 0
    capsys.readouterr()
    return h


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [[], *[[c] for c in _subcommands()]])
def test_help_everywhere(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: latbench")
    if argv:
        assert f"latbench {argv[0]}" in out


def test_subcommands_exist():
    assert {"devices", "info", "import", "fetch", "arch", "export"} <= set(_subcommands())


def test_import_prints_what_it_wrote(tmp_path, release_dir, release, capsys):
    h = tmp_path / "home"
    rc, out, err = _run(capsys, "import", "eagle", str(release_dir), "--data-home", str(h))
    assert rc == 0 and err == ""
    n_ok = len(release)
    n_invalid = N_ARCHS - sum(a.valid for a in all_archs())
    path = h / f"{CPU_KEY}.parquet"
    assert f"wrote {CPU_KEY}: ok {n_ok}, invalid {n_invalid}, missing" in out
    assert str(path) in out
    df = latbench.read_dataset(path)
    assert (df["status"] == "ok").sum() == n_ok


def test_import_refuses_existing_without_overwrite(home, release_dir, capsys):
    path = home / f"{CPU_KEY}.parquet"
    before = path.read_bytes()
    rc, out, err = _run(capsys, "import", "eagle", str(release_dir), "--data-home", str(home))
    assert rc == 2 and out == ""
    assert "already exist" in err and "--overwrite" in err
    assert path.read_bytes() == before
    argv = ["import", "eagle", str(release_dir), "--data-home", str(home), "--overwrite"]
    assert _run(capsys, *argv)[0] == 0


def test_malicious_pickle_is_refused_with_one_line(tmp_path, release_dir, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (release_dir / f"{CPU_FILE}.pickle").write_bytes(pickle.dumps(Evil(), protocol=3))
    h = tmp_path / "home"
    rc, out, err = _run(capsys, "import", "eagle", str(release_dir), "--data-home", str(h))
    assert rc == 2 and out == ""
    assert err.startswith("latbench: error: ") and "system" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()
    assert not h.exists() or not any(h.iterdir())


def test_devices_table_and_json(home, capsys):
    rc, out, _ = _run(capsys, "devices", "--data-home", str(home))
    assert rc == 0
    assert CPU_KEY in out and "help-titan-rtx-1" in out
    rc, out, _ = _run(capsys, "devices", "--available", "--json", "--data-home", str(home))
    records = json.loads(out)
    assert CPU_KEY in [r["key"] for r in records]
    assert all(r["available"] for r in records)
    assert "help-titan-rtx-1" not in [r["key"] for r in records]


def test_info_statistics_match_the_data(home, release, capsys):
    rc, out, _ = _run(capsys, "info", "d-cpu", "--json", "--data-home", str(home))
    assert rc == 0
    info = json.loads(out)
    ms = np.array([v * 1000 for v in release.values()])
    lat = info["summary"]["latency_ms"]
    assert lat["min"] == ms.min() and lat["max"] == ms.max()
    assert lat["median"] == pytest.approx(np.median(ms))
    assert lat["mean"] == pytest.approx(ms.mean())
    assert info["summary"]["status"]["ok"] == len(release)
    df = latbench.load(CPU_KEY, data_home=home)
    ok = df[df["status"] == "ok"]
    expected = np.corrcoef(ok["latency_ms"], ok["flops"].astype(float))[0, 1]
    assert info["summary"]["correlation"]["flops"]["pearson"] == pytest.approx(expected)
    assert info["metadata"]["device"]["hardware"] == "Intel Core i7-7820X"

    rc, out, _ = _run(capsys, "info", CPU_KEY, "--data-home", str(home))
    assert rc == 0
    assert "Intel Core i7-7820X" in out and f"ok {len(release)}" in out
    assert f"max {ms.max():.4g} ms" in out


def test_info_errors_are_one_line(tmp_path, capsys):
    rc, out, err = _run(capsys, "info", "desktop_cpu", "--data-home", str(tmp_path))
    assert rc == 2 and out == ""
    assert "not available locally" in err and "latbench import eagle" in err
    assert err.count("\n") == 1
    rc, _, err = _run(capsys, "info", "no-such-device", "--data-home", str(tmp_path))
    assert rc == 2 and "unknown dataset key 'no-such-device'" in err


@pytest.mark.parametrize(
    "text", [ARCH, str(arch_id(parse_arch(ARCH))), "3,3,4,1,3,1", "(3, 3, 4, 1, 3, 1)"]
)
def test_arch_accepts_string_id_and_vector(capsys, text):
    rc, out, _ = _run(capsys, "arch", text, "--json")
    assert rc == 0
    info = json.loads(out)
    a = Arch.from_str(ARCH)
    costs = latbench.costs(a.vector)
    assert info == {
        "arch_str": ARCH,
        "arch_id": a.id,
        "nb201_index": a.nb201_index,
        "vector": list(a.vector),
        "valid": True,
        "graph_key": a.graph.key,
        "iso_key": a.graph.iso_key,
        "flops": costs.flops,
        "params": costs.params,
    }


def test_arch_text_and_latencies(home, release, capsys):
    rc, out, _ = _run(capsys, "arch", "0")
    assert rc == 0 and "valid       False" in out and "graph_key   invalid" in out
    rc, out, _ = _run(capsys, "arch", ARCH, "--latencies", "--json", "--data-home", str(home))
    rows = {r["key"]: r for r in json.loads(out)["latencies"]}  # bundled datasets too
    from latbench.dataset import read_dataset
    from latbench.loader import devices

    aid = arch_id(parse_arch(ARCH))
    for key, path in devices(home).query("bundled")[["key", "path"]].itertuples(index=False):
        held = aid in set(read_dataset(path)["arch_id"])  # samples hold only their selection
        assert (rows[key]["status"] != "absent") == held, key
        assert held or rows[key]["latency_ms"] is None
    assert rows[CPU_KEY] == {
        "key": CPU_KEY,
        "status": "ok",
        "latency_ms": float(release[parse_arch(ARCH)] * 1000),
    }
    # one damaged file is marked; the others still answer
    import shutil

    broken = home.parent / "broken-home"
    shutil.copytree(home, broken)
    target = broken / f"{CPU_KEY}.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    rc, out, _ = _run(capsys, "arch", ARCH, "--latencies", "--json", "--data-home", str(broken))
    again = {r["key"]: r for r in json.loads(out)["latencies"]}
    assert rc == 0 and again[CPU_KEY]["status"].startswith("unreadable")
    assert {k: r for k, r in again.items() if k != CPU_KEY} == {
        k: r for k, r in rows.items() if k != CPU_KEY
    }


@pytest.mark.parametrize(
    "text", ["hello", "1,2,3", "15625", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
)
def test_arch_errors(capsys, text):
    rc, out, err = _run(capsys, "arch", text)
    assert rc == 2 and out == "" and err.startswith("latbench: error:")
    with pytest.raises(ArchError):
        parse_arch_arg(text)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip(home, tmp_path, capsys, fmt):
    out_file = tmp_path / f"out.{fmt}"
    rc, out, _ = _run(capsys, "export", CPU_KEY, "-o", str(out_file), "--data-home", str(home))
    assert rc == 0 and str(out_file) in out
    df = latbench.load(CPU_KEY, data_home=home)
    back = pd.read_csv(out_file) if fmt == "csv" else latbench.read_dataset(out_file)
    assert back["arch_id"].tolist() == df["arch_id"].tolist()
    np.testing.assert_array_equal(
        back["latency_ms"].to_numpy(float), df["latency_ms"].to_numpy(float)
    )
    before = out_file.read_bytes()
    rc, _, err = _run(capsys, "export", CPU_KEY, "-o", str(out_file), "--data-home", str(home))
    assert rc == 2 and "--overwrite" in err and out_file.read_bytes() == before


def test_export_needs_a_known_format(home, tmp_path, capsys):
    rc, _, err = _run(
        capsys, "export", CPU_KEY, "-o", str(tmp_path / "x.txt"), "--data-home", str(home)
    )
    assert rc == 2 and "--format" in err


def test_fetch_eagle_from_file_url(tmp_path, release_dir, release, capsys):
    url = (release_dir / f"{CPU_FILE}.pickle").as_uri()
    h = tmp_path / "home"
    rc, out, err = _run(capsys, "fetch", "eagle", url, "--data-home", str(h))
    assert rc == 0, err
    assert f"wrote {CPU_KEY}: ok {len(release)}" in out
    rc, _, err = _run(
        capsys, "fetch", "eagle", url, "--sha256", "0" * 64, "--data-home", str(tmp_path / "h2")
    )
    assert rc == 2 and "SHA-256" in err and not (tmp_path / "h2").exists()
    rc, _, err = _run(capsys, "fetch", "eagle", "--data-home", str(h))
    assert rc == 2 and "URL" in err


def test_module_entry_point_runs_without_traceback(tmp_path):
    env = {**os.environ, "LATBENCH_HOME": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, "-m", "latbench.cli", "devices", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "latbench.cli", "arch", "nope"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope" in bad.stderr


def test_devices_json_is_strict_json(capsys, tmp_path):
    def refuse(constant):  # NaN, Infinity: what strict JSON readers reject
        raise ValueError(constant)

    rc, out, _ = _run(capsys, "devices", "--json", "--data-home", str(tmp_path))
    rows = json.loads(out, parse_constant=refuse)
    assert rc == 0 and any(r["path"] is None and r["available"] is False for r in rows)
