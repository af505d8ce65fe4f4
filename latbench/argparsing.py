"""Command-line parsing whose errors are one line, like every other LatBench error.

argparse prints the whole usage block before ``error: ...``; a script that reads the
last line, or a user who reads the first, then misses the message. Here a bad
argument prints ``prog: error: <message> (see prog --help)`` and exits with 2.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from latbench.terminal import safe_line

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` that reports a bad command line in one line
    (exit status 2); sub-commands made by :meth:`add_subparsers` inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {safe_line(message)} (see {self.prog} --help)\n")
