"""Resumable HTTP(S) downloads with checksum verification, and safe extraction of tar archives.

Data sets are gigabytes over connections that drop: a download writes to `<dest>.part`, continues it with a
`Range` request after an interruption (in the same call, or in a later one), and becomes `dest` only once it is
complete and, when a SHA-256 is given, verified. So `dest` existing means a whole, checked file.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from kws.common.progress import Progress

_CHUNK = 1 << 20
_TIMEOUT_SECONDS = 30.0
_USER_AGENT = "nano-kws-downloader"
_RETRY_DELAY_SECONDS = 2.0


class DownloadError(RuntimeError):
    """A download or extraction that failed; the message names the URL (or archive) and the reason."""


class _Interrupted(Exception):
    """A transfer that stopped early but can be continued from the part file."""


def download(
    url: str, dest: Path, sha256: str | None = None, progress: bool = True, *, attempts: int = 3
) -> Path:
    """Downloads `url` to `dest` and returns `dest`.

    Skips the transfer when `dest` already exists (and matches `sha256` when given). An interrupted transfer is
    resumed from `dest` + ".part", up to `attempts` times in this call; what is left of the part file after a
    failure is resumed by the next call. Raises DownloadError naming the URL and the reason.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None or _sha256_of(dest) == expected:
            return dest
        # A stale or corrupt file under the final name: fetch it again rather than trust it.
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    for attempt in itertools.count(1):
        try:
            _transfer(url, part, progress)
            break
        except _Interrupted as reason:
            if attempt >= attempts:
                resume = f"; run again to resume from {part}" if part.exists() else ""
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                raise DownloadError(f"{url}: {reason} (gave up after {tries}{resume})") from None
            # Transient failures (a dropped link, a busy server) tend to last a moment: do not retry at once.
            time.sleep(attempt * _RETRY_DELAY_SECONDS)
    if expected is not None:
        actual = _sha256_of(part)
        if actual != expected:
            part.unlink()
            raise DownloadError(
                f"{url}: SHA-256 mismatch (expected {expected}, got {actual}); removed {part}"
            )
    part.replace(dest)  # atomic on one file system: `dest` never holds a partial file
    return dest


def extract_tar(archive: Path, dest_dir: Path, progress: bool = True) -> Path:
    """Extracts a (compressed) tar archive into `dest_dir`, which must not exist yet, and returns it.

    Members that would land outside `dest_dir` (absolute paths, `..`, links out, device files) are refused
    (tarfile's "data" filter). The archive is unpacked beside `dest_dir` and renamed at the end, so an
    interrupted extraction never looks complete.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if dest_dir.exists():
        raise DownloadError(f"{archive}: cannot extract into {dest_dir}, it already exists")
    staging = dest_dir.with_name(dest_dir.name + ".extracting")
    if staging.exists():
        shutil.rmtree(staging)  # left over from an interrupted run
    staging.mkdir(parents=True)
    try:
        with (
            open(archive, "rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
            Progress(archive.stat().st_size, f"extracting {archive.name}", unit="B", enabled=progress) as bar,
        ):

            def members_with_progress() -> Iterator[tarfile.TarInfo]:
                # Progress follows the compressed bytes read: the uncompressed size is unknown up front.
                for member in tar:
                    yield member
                    bar.update(raw.tell() - bar.done)

            # extractall (not extract per member) so directory permissions are applied after their contents.
            tar.extractall(staging, members=members_with_progress(), filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive}: cannot extract ({error})") from None
    staging.rename(dest_dir)
    return dest_dir


def _transfer(url: str, part: Path, progress: bool) -> None:
    """Fetches the rest of `url` into `part`; raises _Interrupted for failures worth retrying."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            if _is_complete(offset, error.headers.get("Content-Range")):
                return  # the part file is whole; the caller verifies the checksum
            # The part file does not fit the file on the server (longer, or the server does not say): restart.
            part.unlink()
            _transfer(url, part, progress)
            return
        if error.code >= 500:
            raise _Interrupted(f"HTTP {error.code} {error.reason}") from None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _Interrupted(f"cannot connect ({error.reason})") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
        raise _Interrupted(f"cannot connect ({error!r})") from None
    with response:
        if response.status == 206:
            start = _range_start(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(f"{url}: server resumed at byte {start}, expected {offset}")
            mode = "ab"
        else:
            # The server ignored the Range header and sends the whole file: start over.
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        total = offset + remaining if remaining is not None else None
        received = 0
        with (
            open(part, mode) as out,
            Progress(total, f"downloading {url.rsplit('/', 1)[-1]}", unit="B", enabled=progress) as bar,
        ):
            bar.update(offset)
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
                raise _Interrupted(f"connection lost after {offset + received} bytes ({error!r})") from None
    # http.client returns a short body without complaint when the connection closes early.
    if remaining is not None and received < remaining:
        raise _Interrupted(f"connection closed after {offset + received} of {total} bytes")


def _is_complete(offset: int, content_range: str | None) -> bool:
    """Whether a 416 answer to `bytes=<offset>-` says the file has exactly `offset` bytes."""
    match = re.fullmatch(r"bytes \*/(\d+)", content_range or "")
    return match is not None and int(match.group(1)) == offset


def _range_start(content_range: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", content_range or "")
    return int(match.group(1)) if match else None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
