"""A raw-timings file that cannot be written ends in an error, never a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_write_raw_on_a_full_disk_raises_and_leaves_no_file(tmp_path):
    # RLIMIT_FSIZE with SIGXFSZ ignored makes writes past 64 KB fail with EFBIG, the
    # way a full disk fails them with ENOSPC.
    code = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        import numpy as np
        from latbench.raw import write_raw

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        rng = np.random.default_rng(0)
        rows = [rng.integers(1, 2**40, 1000) for _ in range(50)]
        out = Path(sys.argv[1]) / "x.raw.h5"
        try:
            write_raw(out, [f"g{i}" for i in range(50)], list(range(50)), rows, {"runs": 1000})
        except OSError as exc:
            print("refused:", exc)
            sys.exit(0 if not out.exists() else 3)
        sys.exit(4)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "refused:" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.tmp"))
