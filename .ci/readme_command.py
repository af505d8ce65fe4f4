"""Print the README's first command (the first command line of its first ```bash block).

``python .ci/readme_command.py [README.md] [--key]``: with ``--key``, print the
dataset key the command names (its ``--key`` argument) instead. Exit status 1 with a
one-line reason when there is no such command or key. Used by .ci/first_command.sh.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path


def first_command(text: str) -> str:
    """The first non-comment line of the first ```bash (or sh/console) block."""
    block = re.search(r"^```(?:bash|sh|console)[ \t]*\n(.*?)^```", text, re.S | re.M)
    if not block:
        raise ValueError("README.md has no ```bash block")
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    raise ValueError("README.md's first ```bash block holds no command")


def dataset_key(command: str) -> str:
    """The value of the command's ``--key`` option (the dataset it writes)."""
    words = shlex.split(command)
    for i, w in enumerate(words):
        if w == "--key" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--key="):
            return w.split("=", 1)[1]
    raise ValueError(f"the README's first command names no dataset (--key KEY): {command}")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--key"]
    readme = Path(args[0] if args else Path(__file__).resolve().parents[1] / "README.md")
    try:
        cmd = first_command(readme.read_text(encoding="utf-8"))
        print(dataset_key(cmd) if "--key" in argv else cmd)
    except (OSError, ValueError) as exc:
        print(f"readme_command: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
