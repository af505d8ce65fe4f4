"""The core (``latbench/`` and ``latbench/importers/``) imports nothing above it.

Above it: the harness, the predictors, the analyses and the NAS tools. A file format the
loader reads lives in the core, so reading any dataset never needs those packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import latbench

ABOVE = ("latbench.harness", "latbench.predictors", "latbench.analysis", "latbench.nas")
CORE = Path(latbench.__file__).parent


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, node.module)]
    return out


def test_the_core_imports_nothing_above_it():
    files = [*CORE.glob("*.py"), *(CORE / "importers").glob("*.py")]
    assert len(files) > 20  # the walk found the core
    bad = [
        f"{f.relative_to(CORE.parent)}:{line} imports {name}"
        for f in files
        for line, name in _imports(f)
        if name.startswith(ABOVE)
    ]
    assert not bad, "\n".join(bad)
