"""``ml-100k``: GroupLens MovieLens-100K ``u.data`` with a per-user chronological 8:1:1 split.

Every rating is a (noisy) positive for training; the clean validation/test sets are the
rating-5 interactions (the paper's section 5.1.1). Files live under ``<root>/ml-100k/``; when
``u.data`` is missing it is extracted from the official zip (downloaded if allowed) and checked
against its known SHA-256.
"""
from __future__ import annotations

from pathlib import Path

from deca_tune.data.registry import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, RemoteFile, ensure_zip_member, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import read_table
from deca_tune.data.splits import build_split, chrono_parts

ML100K_ZIP = RemoteFile("https://files.grouplens.org/datasets/movielens/ml-100k.zip")
#: SHA-256 of the official ``u.data`` (the zip publishes no checksum; the member is checked)
U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
CLEAN_RATING = 5


def u_data_path(root: Path, download: bool = True, verify: bool = True) -> Path:
    """``<root>/ml-100k/u.data``, extracted from the official zip when absent, checksum-verified."""
    folder = root / "ml-100k"
    try:
        path = ensure_zip_member(folder, "u.data", ML100K_ZIP, "ml-100k.zip", download=download)
    except DataUnavailableError as exc:
        raise DataUnavailableError(
            f"ml-100k: {folder / 'u.data'} not found and not downloadable ({exc}); download "
            f"{ML100K_ZIP.url} and unzip it so that the file is at {folder / 'u.data'}, or pass "
            f"--data-root / set $DECA_TUNE_DATA to a folder holding ml-100k/u.data") from None
    if verify:
        got = sha256_of(path)
        if got != U_DATA_SHA256:
            raise DataUnavailableError(
                f"{path}: SHA-256 {got} does not match the official u.data ({U_DATA_SHA256}); "
                f"remove it to re-download from {ML100K_ZIP.url}, or load it with the 'csv' "
                f"data set if it is a modified copy")
    return path


@REC_DATASETS.register("ml-100k")
def load_ml100k(root: Path, download: bool = True, verify: bool = True) -> RecSplit:
    """MovieLens-100K, per-user chronological 8:1:1, clean = rating 5, unseen items dropped."""
    path = u_data_path(root, download=download, verify=verify)
    df = read_table(path, ["user", "item", "rating", "timestamp"], sep="\t")
    parts = chrono_parts(df["user"].to_numpy(), df["timestamp"].to_numpy())
    return build_split(
        "ml-100k", df, parts, clean=df["rating"].to_numpy() >= CLEAN_RATING, ks=(3, 5, 10, 20),
        meta={"source": ML100K_ZIP.url, "files": {str(path): U_DATA_SHA256 if verify else None},
              "split": "per-user chronological 8:1:1 (ties: file order); clean = rating 5; "
                       "valid/test items unseen in train dropped"},
    )
