"""The ``latbench`` command: list, inspect, import, fetch and export datasets.

Every subcommand has ``--help``. Errors are printed as one line on stderr with exit
status 2; nothing already written is replaced unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.argparsing import OneLineParser, interruptible, nonempty
from latbench.lock import KeyLocked
from latbench.terminal import one_line_warnings, safe, safe_line

__all__ = ["build_parser", "main", "parse_arch_arg", "spearman", "summary"]

_PROG = "latbench"


def parse_arch_arg(text: str) -> Any:
    """An :class:`~latbench.space.Arch` from a NAS-Bench-201 string, an id or a vector.

    Vectors are six op indices separated by commas or spaces, e.g. ``3,3,4,1,3,1``.
    """
    from latbench.space import Arch, ArchError

    s = text.strip()
    if not s.isascii():  # int() and \d accept non-ASCII digits ("１２３" would be 123)
        raise ArchError(f"{text!r} holds non-ASCII characters; use ASCII digits and op names")
    if s.isdigit():
        return Arch.from_id(int(s))
    if "|" in s or "~" in s:
        return Arch.from_str(s)
    parts = [p for p in re.split(r"[\s,]+", s.strip("()[] ")) if p]
    if parts and all(re.fullmatch(r"-?\d+", p) for p in parts):
        return Arch.from_vector([int(p) for p in parts])
    raise ArchError(
        f"{text!r} is neither an architecture string ('|op~0|+|op~0|op~1|+...'),"
        " an arch_id (0..15624) nor a vector of six op indices ('3,3,4,1,3,1')"
    )


_CAPS = {"key": 34, "class": 14, "precision": 10}
"""Widest cell of these ``latbench devices`` columns; longer ones end in an ellipsis."""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fit_table(df: pd.DataFrame, width: int) -> str:
    """``df`` as left-aligned text columns within ``width`` characters a line.

    Columns named in ``_CAPS`` are capped; the last column takes what is left (at
    least 12 characters) and long cells of any column end in an ellipsis.
    """
    cols = [str(c) for c in df.columns]
    # names and keys come from files: control characters escaped before measuring widths
    cells = {c: ["-" if pd.isna(v) else safe(v) for v in df[c]] for c in df.columns}
    widths = [min(max(len(c), *(len(x) for x in cells[c])), _CAPS.get(c, 10**6)) for c in cols]
    widths[-1] = max(12, min(widths[-1], width - sum(widths[:-1]) - 2 * (len(cols) - 1)))
    rows = [cols, *zip(*(cells[c] for c in df.columns), strict=True)]
    return "\n".join(
        "  ".join(_clip(x, w).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _cmd_devices(args: argparse.Namespace) -> int:
    from latbench.loader import devices

    df = devices(args.data_home)
    if args.available:
        df = df[df["available"]]
    if args.json:
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        print(json.dumps(records, indent=2))  # null, not NaN: strict JSON readers refuse NaN
        return 0
    table = df[["key", "class", "precision", "available", "name"]].copy()
    table["available"] = table["available"].map({True: "yes", False: "no"})
    table = table.rename(columns={"available": "local"})
    if table.empty:
        print("(none)")
    else:  # fits the terminal (or COLUMNS); 100 where neither says
        print(fit_table(table, shutil.get_terminal_size((100, 24)).columns))
    n_avail = int(df["available"].sum())
    print(f"\n{len(df)} dataset(s), {n_avail} available locally")
    return 0


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Counts by status, latency statistics and cost correlations of ``status == ok`` rows."""
    counts = {k: int(v) for k, v in df["status"].value_counts().sort_index().items()}
    ok = df[df["status"] == "ok"]
    out: dict[str, Any] = {"rows": len(df), "status": counts, "latency_ms": None}
    if len(ok):
        lat = ok["latency_ms"].astype("float64")
        out["latency_ms"] = {
            "min": float(lat.min()),
            "median": float(lat.median()),
            "mean": float(lat.mean()),
            "max": float(lat.max()),
        }
    if len(ok) > 2:
        lat = ok["latency_ms"].astype("float64")
        out["correlation"] = {
            cost: {
                "pearson": float(lat.corr(ok[cost].astype("float64"))),
                "spearman": spearman(lat, ok[cost].astype("float64")),
            }
            for cost in ("flops", "params")
        }
    return out


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rho: Pearson's r of the average ranks (ties share a rank).

    pandas' ``method="spearman"`` imports SciPy, which the core install lacks.
    """
    return float(x.rank().corr(y.rank()))


def _cmd_info(args: argparse.Namespace) -> int:
    from latbench.loader import load

    df = load(args.key, data_home=args.data_home)
    meta = df.attrs.get("metadata", {})
    stats = summary(df)
    if args.json:
        print(json.dumps({"path": df.attrs.get("path"), "metadata": meta, "summary": stats}))
        return 0
    dev = meta.get("device") if isinstance(meta.get("device"), dict) else {}
    rt = meta.get("runtime") if isinstance(meta.get("runtime"), dict) else {}
    lines = [
        ("key", meta.get("key", args.key)),
        ("name", dev.get("name")),
        ("class", dev.get("class")),
        ("hardware", dev.get("hardware")),
        ("runtime", " ".join(str(v) for v in (rt.get("name"), rt.get("version")) if v)),
        ("precision", meta.get("precision")),
        ("batch", meta.get("batch")),
        ("protocol", json.dumps(meta.get("protocol")) if meta.get("protocol") else None),
        ("source", meta.get("source")),
        ("citation", meta.get("citation")),
        ("license", meta.get("license")),
        ("created", meta.get("created")),
        ("file", df.attrs.get("path")),
    ]
    for name, value in lines:
        if value not in (None, ""):
            print(f"{name:<11}{safe(value)}")
    print(f"{'rows':<11}{stats['rows']}")
    print(f"{'status':<11}" + ", ".join(f"{k} {v}" for k, v in stats["status"].items()))
    if stats["latency_ms"]:
        s = stats["latency_ms"]
        print(
            f"{'latency':<11}min {s['min']:.4g}  median {s['median']:.4g}"
            f"  mean {s['mean']:.4g}  max {s['max']:.4g} ms"
        )
    for cost, r in stats.get("correlation", {}).items():
        print(f"{'vs ' + cost:<11}pearson {r['pearson']:.3f}  spearman {r['spearman']:.3f}")
    return 0


def _print_reports(reports: Sequence[Any]) -> None:
    for r in reports:
        c = r.counts
        print(
            f"wrote {safe(r.key)}: ok {c['ok']}, invalid {c['invalid']}, missing {c['missing']}"
            f" -> {safe(r.path)}"
        )
        for note in r.warnings:  # a damaged or edited copy: said where the import is read
            print(f"  note: {safe_line(note, 1000)}")
    print(f"{len(reports)} dataset(s) imported")


def _skipped_files_reported() -> Any:
    """Context: files an importer skipped (unrecognised, duplicates) -> one stderr line each."""
    import contextlib
    import warnings

    from latbench.importers.eagle import SkippedFileWarning

    @contextlib.contextmanager
    def ctx() -> Any:
        caught: list[Any] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SkippedFileWarning)
                yield
        finally:
            # shown after catch_warnings is left: inside it, showwarning appends to the
            # list being walked and the loop never ends
            for w in caught:
                if issubclass(w.category, SkippedFileWarning):
                    print(f"{_PROG}: {safe_line(str(w.message))}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    return ctx()


def _cmd_import(args: argparse.Namespace) -> int:
    from latbench.importers import import_datasets
    from latbench.keys import validate_key

    if args.key is not None:  # checked before the source is even opened
        validate_key(args.key, shadow_check=True)
    from latbench.loader import home_folder

    home_folder(args.data_home)
    if args.importer == "nb201-accuracy":
        from latbench.importers.nb201_accuracy import import_accuracy

        if args.only or args.key:
            raise ValueError("import nb201-accuracy takes no --only or --key")
        print(import_accuracy(args.path, args.data_home, args.overwrite).line())
        return 0

    with _skipped_files_reported():
        reports = import_datasets(
            args.importer, args.path, args.data_home, args.only, args.overwrite, key=args.key
        )
    _print_reports(reports)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from latbench.importers.fetch import HELP_BASE_URL, fetch_help, fetch_urls, url_file_name
    from latbench.importers.registry import DRIVE_FOLDER_ID
    from latbench.loader import home_folder

    if not (math.isfinite(args.timeout) and args.timeout > 0):  # requests: 0 is an error
        raise ValueError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise ValueError(f"--sha256 {safe(args.sha256, 80)!r} is not 64 hexadecimal digits")
    for url in args.urls:
        if len(urllib.parse.urlparse(url).scheme) < 2:  # 1 letter: a Windows drive
            raise ValueError(
                f"{safe(url, 200)!r} is not a URL (https://... or file://...); to import a"
                f" local file run: {_PROG} import {args.source} PATH"
            )
    home_folder(args.data_home)
    if args.source == "nb201-accuracy":
        from latbench.importers.fetch import fetch_accuracy

        if len(args.urls) > 1 or args.only or args.name or args.sha256 or args.base_url:
            raise ValueError(
                "fetch nb201-accuracy takes at most one mirror URL and no other file options"
            )
        url = args.urls[0] if args.urls else None
        print(fetch_accuracy(args.data_home, args.overwrite, url=url, timeout=args.timeout).line())
        return 0
    if args.source == "hwnasbench":
        from latbench.importers.fetch import fetch_hwnasbench

        if len(args.urls) > 1 or args.name or args.base_url or args.folder_id:
            raise ValueError(
                "fetch hwnasbench takes at most one mirror URL and no --name, --base-url"
                " or --folder-id (--sha256 requires a checksum)"
            )
        reports, digest = fetch_hwnasbench(
            args.data_home,
            args.only,
            args.overwrite,
            url=args.urls[0] if args.urls else None,
            sha256=args.sha256,
            timeout=args.timeout,
        )
        _print_reports(reports)
        if not args.sha256:
            print(
                f"note: no SHA-256 of HW-NAS-Bench's file is pinned; this copy's is {digest}"
                " (recorded in each dataset's imported_from; pass --sha256 to require one)"
            )
        return 0
    if args.source == "latbench":
        if args.urls or args.name or args.sha256 or args.base_url:
            raise ValueError(
                "fetch latbench takes no URLs, --name, --sha256 or --base-url (use --folder-id)"
            )
        from latbench.importers.fetch import fetch_latbench

        with _skipped_files_reported():
            reports = fetch_latbench(
                args.data_home,
                args.only,
                args.overwrite,
                folder_id=args.folder_id or DRIVE_FOLDER_ID,
                quiet=args.quiet,
            )
        _print_reports(reports)
        return 0
    if args.folder_id:
        raise ValueError("--folder-id is for fetch latbench only")
    if args.name is not None:
        from latbench.keys import validate_file_name

        validate_file_name(args.name, "--name")
    if args.source == "help":
        if args.urls or args.name or args.sha256:
            raise ValueError("fetch help takes no URLs, --name or --sha256 (use --base-url)")
        reports = fetch_help(
            args.data_home,
            args.only,
            args.overwrite,
            base_url=args.base_url or HELP_BASE_URL,
            timeout=args.timeout,
        )
    else:
        if not args.urls:
            raise ValueError(
                "fetch eagle needs the URL(s) of release files; `latbench fetch latbench`"
                " downloads the whole release from its Google Drive folder"
            )
        if args.base_url:
            raise ValueError("--base-url is for fetch help only")
        if (args.name or args.sha256) and len(args.urls) != 1:
            raise ValueError("--name and --sha256 apply to a single URL")
        urls: Any = {args.name: args.urls[0]} if args.name else args.urls
        sha = None
        if args.sha256:
            sha = {args.name or url_file_name(args.urls[0]): args.sha256}
        reports = fetch_urls(
            "eagle",
            urls,
            args.data_home,
            args.only,
            args.overwrite,
            sha256=sha,
            timeout=args.timeout,
        )
    _print_reports(reports)
    return 0


def _cmd_arch(args: argparse.Namespace) -> int:
    from latbench.network import costs

    if args.nb201:
        from latbench.space import Arch

        text = args.arch.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 6):
            raise ValueError(f"--nb201: {safe(args.arch)!r} is not a NAS-Bench-201 index")
        arch = Arch.from_nb201_index(int(text))
    else:
        arch = parse_arch_arg(args.arch)
    g = arch.graph
    c = costs(g)
    info = {
        "arch_str": arch.str,
        "arch_id": arch.id,
        "nb201_index": arch.nb201_index,
        "vector": list(arch.vector),
        "valid": arch.valid,
        "graph_key": g.key,
        "iso_key": g.iso_key,
        "flops": c.flops,
        "params": c.params,
    }
    if args.latencies:
        info["latencies"] = _latencies(arch.id, args.data_home)
    if args.json:
        print(json.dumps(info))
        return 0
    for name, value in info.items():
        if name != "latencies":
            print(f"{name:<12}{value}")
    for row in info.get("latencies", []):
        lat = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.4g} ms"
        print(f"  {safe(row['key']):<40}{lat:>12}  {safe(row['status'])}")
    return 0


def _latencies(aid: int, home: str | None) -> list[dict[str, Any]]:
    from latbench.dataset import DatasetError
    from latbench.loader import devices, load

    out = []
    for key in devices(home).query("available")["key"]:
        try:
            df = load(key, data_home=home).set_index("arch_id")
        except DatasetError as exc:  # one damaged file: marked, the others still answer
            import warnings

            warnings.warn(str(exc), stacklevel=2)  # one line on stderr, naming the file
            out.append({"key": key, "status": "unreadable (latbench check)", "latency_ms": None})
            continue
        if aid not in df.index:  # sampled datasets hold only their selection
            out.append({"key": key, "status": "absent", "latency_ms": None})
            continue
        row = df.loc[aid]
        lat = row["latency_ms"]
        out.append(
            {
                "key": key,
                "status": row["status"],
                "latency_ms": None if pd.isna(lat) else float(lat),
            }
        )
    return out


def _cmd_export(args: argparse.Namespace) -> int:
    from latbench.dataset import atomic_path, write_dataset
    from latbench.keys import check_output
    from latbench.loader import load

    out = Path(args.output)
    fmt = args.format or {".csv": "csv", ".parquet": "parquet"}.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format from {safe(out.name)!r}; pass --format csv|parquet"
        )
    if fmt == "parquet" and not out.name.endswith(".parquet"):
        # `latbench check` and the data home know a LatBench Parquet file by this ending
        raise ValueError(
            f"{safe(out.name)!r}: a Parquet export's name must end in '.parquet' (lower case),"
            f" which `latbench check` and `load` read; e.g. {safe(out.with_suffix('.parquet'))}"
        )
    with _export_lock(out, args.data_home):
        check_output(out, args.overwrite)  # never replaces a FIFO, socket or device node
        df = load(args.key, data_home=args.data_home)
        if fmt == "parquet":
            write_dataset(df, out, df.attrs.get("metadata"))
        else:
            with atomic_path(out) as tmp:
                df.to_csv(tmp, index=False)
    print(f"wrote {len(df)} rows of {safe(args.key)} -> {safe(out)}")
    return 0


def _export_lock(out: Path, home: str | None) -> Any:
    """A context that holds the write lock of the dataset ``out`` belongs to
    (:func:`latbench.lock.file_owner`) when ``out`` lies in a data folder: the data home,
    or a folder holding that dataset's lock file (every writer that locks leaves one);
    otherwise one that holds nothing."""
    import contextlib

    from latbench.loader import data_home
    from latbench.lock import file_owner, hold_files

    owner = file_owner(out)
    if owner is None:
        return contextlib.nullcontext()
    folder, stem = owner
    # elsewhere no writer that locks has written this dataset yet, so none is writing it
    # now; and an export to ~/tmp/copy.parquet leaves no hidden lock file there
    with contextlib.suppress(OSError, ValueError):
        if (folder / f".{stem}.lock").exists() or folder.resolve() == data_home(home).resolve():
            return hold_files([out], "written")
    return contextlib.nullcontext()


def _add_data_home(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-home",
        type=nonempty("a folder"),
        metavar="DIR",
        help="dataset folder (default: $LATBENCH_HOME or the user data directory)",
    )


def _add_import_options(p: argparse.ArgumentParser) -> None:
    _add_data_home(p)
    p.add_argument(
        "--only", nargs="+", metavar="KEY", help="import only these dataset keys or aliases"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing dataset files")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latbench`` command."""
    from latbench import __version__

    parser = OneLineParser(
        prog=_PROG,
        description="LatBench: latency datasets of the 15,625 NAS-Bench-201 architectures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "devices",
        help="list known datasets",
        description="List every known dataset (catalog and local files) and whether it is"
        " available.",
    )
    _add_data_home(p)
    p.add_argument("--available", action="store_true", help="only datasets present locally")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser(
        "info",
        help="metadata and summary statistics of a dataset",
        description="Show a dataset's metadata, row counts by status, latency"
        " statistics and correlation of latency with FLOPs and params.",
    )
    p.add_argument("key", help="dataset key or alias (see `latbench devices`)")
    _add_data_home(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "import",
        help="import published latency files",
        description="Parse published files (validated, pickles read with a"
        " restricted unpickler) and write one dataset file per device.",
    )
    p.add_argument("importer", choices=["eagle", "help", "hwnasbench", "nb201-accuracy"],
                   help="source format (nb201-accuracy: NATS-Bench accuracy CSV)")  # fmt: skip
    p.add_argument(
        "path",
        type=nonempty("a file or folder"),
        help="a file or a folder of files (eagle: *.pickle/*.pkl, help: *.pt,"
        " hwnasbench: HW-NAS-Bench-v1_0.pickle)",
    )
    p.add_argument(
        "--key",
        help="eagle: import one file that is not a published release file under this key",
    )
    _add_import_options(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser(
        "fetch",
        help="download published files and import them",
        description="Download published files, check their SHA-256 against the pinned"
        " sums (where pinned) and import them like `latbench import`: `latbench fetch latbench` (the"
        " LatBench release, from the authors' Google Drive folder), `latbench fetch help`"
        " (HELP, pinned GitHub commit), `latbench fetch eagle URL...` (release files at"
        " URLs you give), `latbench fetch nb201-accuracy` (NAS-Bench-201 accuracies, a"
        " pinned GitHub commit; not bundled), `latbench fetch hwnasbench` (HW-NAS-Bench's"
        " six devices, a pinned GitHub commit; no SHA-256 is pinned for it, so the"
        " download's is printed and recorded, and --sha256 requires one).",
    )
    p.add_argument("source", choices=["latbench", "help", "eagle", "nb201-accuracy", "hwnasbench"],
                   help="which publication (nb201-accuracy: NAS-Bench-201 accuracies)")  # fmt: skip
    p.add_argument("urls", nargs="*", metavar="URL",
                   help="file URLs (eagle; nb201-accuracy, hwnasbench: one mirror)")  # fmt: skip
    p.add_argument("--base-url", help="mirror folder URL for help (checksums still apply)")
    p.add_argument("--name", help="release file name for a URL whose path has none")
    p.add_argument("--sha256", help="expected SHA-256 of a single URL (eagle, hwnasbench)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--folder-id", help="latbench: Google Drive folder id (default: the authors')")
    p.add_argument("--quiet", action="store_true", help="latbench: no download progress")
    _add_import_options(p)
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser(
        "arch",
        help="describe one architecture",
        description="Print an architecture's string, id, vector, validity,"
        " pruned-graph keys, FLOPs and params.",
    )
    p.add_argument("arch", help="NAS-Bench-201 string, arch_id, or vector like 3,3,4,1,3,1")
    p.add_argument("--nb201", action="store_true",
                   help="read ARCH as the official NAS-Bench-201 index (as NAS-Bench-201,"
                        " NATS-Bench and HELP number the cells), not LatBench's arch_id")  # fmt: skip
    p.add_argument("--latencies", action="store_true", help="also its latency in local datasets")
    _add_data_home(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_arch)

    p = sub.add_parser(
        "export",
        help="write a dataset as CSV or Parquet",
        description="Write a dataset to a CSV or Parquet file.",
    )
    p.add_argument("key", help="dataset key or alias")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.add_argument("--format", choices=["csv", "parquet"], help="default: from -o's suffix")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_data_home(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "check",
        help="verify dataset, per-layer, prediction and raw files",
        description="Verify files LatBench wrote (datasets, per-layer tables, predictions,"
        " the accuracy table, a run's parts, raw timings): bundled-manifest SHA-256, Parquet"
        " page checksums and digests, row checks, HDF5 Fletcher-32 and digest. A Parquet"
        " file without LatBench metadata is refused. Exit 2 if any fails.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="LatBench .parquet or .raw.h5 files")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "rewrite",
        help="rewrite old files with checksums (content unchanged)",
        description="Rewrite files written before LatBench stored checksums, in place and"
        " atomically, after checking them; the data stays identical. Every file is checked"
        " before any is rewritten: one refused (a Parquet file without LatBench metadata,"
        " a damaged or missing file) leaves them all unchanged. A write that fails (a full"
        " disk) stops there; each file rewritten before it is listed. A file that has its"
        " checksums already is left as it is, and listed as unchanged.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="LatBench .parquet or .raw.h5 files")
    p.set_defaults(func=_cmd_rewrite)
    return parser


def _cmd_check(args: argparse.Namespace) -> int:
    from latbench.integrity import check_file

    failed = 0
    for f in args.files:
        try:
            print(safe_line(check_file(f)))
        except BrokenPipeError:
            raise  # the reader left (`| head`): not a failed file
        except (ValueError, OSError) as exc:
            failed += 1
            print(f"{_PROG}: error: {_one_line(exc)}", file=sys.stderr)
    return 2 if failed else 0


def _cmd_rewrite(args: argparse.Namespace) -> int:
    from latbench.integrity import rewrite_files

    # each file's line as soon as it is rewritten: a full disk midway still says which were
    rewrite_files(args.files, report=lambda line: print(safe_line(line), flush=True))
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return safe_line(text, 1000) or type(exc).__name__


@interruptible(_PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``latbench`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with one_line_warnings(_PROG):
            return int(args.func(args))
    except BrokenPipeError:
        raise  # before OSError below: a reader gone is no error (interruptible)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("latbench"):
            raise  # our own module missing is a bug, not an absent extra
        from latbench.extras import missing_extra

        print(missing_extra(exc, _PROG), file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError, KeyLocked) as exc:
        print(f"{_PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
