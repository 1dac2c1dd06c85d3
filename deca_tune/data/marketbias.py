"""``modcloth``, ``electronics``: the public marketBias CSVs (Wan et al., WSDM 2020), random 8:1:1.

Source: https://github.com/MengtingWan/marketBias (``data/df_modcloth.csv``,
``data/df_electronics.csv``; header ``item_id,user_id,rating,timestamp,...``). Files live under
``<root>/marketbias/``. The repository publishes no checksums, so downloads are not verified
unless you pass ``sha256=...``; the SHA-256 of the file read is recorded in ``meta``.

Processing (documented choices):
- rows with an empty ``user_id``/``item_id`` are dropped (the authors' own loader maps them to
  one shared '' id; we do not invent a user); the count is ``meta["dropped_missing_id"]``;
- repeated (user, item) pairs keep the latest row (``meta["dropped_duplicates"]``);
- a seeded *global* random 8:1:1 split of the interactions (as the paper: "randomly split the
  historical interactions"); users may have no training row (kept, as in the DeCA files);
- clean validation/test = rating 5; validation/test rows whose item never occurs in training
  are dropped (``meta["dropped_unseen_item_*"]``); users and items are re-indexed densely.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from deca_tune.data.registry import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, RemoteFile, ensure_file, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import MalformedFileError, read_csv_columns
from deca_tune.data.splits import build_split, dedupe_pairs, random_parts

REPO_RAW = "https://raw.githubusercontent.com/MengtingWan/marketBias/master/data"
KS = {"modcloth": (5, 20), "electronics": (10, 20, 50)}  # paper: K=5,20 / K=10,50 (+20 for selection)
CLEAN_RATING = 5


def load_marketbias(dataset: str, root: Path, download: bool = True, seed: int = 0,
                    sha256: str | None = None) -> RecSplit:
    """Load ``df_<dataset>.csv`` and split it (see the module docstring)."""
    fname = f"df_{dataset}.csv"
    path = root / "marketbias" / fname
    remote = RemoteFile(f"{REPO_RAW}/{fname}", sha256)
    try:
        ensure_file(path, remote, download=download)
    except DataUnavailableError as exc:
        raise DataUnavailableError(
            f"{dataset}: {path} not found and not downloadable ({exc}); fetch {remote.url} to "
            f"{path}, or pass --data-root / set $DECA_TUNE_DATA to a folder holding "
            f"marketbias/{fname}") from None
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256:
        raise DataUnavailableError(f"{path}: SHA-256 {digest} does not match the given {sha256}")
    head = pd.read_csv(path, nrows=0).columns
    kinds = {"user_id": "id", "item_id": "id", "rating": "number"}
    if "timestamp" in head:
        kinds["timestamp"] = "str"
    df, dropped_missing = read_csv_columns(path, kinds, missing_ids="drop")
    df = df.rename(columns={"user_id": "user", "item_id": "item"})
    if "timestamp" in df:
        df["timestamp"] = pd.to_datetime(df["timestamp"], errors="coerce", utc=True)
    df, dropped_dup = dedupe_pairs(df.reset_index(drop=True), "timestamp" if "timestamp" in df else None)
    df = df.reset_index(drop=True)
    if df.empty:
        raise MalformedFileError(f"{path}: no interactions left after dropping empty ids")
    parts = random_parts(len(df), int(seed))
    return build_split(
        dataset, df, parts, clean=df["rating"].to_numpy() >= CLEAN_RATING, ks=KS[dataset],
        meta={"source": remote.url, "files": {str(path): digest}, "seed": int(seed),
              "dropped_missing_id": dropped_missing, "dropped_duplicates": dropped_dup,
              "split": "global random 8:1:1 (seeded); clean = rating 5; valid/test items unseen "
                       "in train dropped"},
    )


@REC_DATASETS.register("modcloth")
def load_modcloth(root: Path, download: bool = True, seed: int = 0,
                  sha256: str | None = None) -> RecSplit:
    """Modcloth (marketBias CSV), random 8:1:1, clean = rating 5."""
    return load_marketbias("modcloth", root, download, seed, sha256)


@REC_DATASETS.register("electronics")
def load_electronics(root: Path, download: bool = True, seed: int = 0,
                     sha256: str | None = None) -> RecSplit:
    """Amazon Electronics (marketBias CSV), random 8:1:1, clean = rating 5."""
    return load_marketbias("electronics", root, download, seed, sha256)
