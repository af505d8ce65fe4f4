"""Docs, help texts and messages cite only what a user of the repository has (issue 24)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("docs", "README.md", "harness", "latbench", "analysis")
TEXT = {".py", ".md", ".toml", ".json", ".txt", ".yaml", ".yml", ".cfg", ""}


def _files():
    for name in SCANNED:
        path = ROOT / name
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            if f.is_file() and f.suffix in TEXT and "__pycache__" not in f.parts:
                yield f


def test_nothing_points_outside_the_repository():
    bad = []
    for f in _files():
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if "shared/" in line or "DESIGN" in line or re.search(r"/work/|/home/\w", line):
                bad.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    assert not bad, "\n".join(bad)


def test_every_cited_design_section_exists():
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "design.md").read_text(), re.M))
    assert sections == {str(n) for n in range(1, 11)}
    cited = set()
    for f in _files():
        for m in re.finditer(
            r"docs/design\.md`? §(\d+)(?:-§(\d+))?", f.read_text(errors="replace")
        ):
            cited.update(g for g in m.groups() if g)
    assert cited and cited <= sections, sorted(cited - sections)
