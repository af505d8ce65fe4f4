"""``benchmarks/hostile_common.py`` for the tests: the hostile files and capped runner
the campaigns use, so both build a case one way (benchmarks never import from tests/).
Loaded by file path, so ``benchmarks/`` never goes on ``sys.path``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_common.py"
_spec = importlib.util.spec_from_file_location("latbench_bench_hostile_common", _PATH)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

MEMORY_LIMIT: int = _module.MEMORY_LIMIT
bombed_prior = _module.bombed_prior
forge_dataset = _module.forge_dataset
ok_frame = _module.ok_frame
petabyte_npz = _module.petabyte_npz
run_capped = _module.run_capped


def with_header(path: Path, out: Path, **changes: object) -> Path:
    """A copy of the prior ``path`` at ``out`` with its JSON header changed: the header
    is not under the arrays' checksum, so this is what an editor of the file can do."""
    import json

    import numpy as np

    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


def flip_page_byte(path: Path, column: str) -> Path:
    """Flip one bit in the middle of ``column``'s first data page of the Parquet file
    ``path``: damage a page checksum must catch (a fixed offset would drift into footer
    bytes no reader uses whenever the schema gains a column)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().names.index(column))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + col.total_compressed_size // 2] ^= 0x04
    path.write_bytes(bytes(data))
    return path
