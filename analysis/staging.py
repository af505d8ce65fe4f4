"""Write a set of result files so that an output folder holds all of them or none.

:func:`staged` hands out a hidden folder inside the output folder (so on the same
file system) to write into, and moves what was written there into the output folder
only once the writing has finished; a failure or an interrupt leaves the output
folder's earlier files as they were. A run killed outright (``kill -9``, power loss)
cannot remove its hidden folder; the next run into the same output folder removes the
ones whose owner (recorded inside: host and PID) is a process of this host that is gone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from latbench.lock import process_gone

__all__ = ["OWNER_FILE", "PREFIXES", "publish", "remove_abandoned", "staged"]

PREFIXES = (".latbench-partial-", ".nas-partial-")
"""Name prefixes of the staging folders the analysis commands make."""
OWNER_FILE = ".owner.json"
"""File in a staging folder naming the process that writes it (never published)."""


@contextmanager
def staged(out: str | os.PathLike[str], *, prefix: str = ".latbench-partial-") -> Iterator[Path]:
    """Yield a new hidden folder inside ``out`` (made if missing) to write results into.

    When the ``with`` block ends normally, every file written there is moved into
    ``out`` (:func:`publish`), replacing files of the same name; files of ``out`` that
    the block did not write are kept. When it raises (an error, Ctrl-C), ``out`` is
    left as it was, and removed again if this call made it and it is still empty; an
    :class:`OSError` about a file in the staging folder is re-raised naming that
    file's place in ``out``. The staging folder is removed either way.
    """
    final = Path(out)
    made = not final.is_dir()
    final.mkdir(parents=True, exist_ok=True)
    remove_abandoned(final)
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=final))
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    (stage / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    done = False
    try:
        yield stage
        publish(stage, final)
        done = True
    except OSError as exc:  # name the file where it was going, not the staging folder
        for attr in ("filename", "filename2"):
            name = getattr(exc, attr, None)
            if isinstance(name, str) and Path(name).is_relative_to(stage):
                setattr(exc, attr, str(final / Path(name).relative_to(stage)))
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not done:
            with suppress(OSError):  # only if empty: never a file put there meanwhile
                final.rmdir()


def publish(stage: Path, out: Path) -> list[Path]:
    """Move every file under ``stage`` to the same place under ``out``; return the targets.

    Checks first that none would land on a folder, or under something that is not a
    folder (which would stop the moves half-way), and raises
    :class:`IsADirectoryError` / :class:`NotADirectoryError` naming it before moving
    anything. The moves are :func:`os.replace`, each atomic.
    """
    files = sorted(
        p.relative_to(stage)
        for p in stage.rglob("*")
        if not p.is_dir() and p.relative_to(stage) != Path(OWNER_FILE)
    )
    for rel in files:
        target = out / rel
        for parent in list(rel.parents)[-2::-1]:  # out/a, out/a/b, ...: folders or absent
            above = out / parent
            if above.exists() and not above.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, "is in the way of a result folder; nothing was replaced",
                    str(above),
                )  # fmt: skip
        if target.is_dir() or (target.exists() and not target.is_file()):
            raise IsADirectoryError(
                errno.EISDIR, "is in the way of a result file; nothing was replaced", str(target)
            )
    moved = []
    for rel in files:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, target)
        moved.append(target)
    return moved


def remove_abandoned(out: Path) -> list[Path]:
    """Remove the staging folders in ``out`` whose writer is gone; return them.

    Only a folder named with one of :data:`PREFIXES` whose :data:`OWNER_FILE` names
    this host and a PID that no longer runs: a folder of a live run, of another host
    (a shared file system), or without a readable owner is left alone. Warns once
    (:class:`UserWarning`) when something was removed.
    """
    host = socket.gethostname()
    removed = []
    try:
        entries = [p for p in out.iterdir() if p.name.startswith(PREFIXES)]
    except OSError:
        return removed
    for folder in entries:
        try:
            if folder.is_symlink() or not folder.is_dir():
                continue
            owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
            pid = owner["pid"]
            if (
                owner["host"] != host
                or not isinstance(pid, int)
                or pid <= 0
                or not process_gone(pid)
            ):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        warnings.warn(
            f"removed {len(removed)} unfinished result folder(s) of killed runs in {out}: "
            + ", ".join(p.name for p in removed[:3]),
            stacklevel=3,
        )
    return removed
