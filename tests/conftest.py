"""Shared test setup: keep every test's data and artifact cache out of the user's home."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("latbench-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATBENCH_HOME", str(home))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
        yield home
