"""Download published latency files and import them with the regular importers.

Downloads are verified against pinned SHA-256 sums (where one is pinned) before anything
is imported, and imported through the same parsing code as a local folder
(:func:`latbench.importers.import_datasets`):

- the LatBench release from the authors' Google Drive folder with gdown
  (:func:`fetch_latbench`), each file checked against
  :data:`~latbench.importers.registry.REGISTRY`;
- HELP's files from GitHub at a pinned commit with pooch (:func:`fetch_help`);
- HW-NAS-Bench's pickle from GitHub at a pinned commit (:func:`fetch_hwnasbench`): no
  SHA-256 of it is pinned here, so its first download's is recorded and later reuse is
  checked against it;
- any release file from URLs you give (:func:`fetch_urls`).

Raw downloads are kept in ``<data_home>/downloads/<source>/`` (as scikit-learn's
``fetch_*`` keep theirs), so a second fetch downloads nothing that verifies.
:func:`fetch_dataset` is what ``latbench.load(key, download=True)`` calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from latbench.catalog import CATALOG
from latbench.dataset import atomic_path
from latbench.files import read_capped
from latbench.importers import ImportReport, import_datasets
from latbench.importers.common import ImportFormatError, canonical_key, sha256_file
from latbench.importers.eagle import SUFFIXES as EAGLE_SUFFIXES
from latbench.importers.help import INDEX_FILE
from latbench.importers.hwnasbench import DEVICES as HWNASBENCH_DEVICES
from latbench.importers.hwnasbench import FILE_NAME as HWNASBENCH_FILE
from latbench.importers.hwnasbench import hwnasbench_key
from latbench.importers.registry import DRIVE_FOLDER_ID, REGISTRY, ReleaseFile, by_name
from latbench.loader import data_home as _data_home
from latbench.safepickle import CorruptPickleError, UnsafePickleError

__all__ = [
    "HELP_BASE_URL",
    "HELP_SHA256",
    "HWNASBENCH_URL",
    "ChecksumError",
    "FetchError",
    "download",
    "download_dir",
    "fetch_accuracy",
    "fetch_dataset",
    "fetch_help",
    "fetch_hwnasbench",
    "fetch_latbench",
    "fetch_urls",
    "url_file_name",
]

HELP_COMMIT = "45f70eb92d0d735970a33b608d1544ad3c52f285"
HELP_BASE_URL = f"https://github.com/HayeonLee/HELP/raw/{HELP_COMMIT}/data/nasbench201/"
"""Folder URL of HELP's NAS-Bench-201 files at the pinned commit."""

HELP_SHA256: Mapping[str, str] = {
    "1080ti_1.pt": "4028f52b2c2441da126932e3827ae11a7f76d39818c4374c1b9ab9df236e23f4",
    "1080ti_256.pt": "435af0ccfab01f5dc55dc9f2e8b90ca37b396b2656e327bba5ee0b6eb9c24464",
    "1080ti_32.pt": "affce4fcdcf6f28622365995ef2ec018bb07d448add59f80633c0978c393cdea",
    "2080ti_1.pt": "38cf0e8f698abf8696c69b41a358fe9ddedf5d54cb1ae6f85b04dd8a8f89a1b3",
    "2080ti_256.pt": "daee655c44c46955d8318ddf0fa39254e70bab1ae723a6abc53d7b7e4e1561ae",
    "2080ti_32.pt": "ebc603ad325850663fc56c8e0fde52fadea28e585a8405864baa20f986eaf29d",
    "essential_ph_1.pt": "a97165c8669a216b9ca046041c83a07352bd07f2a42e2d8fea8b51e7ddbcabf0",
    "eyeriss.pt": "6f1dd2f8c0442289a09ab78e63e49bde96489f6d455cc33d5fa5aed37edb5d03",
    "fpga.pt": "6a0333c1476a3ab039d8c39e5d42ac99efe9e7f3ff521289569013fa84233b28",
    "gold_6226.pt": "6a00f63d14f67f8007ec04519f638a90aa6ed5357cf5c0e60c391df37f186c99",
    "gold_6240.pt": "ac6dd41f183de69bba21dec3954ac73333b7dec871e0defbcce0572d82536890",
    "pixel2.pt": "051845ddefc2bc138f21e2217f6c7827fe280c78375cbfb4b5bd252a888cb950",
    "pixel3.pt": "cf1387da12e06b1d4541ce85f3ca4869d551084e09daf4acf024b6e21a80d465",
    "raspi4.pt": "2fae425c50bcaef7aacc5391244cd0af98bfc7fba689a8741e461cb18192f57c",
    "samsung_a50.pt": "0872cb4ec8ecc7ea1b3bd8c98dd705f2d0f6e4940f3af833b313e484de39b155",
    "samsung_s7.pt": "dbae32364b882022adb044b2aa1af77b66f43a180930d9be4d4c13532429f0ea",
    "silver_4114.pt": "0cce9dc9ba62ad81c21275298a88cb0e4534db6474a878f089df0abb13293421",
    "silver_4210r.pt": "f976049bda39abde94b8f8cac90140cb78a5069fc145c462d6d6bc2f8450727a",
    "str_arch2idx.pt": "e1d7b7cc7cf51d7c3cd6f9e726e7395bea87d7ba674e26202fb8633f963aef0d",
    "titan_rtx_1.pt": "a854dac331e2a37d7dcd6ee1f63d1bc6d73ead3aeb0a86f803f45ea1b294859e",
    "titan_rtx_256.pt": "cff1fba40b1743d3716cfb74c86ac2463d0682c146f356fa9095ac0d02dfb2a5",
    "titan_rtx_32.pt": "1258bee5501fe191530b9898a4f55a122ab30beec9c6ea74598c47a0173babed",
    "titanx_1.pt": "3461cc686263bd0ce4d4cd915bfc2fe067deb139cc68da387741bd6443434cb0",
    "titanx_256.pt": "04ddb80719515687bd3d722235cd5da821b50bd453a9e580b1e9d321dfb92941",
    "titanx_32.pt": "9c4ca69131e34451fb1e104caa47efbe12ffec3cc47bf051613674d7af044ff2",
    "titanxp_1.pt": "935aa0041c6592bed90f2f94ff3b4d40e892c066467864b704e6583682a57b20",
    "titanxp_256.pt": "9f03206bc62b0dcfc882820de07f55dc1fb7f43f57dfc977e4f0f4b019cb5041",
    "titanxp_32.pt": "4b6db63c7a9fb55177aa2649d70031dd86d2ed1609467ef5803dc1089a73cb1b",
}
"""SHA-256 of each HELP file at :data:`HELP_COMMIT`."""

HWNASBENCH_COMMIT = "393bb8a02554dcd28e091fbbdb4d7aefe590018a"
HWNASBENCH_URL = (
    f"https://github.com/GATECH-EIC/HW-NAS-Bench/raw/{HWNASBENCH_COMMIT}/{HWNASBENCH_FILE}"
)
"""HW-NAS-Bench's pickle at the pinned commit (GitHub serves it, Git LFS or not)."""

MAX_BYTES = 256 << 20
"""Largest download accepted (above the importers' own caps; the release's and HELP's
files are about 2 MB each)."""


class FetchError(OSError):
    """A download that failed: unreachable URL, HTTP error or oversized response."""


DRIVE_FOLDER_URL = f"https://drive.google.com/drive/folders/{DRIVE_FOLDER_ID}"
"""Where the LatBench release can be downloaded by hand."""
HELP_FOLDER_URL = f"https://github.com/HayeonLee/HELP/tree/{HELP_COMMIT}/data/nasbench201"
"""Where HELP's NAS-Bench-201 files can be downloaded by hand."""

_BY_HAND = {
    "latbench": f"download the release's .pickle files by hand from {DRIVE_FOLDER_URL}"
    " and import them with: latbench import eagle PATH",
    "help": f"download HELP's .pt files by hand from {HELP_FOLDER_URL}"
    " and import them with: latbench import help PATH",
    "eagle": "download the files by hand and import them with: latbench import eagle PATH",
    "nb201-accuracy": "download the CSV by hand and import it with:"
    " latbench import nb201-accuracy FILE",
    "hwnasbench": f"download {HWNASBENCH_FILE} by hand from"
    f" https://github.com/GATECH-EIC/HW-NAS-Bench/tree/{HWNASBENCH_COMMIT}"
    f" and import it with: latbench import hwnasbench PATH",
}

_NET_REASONS = (
    (("NameResolution", "Failed to resolve", "Name or service not known", "getaddrinfo",
      "nodename nor servname", "Temporary failure in name resolution"),
     "cannot resolve {host} (offline?)"),
    (("Connection refused", "ConnectionRefused"), "{host} refused the connection"),
    (("Network is unreachable", "No route to host"), "no route to {host} (offline?)"),
    (("timed out", "Timeout"), "{host} did not answer in time"),
    (("SSL", "CERTIFICATE"), "TLS/SSL failure with {host}"),
)  # fmt: skip


def _net_reason(exc: BaseException) -> str:
    """A short, single-line reason for a network error (urllib3's run to 400 characters)."""
    text = " ".join(str(exc).split())
    found = re.search(r"host='([^']+)'", text)
    host = found.group(1) if found else "the host"
    for needles, say in _NET_REASONS:
        if any(n in text for n in needles):
            return say.format(host=host)
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _offline(what: str, source: str, exc: BaseException) -> FetchError:
    return FetchError(f"cannot {what}: {_net_reason(exc)}; {_BY_HAND[source]}")


class ChecksumError(ValueError):
    """A downloaded file whose SHA-256 differs from the expected one."""


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    timeout: float = 60.0,
    max_bytes: int = MAX_BYTES,
    source: str = "eagle",
) -> Path:
    """Download ``url`` to the file ``dest`` atomically, checking ``sha256`` if given.

    On any failure ``dest`` is left as it was; a network failure raises
    :class:`FetchError` naming how to get the file by hand (``source``: ``eagle``,
    ``help``, ``latbench``, ``nb201-accuracy`` or ``hwnasbench``).
    """
    _download(url, Path(dest), sha256, timeout=timeout, max_bytes=max_bytes, source=source)
    return Path(dest)


def _download(
    url: str, dest: Path, sha256: str | None, *, timeout: float, max_bytes: int, source: str
) -> str:
    """:func:`download`, returning the SHA-256 it computed on the way."""
    digest = hashlib.sha256()
    size = 0
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    size += len(block)
                    if size > max_bytes:
                        raise FetchError(f"{url}: larger than {max_bytes} bytes; refusing it")
                    digest.update(block)
                    out.write(block)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _offline(f"download {url}", source, reason) from None
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ChecksumError(
                f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {sha256}"
                " (changed upstream or corrupted in transit); nothing was imported"
            )
    return digest.hexdigest()


def _help_files(keys: Collection[str] | None) -> list[str]:
    by_key = {
        e.key: f"{e.files[0]}.pt" for e in CATALOG.values() if e.importer == "help" and e.files
    }
    if keys is None:
        return sorted(by_key.values())
    names = []
    for k in keys:
        key = canonical_key(k)
        if key not in by_key:
            raise ValueError(f"{k!r} is not a HELP dataset; known: {', '.join(sorted(by_key))}")
        names.append(by_key[key])
    return sorted(set(names))


def download_dir(source: str, data_home: str | os.PathLike[str] | None = None) -> Path:
    """Where raw downloads of ``source`` (``help``, ``latbench``, ...) are kept."""
    return _data_home(data_home) / "downloads" / source


def _help_pooch(base_url: str, cache: Path, timeout: float) -> tuple[Any, Any]:
    import pooch

    base = base_url if base_url.endswith("/") else base_url + "/"
    return pooch.create(
        path=cache,
        base_url=base,
        registry={name: f"sha256:{digest}" for name, digest in HELP_SHA256.items()},
        retry_if_failed=1,
        allow_updates=False,
    ), pooch.HTTPDownloader(progressbar=False, timeout=timeout)


def _pooch_fetch(pup: Any, downloader: Any, name: str, url: str) -> Path:
    import requests

    try:
        return Path(pup.fetch(name, downloader=downloader))
    except ValueError as exc:  # pooch's hash mismatch; it has removed the file already
        if "hash" not in str(exc).lower():  # e.g. requests refusing a timeout: no checksum issue
            raise FetchError(f"cannot download {url}: {' '.join(str(exc).split())}") from None
        raise ChecksumError(
            f"{url}: {name}: SHA-256 does not match the pinned one (changed upstream or"
            f" corrupted in transit); nothing was imported ({' '.join(str(exc).split())})"
        ) from None
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise FetchError(f"cannot download {url}: HTTP {code}") from None
    except (requests.RequestException, OSError) as exc:
        raise _offline(f"download {url}", "help", exc) from None


def fetch_help(
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
    *,
    base_url: str = HELP_BASE_URL,
    timeout: float = 60.0,
) -> list[ImportReport]:
    """Download HELP's files (all, or those of ``keys``) with pooch and import them.

    Every file is checked against :data:`HELP_SHA256`, also when ``base_url`` points
    at a mirror; verified files are kept in :func:`download_dir` ``("help")``.
    """
    names = [*_help_files(keys), INDEX_FILE]
    cache = download_dir("help", data_home)
    pup, downloader = _help_pooch(base_url, cache, timeout)
    base = base_url if base_url.endswith("/") else base_url + "/"
    with tempfile.TemporaryDirectory(prefix="latbench-fetch-") as tmp:
        for name in names:
            got = _pooch_fetch(pup, downloader, name, urllib.parse.urljoin(base, name))
            os.symlink(got, Path(tmp, name))
        return import_datasets("help", tmp, data_home, keys, overwrite)


def fetch_hwnasbench(
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
    *,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> tuple[list[ImportReport], str]:
    """Download HW-NAS-Bench's pickle (from :data:`HWNASBENCH_URL`, or a mirror ``url``)
    and import its datasets (all, or those of ``keys``); return the reports and the
    file's SHA-256.

    No SHA-256 of the published file is pinned in this version: the pinned commit fixes
    the content upstream, TLS guards the transfer, and the importer validates every
    value. With ``sha256`` the download must match it (:class:`ChecksumError`, nothing
    imported). The file is kept in :func:`download_dir` ``("hwnasbench")`` with its
    SHA-256 and URL, and reused, without downloading, when the same URL is asked for and
    it still has that digest (or, with ``sha256``, whenever it has that one); a damaged
    copy is downloaded again, and a file the importer refuses is not kept. ``keys`` are
    checked before any download.
    """
    known = sorted(hwnasbench_key(d) for d in HWNASBENCH_DEVICES)
    for k in keys or ():  # before any download
        if canonical_key(k) not in known:
            raise ValueError(f"{k!r} is not a HW-NAS-Bench dataset; known: {', '.join(known)}")
    cache = download_dir("hwnasbench", data_home)
    kept, record = cache / HWNASBENCH_FILE, cache / f"{HWNASBENCH_FILE}.sha256"
    want, url = (sha256.lower() if sha256 else None), (url or HWNASBENCH_URL).strip()
    digest, source = _kept_digest(kept, record, want, url)
    if digest is None:  # a failed download leaves the kept copy and its record as they were
        cache.mkdir(parents=True, exist_ok=True)
        digest = _download(
            url, kept, want, timeout=timeout, max_bytes=MAX_BYTES, source="hwnasbench"
        )
        source = url
        with atomic_path(record) as tmp:
            tmp.write_text(f"{digest} {url}\n", encoding="utf-8")
    try:
        return import_datasets("hwnasbench", kept, data_home, keys, overwrite), digest
    except (ImportFormatError, UnsafePickleError, CorruptPickleError) as exc:
        # not HW-NAS-Bench's file (a wrong mirror, a changed upstream): kept, every later
        # fetch would reuse it
        for path in (record, kept):
            with contextlib.suppress(OSError):
                path.unlink()
        raise ImportFormatError(f"{exc} (downloaded from {source}; not kept)") from None


def _kept_digest(kept: Path, record: Path, want: str | None, url: str) -> tuple[str | None, str]:
    """The SHA-256 of the kept HW-NAS-Bench file and where it came from, if it may be
    reused: it still has the digest recorded when it was downloaded from ``url``, or the
    one the user requires (``want``, from wherever). Otherwise ``(None, url)``."""
    if not kept.is_file():
        return None, url
    try:
        text = read_capped(record, 4096).decode("utf-8", "replace").split(maxsplit=1)
    except (OSError, ValueError):
        text = []
    recorded, source = (text[0].lower(), text[1].strip()) if len(text) == 2 else ("", "")
    digest = sha256_file(kept)
    if want is not None:
        return (digest, source or "a copy kept earlier") if digest == want else (None, url)
    return (digest, source) if digest == recorded and source == url else (None, url)


def _gdown_error(what: str, exc: BaseException) -> FetchError:
    return _offline(what, "latbench", exc)


def _release_selection(keys: Collection[str] | None) -> dict[str, ReleaseFile]:
    by_key = {f.key: f for f in REGISTRY.values()}
    if keys is None:
        return by_key
    out = {}
    for k in keys:
        key = canonical_key(k)
        if key not in by_key:
            raise ValueError(
                f"{k!r} is not a dataset of the LatBench release; known: {', '.join(by_key)}"
            )
        out[key] = by_key[key]
    return out


def fetch_latbench(
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
    *,
    folder_id: str = DRIVE_FOLDER_ID,
    quiet: bool = True,
) -> list[ImportReport]:
    """Download the LatBench release from the authors' Google Drive folder and import it.

    Lists the folder with gdown, downloads the files of ``keys`` (default: every
    published file the folder holds) into :func:`download_dir` ``("latbench")``,
    checks each against the SHA-256 of :data:`~latbench.importers.registry.REGISTRY`
    and imports them. Files already there that verify are not downloaded again.
    Raises :class:`ChecksumError` (importing nothing) for a file whose content is not
    the published one, :class:`FetchError` when Drive cannot be reached or listed.
    """
    import gdown

    wanted = _release_selection(keys)
    cache = download_dir("latbench", data_home)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        listing = gdown.download_folder(
            id=folder_id, output=str(cache), quiet=quiet, skip_download=True, use_cookies=False
        )
    except Exception as exc:  # gdown raises its own, requests' and plain errors
        raise _gdown_error(f"list the Google Drive folder {folder_id}", exc) from None
    if not listing:
        raise FetchError(f"the Google Drive folder {folder_id} lists no files")
    chosen: dict[str, tuple[str, ReleaseFile]] = {}  # key -> (Drive file id, entry)
    for item in listing:
        entry = by_name(Path(item.path).name)
        if entry is not None and entry.key in wanted and entry.key not in chosen:
            chosen[entry.key] = (item.id, entry)
    absent = [k for k in wanted if k not in chosen]
    if keys is not None and absent:
        raise FetchError(
            f"the Google Drive folder {folder_id} holds no file for {', '.join(absent)}"
        )
    if not chosen:
        raise FetchError(f"the Google Drive folder {folder_id} holds no LatBench release file")
    with tempfile.TemporaryDirectory(prefix="latbench-fetch-") as tmp:
        for file_id, entry in chosen.values():
            target = cache / f"{entry.name}.pickle"
            if not (target.is_file() and sha256_file(target) == entry.sha256):
                _gdown_file(gdown, file_id, target, entry, quiet)
            os.symlink(target, Path(tmp, target.name))
        return import_datasets("eagle", tmp, data_home, list(chosen), overwrite)


def _gdown_file(gdown: Any, file_id: str, target: Path, entry: ReleaseFile, quiet: bool) -> None:
    with atomic_path(target) as part:
        try:
            gdown.download(id=file_id, output=str(part), quiet=quiet, use_cookies=False)
        except Exception as exc:
            raise _gdown_error(f"download {entry.name} (Drive id {file_id})", exc) from None
        digest = sha256_file(part)
        if digest != entry.sha256:
            raise ChecksumError(
                f"{entry.name} from Google Drive: SHA-256 {digest} is not the published"
                f" {entry.sha256} (changed upstream or corrupted in transit); nothing was imported"
            )


def fetch_dataset(key: str, data_home: str | os.PathLike[str] | None = None) -> ImportReport:
    """Download and import the one catalog dataset ``key`` (what ``load(download=True)`` does).

    Raises :class:`ValueError` for a dataset that has no download (bundled, measured),
    naming how to get it instead.
    """
    canonical = canonical_key(key)
    entry = CATALOG.get(canonical)
    if entry is not None and entry.importer == "eagle":
        reports = fetch_latbench(data_home, [canonical])
    elif entry is not None and entry.importer == "help":
        reports = fetch_help(data_home, [canonical])
    elif entry is not None and entry.importer == "hwnasbench":
        reports, _ = fetch_hwnasbench(data_home, [canonical])
    else:
        how = entry.import_command if entry is not None else "measure it or import it"
        raise ValueError(f"dataset {key!r} cannot be downloaded; get it with: {how}")
    return next(r for r in reports if r.key == canonical)


def url_file_name(url: str) -> str:
    """The file name at the end of a URL's path."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name or name in (".", ".."):
        raise ValueError(f"{url}: cannot tell the file name from the URL; give it a name")
    return name


def _local_name(importer: str, name: str) -> str:
    # A folder import picks release files by suffix; Drive links often lack one.
    if importer == "eagle" and Path(name).suffix not in EAGLE_SUFFIXES:
        return name + ".pickle"
    return name


def fetch_urls(
    importer: str,
    urls: Sequence[str] | Mapping[str, str],
    data_home: str | os.PathLike[str] | None = None,
    keys: Collection[str] | None = None,
    overwrite: bool = False,
    *,
    sha256: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> list[ImportReport]:
    """Download files and import them with ``importer`` as one folder.

    ``urls`` is a list of URLs (file name taken from each URL) or a mapping of file
    name -> URL, for links whose path carries no name (the release file name selects
    the dataset key). ``sha256`` maps file names to expected checksums.
    """
    if isinstance(urls, Mapping):
        named = dict(urls)
    else:
        named = {url_file_name(u): u for u in urls}
        if len(named) != len(urls):
            raise ValueError("two URLs end in the same file name; give names explicitly")
    if not named:
        raise ValueError("no URLs to fetch")
    for name in named:
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"file name {name!r} must be a plain name, not a path")
    checks = dict(sha256 or {})
    unknown = sorted(set(checks) - set(named))
    if unknown:
        raise ValueError(f"checksum given for unknown file name(s): {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="latbench-fetch-") as tmp:
        for name, url in named.items():
            target = Path(tmp, _local_name(importer, name))
            download(url, target, checks.get(name), timeout=timeout)
        return import_datasets(importer, tmp, data_home, keys, overwrite)


def fetch_accuracy(
    data_home: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    *,
    url: str | None = None,
    timeout: float = 60.0,
) -> Any:
    """Download the pinned NAS-Bench-201 accuracy CSV and import it (``latbench fetch
    nb201-accuracy``).

    The file must match :data:`~latbench.importers.registry.NB201_ACCURACY`'s SHA-256,
    also from a mirror ``url``; it is kept in :func:`download_dir` ``("nb201-accuracy")``
    and not downloaded again while it verifies. Raises :class:`ChecksumError` (writing
    nothing) for other content.
    """
    from latbench.accuracy_table import accuracy_path
    from latbench.importers.nb201_accuracy import import_accuracy
    from latbench.importers.registry import NB201_ACCURACY

    target = accuracy_path(data_home)
    if target.exists() and not overwrite:  # before any download
        raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")
    src = url or NB201_ACCURACY.url
    cached = download_dir("nb201-accuracy", data_home) / NB201_ACCURACY.name
    if not (cached.is_file() and sha256_file(cached) == NB201_ACCURACY.sha256):
        download(src, cached, NB201_ACCURACY.sha256, timeout=timeout, source="nb201-accuracy")
    return import_accuracy(cached, data_home, overwrite, url=src)
