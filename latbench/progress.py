"""Progress of long work: a tqdm bar on a terminal, a log line with an ETA otherwise.

``with Progress(total, "gcn repeats") as bar: ... bar.update(note="repeat 3")``. On a
terminal it is a ``tqdm`` bar on stderr (rate and ETA); when stderr is a file or a
pipe (CI logs, ``2> log``) it prints one line every ~5 % of the work or every 30 s
instead of carriage-return redraws. ``LATBENCH_PROGRESS=0`` turns both off,
``LATBENCH_PROGRESS=bar`` forces the bar.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Progress", "progress", "progress_enabled"]

T = TypeVar("T")

_LINE_EVERY_S = 30.0


def progress_enabled(enabled: bool = True) -> bool:
    """``enabled`` unless ``LATBENCH_PROGRESS`` is ``0``/``off``/``no``/``false``."""
    setting = os.environ.get("LATBENCH_PROGRESS", "").strip().lower()
    return enabled and setting not in ("0", "off", "no", "false")


def _fmt_seconds(s: float) -> str:
    s = max(0, round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """Counts ``total`` steps of work named ``desc``; ``update()`` after each step.

    The ETA uses the rate of the recent steps (tqdm ``smoothing``), so cheap steps
    done first do not make it optimistic for the expensive ones after them.
    ``leave=False`` removes a finished bar (inner loops of a nested display).
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "it",
        enabled: bool = True,
        leave: bool = True,
        position: int | None = None,
        stream: Any = None,
    ) -> None:
        self.total, self.desc, self.unit, self.n = int(total), desc, unit, 0
        self.stream = stream or sys.stderr
        self.enabled = progress_enabled(enabled) and self.total > 0
        self.t0 = self._last_line = time.perf_counter()
        self._last_step = self.t0
        self._step_s: float | None = None
        self.bar: Any = None
        forced = os.environ.get("LATBENCH_PROGRESS", "").strip().lower() == "bar"
        if self.enabled and (forced or getattr(self.stream, "isatty", lambda: False)()):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, leave=leave,
                            position=position, dynamic_ncols=True, smoothing=0.5,
                            file=self.stream)  # fmt: skip
        self._every = max(1, self.total // 20)

    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more steps done; ``note`` (e.g. the current item) is shown beside the count."""
        now = time.perf_counter()
        if n == 0:  # a note on what starts now, e.g. the next dataset
            if self.bar is not None:
                self.bar.set_postfix_str(note)
            elif self.enabled:
                print(f"{self.desc}: {self.n}/{self.total} {self.unit}, next {note}",
                      file=self.stream, flush=True)  # fmt: skip
            return
        step = (now - self._last_step) / n
        # exponential average of the recent step time, like tqdm's smoothing
        self._step_s = step if self._step_s is None else 0.5 * step + 0.5 * self._step_s
        self._last_step = now
        self.n += n
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
            return
        if not self.enabled:
            return
        since = now - self._last_line
        # every ~5 % of the work but at most every 2 s, and at least every 30 s
        due = (self.n % self._every == 0 and since >= 2.0) or since >= _LINE_EVERY_S
        if due or self.n >= self.total:
            self._last_line = now
            eta = (self.total - self.n) * (self._step_s or 0.0)
            extra = f" {note}" if note else ""
            print(
                f"{self.desc}: {self.n}/{self.total} {self.unit}, "
                f"{_fmt_seconds(now - self.t0)} elapsed, ETA {_fmt_seconds(eta)}{extra}",
                file=self.stream,
                flush=True,
            )

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it",
    enabled: bool = True, leave: bool = True,
) -> Iterator[T]:  # fmt: skip
    """Iterate ``items`` with a :class:`Progress` (``total`` defaults to ``len(items)``)."""
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit=unit, enabled=enabled, leave=leave) as bar:
        for item in items:
            yield item
            bar.update()
