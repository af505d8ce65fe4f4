"""The output-path policy shared by every writer."""

from __future__ import annotations

import pytest


def test_check_writable_probes_the_folder(tmp_path, monkeypatch):
    import tempfile

    from latbench.keys import check_writable

    out = tmp_path / "new" / "deeper" / "res.csv"
    assert check_writable(out) == out and out.parent.is_dir() and not list(out.parent.iterdir())

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(ValueError, match="cannot write there: No space left"):
        check_writable(tmp_path / "x.csv")
