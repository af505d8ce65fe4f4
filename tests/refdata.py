"""Where the tests find published reference data (not in the repository; see tests/README.md).

``LATBENCH_TEST_DATA`` names a folder holding ``help/``, ``latbench-release/`` and
``nb201-accuracy/``; without it the tests look in ``../shared/external`` next to the
repository root. Tests that need a folder that is absent skip, naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "LATBENCH_TEST_DATA"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "external"
FOLDERS = ("help", "latbench-release", "nb201-accuracy")


def data_root() -> Path:
    """The reference data folder: ``$LATBENCH_TEST_DATA``, else ``../shared/external``."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else DEFAULT


def ref_dir(name: str) -> Path:
    """Path of one reference folder (``help``, ``latbench-release``, ``nb201-accuracy``)."""
    if name not in FOLDERS:
        raise ValueError(f"unknown reference folder {name!r}; known: {FOLDERS}")
    return data_root() / name


def absent_reason(name: str, need: str = "") -> str:
    """Why a test skips: what is missing and how to provide it."""
    path = ref_dir(name) / need if need else ref_dir(name)
    return (
        f"reference data absent ({path}): set {ENV} to a folder holding {name}/,"
        " laid out as tests/README.md describes"
    )


def needs(name: str, need: str = "") -> pytest.MarkDecorator:
    """Skip marker for a test that reads reference folder ``name`` (or a file in it)."""
    path = ref_dir(name) / need if need else ref_dir(name)
    return pytest.mark.skipif(not path.exists(), reason=absent_reason(name, need))


def require(name: str, need: str = "") -> Path:
    """The reference folder ``name``, or skip the calling test with the reason."""
    path = ref_dir(name)
    if not (path / need if need else path).exists():
        pytest.skip(absent_reason(name, need))
    return path
