"""Text from files, made safe to print: control characters escaped, long text shortened.

A dataset's metadata, a key or a file name comes from whoever wrote the file; printed
raw, an ``ESC]0;...BEL`` sets the window title, ``ESC[2J`` clears the screen and a
newline forges a second ``latbench: error:`` line. Every CLI prints such strings
through :func:`safe`.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["MAX_SHOWN", "one_line_warnings", "safe", "safe_line"]

MAX_SHOWN = 200
"""Characters of one value shown before it is cut with ``...``."""

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi
# overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
    if c in special:
        return special[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def safe(value: Any, limit: int = MAX_SHOWN) -> str:
    """``str(value)`` with every control character escaped, cut to ``limit`` characters."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a str() that raises: name the type only
        text = f"<{type(value).__name__}>"
    if len(text) > 4 * limit:  # never escape megabytes only to cut them
        text = text[: 4 * limit]
    out = _CONTROL.sub(_escape, text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def safe_line(text: str, limit: int = 2000) -> str:
    """A whole message as one printable line: whitespace runs joined, controls escaped."""
    return safe(" ".join(str(text).split()), limit)


@contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within, each warning is one escaped ``<prog>: warning: ...`` line on stderr: not
    Python's two lines with a source excerpt, and safe when its text comes from a file."""

    def show(message: Any, *_: Any, **__: Any) -> None:
        print(f"{prog}: warning: {safe_line(str(message), 1000)}", file=sys.stderr)

    shown = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
