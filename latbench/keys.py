"""One policy for dataset keys and output files, for every command that writes.

A key names ``<home>/<key>.parquet`` and its companions, so it must stay a plain file
name inside the data home, must not end in a suffix LatBench gives companion files
(``x.layers`` would make ``x.layers.parquet``, which ``load`` reads as the per-layer
table of ``x``), must not be hidden (``load`` skips dot files) and must not be a
bundled dataset's key (``load`` would keep returning the bundled file). Outputs are
written only over regular files: a FIFO, socket or device node is never replaced.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from latbench.terminal import safe

__all__ = [
    "InvalidKeyError",
    "RESERVED_SUFFIXES",
    "check_output",
    "file_kind",
    "names_bundled",
    "validate_file_name",
    "validate_key",
]

RESERVED_SUFFIXES = (".layers", ".raw", ".predicted", ".parts", ".passes", ".lock", ".parquet",
                     ".h5", ".json", ".tmp")  # fmt: skip
"""Key endings that collide with companion files LatBench writes."""

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
_GENERATED = re.compile(r"\.(shard\d+of\d+|pass\d+of\d+)$")


class InvalidKeyError(ValueError):
    """A dataset key that cannot be used as a file name here."""


def _bundled_keys() -> set[str]:
    from latbench.catalog import normalize_key
    from latbench.manifest import bundled_datasets

    return {normalize_key(k) for k in bundled_datasets()}


def names_bundled(key: str) -> bool:
    """Whether ``key``, in any spelling ``load`` accepts, names a bundled dataset."""
    from latbench.catalog import normalize_key, resolve

    bundled = _bundled_keys()
    return normalize_key(key) in bundled or (resolve(key) or "") in bundled


def validate_key(
    key: str, option: str = "--key", *, shadow_check: bool = False, catalog_check: bool = False
) -> str:
    """Return ``key`` if it is a safe dataset key; raise :class:`InvalidKeyError` naming why not.

    Allowed: ASCII letters, digits, ``_ . + -``, starting with a letter or digit (so
    never hidden), at most 128 characters, no ``..``, none of
    :data:`RESERVED_SUFFIXES`, no ``.shardIofN`` / ``.passIofN`` ending (the harness
    adds those itself). With ``shadow_check`` (writes into the data home) a key that
    names a bundled dataset, in any spelling ``load`` accepts, is refused too; with
    ``catalog_check`` (a measurement's key) so is a published catalog dataset's key (the
    bundled ones were measured by this harness): a measurement of yours filed under it
    would pass for that dataset, or replace it.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"{option} must not be empty")
    shown = f"'{safe(key, 60)}'"  # escaped once: repr() would double the backslashes
    if "/" in key or "\\" in key or "\0" in key:
        raise InvalidKeyError(f"{option} {shown} contains a path separator; give a plain name")
    if ".." in key:
        raise InvalidKeyError(f"{option} {shown} contains '..'; give a plain name")
    if key.startswith("."):
        raise InvalidKeyError(
            f"{option} {shown} starts with '.': the file would be hidden from `load`"
        )
    if not key.isascii() or not _KEY.fullmatch(key):
        raise InvalidKeyError(
            f"{option} {shown} must be 1-128 ASCII letters, digits or '_.+-', starting with"
            " a letter or digit"
        )
    low = key.lower()
    for suffix in RESERVED_SUFFIXES:
        if low.endswith(suffix):
            raise InvalidKeyError(
                f"{option} {shown} ends in {suffix!r}, a suffix LatBench uses for companion"
                " files; choose another name"
            )
    if _GENERATED.search(low):
        raise InvalidKeyError(
            f"{option} {shown} ends like a shard or pass the harness names itself; use"
            " --shard instead, or another name"
        )
    if catalog_check:
        from latbench.catalog import CATALOG, normalize_key, resolve

        # its file would be the published dataset's own, or (an alias) `load` would
        # hand it out under the published dataset's name
        named = resolve(key) or normalize_key(key)
        if named in CATALOG and normalize_key(named) not in _bundled_keys():
            raise InvalidKeyError(
                f"{option} {shown} names the published dataset {named!r}"
                f" ({CATALOG[named].name}); give your measurement a key of its own"
                " (e.g. <host>-<runtime>-<precision>)"
            )
    if shadow_check and names_bundled(key):
        raise InvalidKeyError(
            f"{option} {shown} is a bundled dataset's key: `load` would keep returning"
            " the bundled file; choose another name"
        )
    return key


def validate_file_name(name: str, option: str = "--name") -> str:
    """Return ``name`` if it is a plain file name (no folder, no control characters)."""
    shown = f"'{safe(name, 60)}'"
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidKeyError(f"{option} {shown} must be a plain file name, without folders")
    if len(name) > 255 or any(not c.isprintable() for c in name):
        raise InvalidKeyError(
            f"{option} {shown} must be at most 255 printable characters, no control characters"
        )
    return name


def check_output(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """``path`` if a writer may create or (with ``overwrite``) replace it there.

    Raises :class:`FileExistsError` for an existing file without ``overwrite`` and
    :class:`ValueError` for anything but a regular file (FIFO, socket, device, folder):
    those are never replaced, ``--overwrite`` or not.
    """
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ValueError(f"{safe(path)}: cannot inspect the output path: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = path.stat()
        except OSError:
            raise ValueError(f"{safe(path)}: a dangling symbolic link; not written") from None
    if not stat.S_ISREG(st.st_mode):
        kind = file_kind(st.st_mode)
        raise ValueError(f"{safe(path)}: is a {kind}, not a regular file; not replaced")
    if not overwrite:
        raise FileExistsError(f"{safe(path)} already exists; pass --overwrite to replace it")
    return path


def check_writable(path: str | os.PathLike[str]) -> Path:
    """``path`` if a file can be written there now (folder made, a probe file written).

    For commands that compute for minutes before they write: a bad ``-o`` fails first.
    Raises :class:`ValueError` in one line otherwise; an existing regular file is fine.
    """
    import tempfile

    path = check_output(path, overwrite=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ValueError(f"{safe(path)}: cannot write there: {why}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def file_kind(mode: int) -> str:
    """What an ``st_mode`` names, in words: ``"FIFO"``, ``"socket"``, ``"folder"``..."""
    for test, name in (
        (stat.S_ISLNK, "symbolic link"),  # an lstat() result
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"
