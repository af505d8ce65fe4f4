"""Command-line plumbing shared by every LatBench command: one-line errors, Ctrl-C.

argparse prints the whole usage block before ``error: ...``; a script that reads the
last line, or a user who reads the first, then misses the message. Here a bad
argument prints ``prog: error: <message> (see prog --help)`` and exits with 2. A
Ctrl-C prints ``prog: interrupted`` and exits with 130, not a traceback from wherever
it landed (often deep in TensorFlow's import); SIGTERM and SIGHUP unwind the same way.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from latbench.terminal import safe_line

__all__ = [
    "OneLineParser",
    "Terminated",
    "folder",
    "interruptible",
    "nonempty",
    "nonnegative_int",
    "path_arg",
    "positive_int",
]

_Main = TypeVar("_Main", bound=Callable[..., int])


class OneLineParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` that reports a bad command line in one line
    (exit status 2); sub-commands made by :meth:`add_subparsers` inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {safe_line(message)} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``kill``, ``timeout``, a batch scheduler, a closed terminal),
    raised where the program is, so that it unwinds and cleans up as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def unwind_on_termination(
    stopped: Callable[[int], BaseException] = Terminated,
) -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise :class:`Terminated`; returns what restores the
    handlers there were. Python's default for them exits without running ``finally``
    blocks, which leaves temporary folders and files behind. A signal ignored already
    (``nohup``) stays ignored; one the platform lacks (SIGHUP on Windows) is skipped.
    ``stopped`` makes the exception raised from the signal's number."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise stopped(signum)

    old = {}
    for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        sig = getattr(signal, name, None)
        # `nohup` (or a parent) ignoring it is the user's choice: kept
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, stop)

    def restore() -> None:
        for s, handler in old.items():
            signal.signal(s, handler)

    return restore


def interruptible(prog: str) -> Callable[[_Main], _Main]:
    """Decorate a command's ``main``: a Ctrl-C returns 130 with ``prog: interrupted``;
    run as a console script (``main()`` with no ``argv``), SIGTERM and SIGHUP unwind
    the same way and return 128 + the signal's number. A reader that goes away
    (``| head``) ends it quietly with status 1.

    Only for commands whose writes are atomic, so an interruption loses no finished
    output (every LatBench writer goes through a temporary file and a rename)."""
    import signal
    import threading

    def wrap(main: _Main) -> _Main:
        @functools.wraps(main)
        def run(*args: object, **kwargs: object) -> int:
            console = (not args or args[0] is None) and kwargs.get("argv") is None
            main_thread = threading.current_thread() is threading.main_thread()
            restore = unwind_on_termination() if console and main_thread else None
            try:
                return main(*args, **kwargs)
            except Terminated as exc:
                name = signal.Signals(exc.signum).name
                print(f"{prog}: stopped by {name}", file=sys.stderr)
                return 128 + exc.signum
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130
            except BrokenPipeError:
                if not console:  # a caller's own pipe: theirs to handle
                    raise
                # the reader (e.g. `| head`) went away: silence the flush at exit
                import os

                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return 1
            finally:
                if restore is not None:
                    restore()

        return run  # type: ignore[return-value]

    return wrap


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
    return v


def nonnegative_int(text: str) -> int:
    """An argument ``type``: a whole number of at least 0 (a seed: numpy's seed
    sequences take no negative entropy), or a one-line usage error."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An argument ``type``: a whole number of at least 1, or a one-line usage error."""
    return _int_at_least(text, 1)


def nonempty(what: str) -> Callable[[str], str]:
    """An argument ``type``: the text unless blank, else a one-line usage error.
    ``""`` is ``Path(".")``: an unset shell variable in ``--data-home "$DIR"`` must not
    mean the working folder."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got an empty string")
        return text

    parse.__name__ = what  # argparse names the type in "invalid <name> value"
    return parse


def folder(text: str) -> Path:
    """An argument ``type``: a folder's path, not blank (:func:`nonempty`)."""
    return Path(nonempty("a folder")(text))


def path_arg(text: str) -> Path:
    """An argument ``type``: a file's or folder's path, not blank (:func:`nonempty`)."""
    return Path(nonempty("a path")(text))
