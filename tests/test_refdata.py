"""Reference data is found through LATBENCH_TEST_DATA, and skips say how to provide it."""

from __future__ import annotations

import os
import subprocess
import sys

import refdata

TEST = "tests/test_safepickle.py::test_real_help_files_equal_a_plain_unpickle"


def _run(env_value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, refdata.ENV: env_value}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-rs", "-p",
                           "no:cacheprovider", TEST], capture_output=True, text=True,
                          env=env, cwd=refdata.ROOT)  # fmt: skip


def test_env_var_chooses_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(refdata.ENV, str(tmp_path))
    assert refdata.ref_dir("help") == tmp_path / "help"
    monkeypatch.delenv(refdata.ENV)
    assert refdata.ref_dir("nb201-accuracy") == refdata.DEFAULT / "nb201-accuracy"


def test_absent_data_skips_naming_the_variable_and_the_readme(tmp_path):
    res = _run(str(tmp_path))  # an empty folder: nothing to read
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 skipped" in res.stdout
    skip = next(line for line in res.stdout.splitlines() if line.startswith("SKIPPED"))
    assert str(tmp_path / "help") in skip
    assert "LATBENCH_TEST_DATA" in skip and "tests/README.md" in skip


def test_laid_out_folder_is_used(tmp_path):
    # the layout of tests/README.md, built here from small files: the test must run
    import pickle
    import zipfile

    help_dir = tmp_path / "help"
    help_dir.mkdir()
    for name, data in (("titan_rtx_1.pt", [0.5, 1.5]), ("pixel2.pt", [3, 4]),
                       ("str_arch2idx.pt", {"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 0})):  # fmt: skip
        with zipfile.ZipFile(help_dir / name, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps(data, protocol=2))
            zf.writestr("archive/version", "3\n")
    res = _run(str(tmp_path))
    assert "1 passed" in res.stdout, res.stdout + res.stderr
