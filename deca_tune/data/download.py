"""Fetch public files into the data root, checking SHA-256 sums.

Offline use: put the files where :func:`ensure_file` expects them (``--data-root`` or
``$DECA_TUNE_DATA``); nothing is downloaded when a file with the right checksum is present.
"""
from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path


class DataUnavailableError(FileNotFoundError):
    """A data file is neither on disk nor downloadable; the message says where it is expected."""


def locate(path: str | Path, root: str | Path, what: str, want: str = "file", hint: str = "") -> Path:
    """A user's path, as given or, when relative and not found, under the data root ``root``,
    resolved. ``want``: ``"file"``, or ``"any"`` (a file or a folder). Raises
    :class:`DataUnavailableError` naming ``what`` and every place looked at, or saying that a
    folder was given where a file is wanted (``hint``: what to give instead)."""
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(Path(root) / path)
    for cand in candidates:
        if cand.is_file() or (want == "any" and cand.exists()):
            return cand.resolve()
    folders = [c for c in candidates if c.is_dir()]
    if folders:
        raise DataUnavailableError(f"{what} {str(path)!r}: {folders[0].absolute()} is a directory"
                                   + (f", {hint}" if hint else ""))
    raise DataUnavailableError(f"{what} {str(path)!r} not found (looked at "
                               f"{', '.join(str(c.absolute()) for c in candidates)})")


@dataclass(frozen=True)
class RemoteFile:
    """One public file: where to get it and its SHA-256 (``None`` when the source publishes none)."""

    url: str
    sha256: str | None = None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(remote: RemoteFile, dest: Path, timeout: float = 30.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataUnavailableError(
            f"could not download {remote.url} ({exc}); put the file at {dest} "
            f"(or pass --data-root / set $DECA_TUNE_DATA to a folder that has it)"
        ) from exc
    if remote.sha256 and sha256_of(tmp) != remote.sha256:
        tmp.unlink(missing_ok=True)
        raise DataUnavailableError(f"checksum mismatch for {remote.url}; expected sha256 {remote.sha256}")
    tmp.replace(dest)


def ensure_file(path: Path, remote: RemoteFile | None, download: bool = True) -> Path:
    """Return ``path`` if it exists, else download ``remote`` there (checksum-verified)."""
    if path.exists():
        return path
    if remote is None or not download:
        where = f" (public source: {remote.url})" if remote else ""
        raise DataUnavailableError(f"missing data file {path}{where}")
    _download(remote, path)
    return path


def ensure_zip_member(folder: Path, member: str, archive: RemoteFile, archive_name: str,
                      download: bool = True) -> Path:
    """Return ``folder/member``; when absent, download ``archive`` and extract that member."""
    target = folder / member
    if target.exists():
        return target
    zip_path = ensure_file(folder / archive_name, archive, download=download)
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/" + member) or n == member]
        if not names:
            raise DataUnavailableError(f"{zip_path} has no member {member!r}")
        with zf.open(names[0]) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return target
