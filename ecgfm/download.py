"""Checksummed, resumable downloads of the raw archives (PhysioNet and Zenodo).

* PhysioNet projects publish ``SHA256SUMS.txt`` beside their files; every file listed there (or
  those matching ``include`` globs) is fetched from ``{physionet_url}/{project}/{version}/{path}``
  and verified against it.
* Zenodo records list their files with an MD5 checksum (``{zenodo_url}/api/records/{id}``);
  every file is fetched and verified, and ``.zip`` parts are extracted when ``extract`` is set.

A transfer goes to ``<name>.part``, is resumed with an HTTP Range request after a cut, retried
with exponential backoff, and renamed to its final name only once its checksum matches: a file
with its final name is always complete and verified. Archive members with absolute paths or
``..`` are refused.
"""
from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)
CHUNK = 1 << 20
USER_AGENT = "ecgfm-downloader/0.1 (+https://github.com/ecgfm)"


class DownloadError(RuntimeError):
    pass


class ChecksumError(DownloadError):
    pass


class UnsafeArchiveError(DownloadError):
    pass


_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
              TimeoutError)


def _request(url: str, timeout: float, offset: int = 0):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def fetch_text(url: str, timeout: float = 60, retries: int = 3, backoff_s: float = 1.0) -> str:
    """A small text resource (checksum list, record listing), with retries."""
    for attempt in range(retries + 1):
        try:
            with _request(url, timeout) as resp:
                return resp.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:
                raise DownloadError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except _TRANSIENT as exc:
            if attempt == retries:
                raise DownloadError(f"GET {url}: {exc}") from None
        time.sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_file(url: str, dest, checksum: tuple[str, str] | None, size: int | None = None,
               retries: int = 5, backoff_s: float = 2.0, timeout: float = 60,
               progress: bool = False) -> Path:
    """Download ``url`` to ``dest`` and verify ``checksum`` = (algorithm, hex digest).

    An existing ``dest`` that verifies is kept (nothing is transferred). A ``dest.part`` left by
    an interrupted run is resumed. A checksum mismatch removes the partial file and raises
    ``ChecksumError`` (after one fresh attempt if the bad file came from a resumed transfer).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if checksum is None or file_digest(dest, checksum[0]) == checksum[1].lower():
            return dest
        log.warning("%s exists but does not verify; downloading it again", dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        resumed_from = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, resumed_from, size, timeout, progress)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and resumed_from:      # nothing left to fetch: verify what we have
                pass
            elif exc.code >= 500 and attempt < retries:
                attempt += 1
                time.sleep(backoff_s * 2 ** (attempt - 1))
                continue
            else:
                raise DownloadError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except _TRANSIENT as exc:
            if attempt >= retries:
                raise DownloadError(f"GET {url}: gave up after {retries} retries ({exc}); "
                                    f"{part.name} is kept and will be resumed") from None
            attempt += 1
            log.warning("transfer of %s interrupted (%s); retry %d/%d", url, exc, attempt, retries)
            time.sleep(backoff_s * 2 ** (attempt - 1))
            continue
        if size is not None and part.stat().st_size != size:
            got = part.stat().st_size
            part.unlink()
            raise ChecksumError(f"{dest.name}: {got} bytes, expected {size}")
        if checksum is not None:
            digest = file_digest(part, checksum[0])
            if digest != checksum[1].lower():
                part.unlink()
                if resumed_from and attempt < retries:
                    attempt += 1
                    log.warning("%s: checksum mismatch after a resumed transfer; starting over", dest.name)
                    continue
                raise ChecksumError(f"{dest.name}: {checksum[0]} {digest} does not match the "
                                    f"published {checksum[1]}; the file was removed")
        os.replace(part, dest)
        return dest


def _transfer(url, part: Path, offset: int, size, timeout, progress) -> None:
    """Append the bytes of ``url`` from ``offset`` to ``part`` (restarting if Range is ignored)."""
    with _request(url, timeout, offset) as resp:
        if offset and resp.status != 206:       # server ignored the Range header: start over
            offset = 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        bar = None
        if progress:
            from tqdm import tqdm
            total = (expected + offset) if expected is not None else size
            bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5],
                       mininterval=1)
        received = 0
        with open(part, "ab" if offset else "wb") as fh:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


# --- archives ---------------------------------------------------------------------------------

def safe_member_path(dest: Path, name: str) -> Path:
    """Where archive member ``name`` goes under ``dest``; refuses absolute paths and ``..``."""
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or ".." in member.parts or (member.parts and ":" in member.parts[0]):
        raise UnsafeArchiveError(f"refusing archive member {name!r}: absolute path or '..'")
    return dest.joinpath(*member.parts)


def extract_zip(archive, dest) -> list[Path]:
    """Extract ``archive`` into ``dest`` after checking every member name; returns the files."""
    dest = Path(dest)
    out = []
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        targets = [safe_member_path(dest, m.filename) for m in members]   # check all first
        for member, target in zip(members, targets):
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            os.replace(tmp, target)
            out.append(target)
    return out


# --- sources ----------------------------------------------------------------------------------

def _matches(path: str, include) -> bool:
    return not include or any(fnmatch.fnmatch(path, pattern) for pattern in include)


def physionet_listing(base_url: str, project: str, version: str, options: dict) -> list[tuple[str, str]]:
    """(path, sha256) for every file of a PhysioNet project version, from its SHA256SUMS.txt."""
    url = f"{base_url.rstrip('/')}/{project}/{version}/SHA256SUMS.txt"
    text = fetch_text(url, options.get("timeout_s", 60), options.get("retries", 3), options.get("backoff_s", 1))
    listing = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            digest, path = parts
            safe_member_path(Path("."), path)
            listing.append((path.strip().lstrip("*"), digest))
    if not listing:
        raise DownloadError(f"{url} lists no file")
    return listing


def zenodo_listing(base_url: str, record: int, options: dict) -> list[dict]:
    """[{key, url, checksum: (algorithm, digest), size}] for a Zenodo record's files."""
    url = f"{base_url.rstrip('/')}/api/records/{record}"
    meta = json.loads(fetch_text(url, options.get("timeout_s", 60), options.get("retries", 3),
                                 options.get("backoff_s", 1)))
    files = meta.get("files")
    if isinstance(files, dict):          # InvenioRDM sometimes nests entries under "entries"
        files = list(files.get("entries", {}).values())
    if not files:
        raise DownloadError(f"{url}: the record lists no files")
    out = []
    for entry in files:
        algorithm, _, digest = entry["checksum"].partition(":")
        links = entry.get("links", {})
        link = links.get("content") or links.get("download") or links.get("self") or \
            f"{base_url.rstrip('/')}/records/{record}/files/{entry['key']}?download=1"
        safe_member_path(Path("."), entry["key"])
        out.append({"key": entry["key"], "url": link, "checksum": (algorithm, digest),
                    "size": entry.get("size")})
    return out


def download_source(spec: dict, dest, options: dict) -> list[str]:
    """Download (and verify, and optionally extract) a source described by ``spec`` into ``dest``.

    ``spec`` is a source's ``download`` block of the config; ``options`` the global ``download``
    block (URLs, retries, backoff, timeout, parallel). Returns the relative paths fetched.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    retry = {"retries": options.get("retries", 5), "backoff_s": options.get("backoff_s", 2.0),
             "timeout": options.get("timeout_s", 60)}
    include = spec.get("include")
    if spec["kind"] == "physionet":
        base = f"{options['physionet_url'].rstrip('/')}/{spec['project']}/{spec['version']}"
        jobs = [(f"{base}/{path}", path, ("sha256", digest), None)
                for path, digest in physionet_listing(options["physionet_url"], spec["project"],
                                                      spec["version"], options)
                if _matches(path, include)]
    elif spec["kind"] == "zenodo":
        jobs = [(f["url"], f["key"], f["checksum"], f["size"])
                for f in zenodo_listing(options["zenodo_url"], spec["record"], options)
                if _matches(f["key"], include)]
    else:
        raise DownloadError(f"unknown download kind {spec['kind']!r}")
    if not jobs:
        raise DownloadError(f"no file of the listing matches include={include}")
    log.info("%d files to fetch into %s", len(jobs), dest)

    single = len(jobs) == 1 or options.get("parallel", 1) == 1

    def run(job):
        url, rel, checksum, size = job
        return fetch_file(url, safe_member_path(dest, rel), checksum, size, progress=single, **retry)

    from tqdm import tqdm
    with ThreadPoolExecutor(max(1, int(options.get("parallel", 1)))) as pool:
        done = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="files", unit="file",
                         disable=single, mininterval=2))
    if spec.get("extract"):
        for path in done:
            if path.suffix == ".zip":
                log.info("extracting %s", path.name)
                extract_zip(path, dest)
    return [job[1] for job in jobs]
