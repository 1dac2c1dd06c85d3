"""``adressa``: the Adressa news-click split in the DenoisingRec file format (Wang et al., WSDM 2021).

Files under ``<root>/adressa/`` (ids as given, tab-separated):

- ``adressa.train.rating``: ``user item flag`` - every click is a training positive;
- ``adressa.valid.rating``: ``user item flag`` - the (noisy) validation clicks;
- ``adressa.test.negative``: the clean test set (clicks with dwell time > 10 s, the paper's
  section 5.1.1), either ``user item [flag]`` lines (the DeCA repository's copy) or NCF-style
  ``(user,item)<TAB>neg1<TAB>neg2...`` lines (the DenoisingRec loader's format; negatives ignored);
- ``adressa.test.noisy`` (optional, DeCA repository): all test clicks. Without it the noisy test
  set is the clean one (``meta["test_noisy_source"]`` says which).

``flag`` is 1 for a long-dwell (clean) click and 0 for a short one: the clean test file carries
only 1s, the click files both. So ``train_noisy = flag == 0`` and ``valid_clean`` = validation
rows with flag 1. ``n_users``/``n_items`` = max id + 1 over all files. Sources:
https://github.com/WenjieWWJ/DenoisingRec and https://github.com/wangyu-ustc/DeCA (``data/adressa``);
the training file is large and was not reachable from here, so its URL is unverified and no
checksums are known (the SHA-256 of each file read is recorded in ``meta``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deca_tune.data.registry import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, RemoteFile, ensure_file, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import MalformedFileError, locate_bad_line, read_table

DECA_RAW = "https://raw.githubusercontent.com/wangyu-ustc/DeCA/HEAD/data/adressa"
DENOISING_RAW = "https://raw.githubusercontent.com/WenjieWWJ/DenoisingRec/HEAD/data/adressa"
REMOTES = {
    "train.rating": RemoteFile(f"{DENOISING_RAW}/adressa.train.rating"),
    "valid.rating": RemoteFile(f"{DECA_RAW}/adressa.valid.rating"),
    "test.negative": RemoteFile(f"{DECA_RAW}/adressa.test.negative"),
    "test.noisy": RemoteFile(f"{DECA_RAW}/adressa.test.noisy"),
}


def _fetch(folder: Path, part: str, download: bool) -> Path:
    path, remote = folder / f"adressa.{part}", REMOTES[part]
    try:
        return ensure_file(path, remote, download=download)
    except DataUnavailableError as exc:
        raise DataUnavailableError(
            f"adressa: {path} not found and not downloadable ({exc}); fetch {remote.url} to "
            f"{path}, or pass --data-root / set $DECA_TUNE_DATA to a folder holding adressa/") from None


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return next((line for line in fh if line.strip()), "")


def _read_clicks(path: Path) -> pd.DataFrame:
    """``user item flag`` lines; files whose first line has two fields have no flag (= clean)."""
    if len(_first_line(path).rstrip("\r\n").split("\t")) == 2:
        return read_table(path, ["user", "item"]).assign(flag=1)
    return read_table(path, ["user", "item", "flag"])


def read_test_negative(path: Path) -> pd.DataFrame:
    """The clean test file in either the DeCA (``u i [flag]``) or NCF (``(u,i) negs...``) layout."""
    if not _first_line(path).lstrip().startswith("("):
        return read_table(path, ["user", "item"], extra_fields=True)
    head = read_table(path, ["pair"], kinds={"pair": "str"}, extra_fields=True)
    ids = head["pair"].str.extract(r"^\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$")
    bad = ids.isna().any(axis=1).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        found = locate_bad_line(path, "\t", [], start_row=row, min_fields=10**9)
        line = found[0] if found else row + 1
        raise MalformedFileError(f"{path}, line {line}: expected '(user,item)' as the first field, "
                                 f"got {head['pair'].iloc[row]!r}")
    return pd.DataFrame({"user": ids[0].astype(np.int64), "item": ids[1].astype(np.int64)})


def _pairs(df: pd.DataFrame) -> np.ndarray:
    return df[["user", "item"]].to_numpy(dtype=np.int64).reshape(-1, 2)


@REC_DATASETS.register("adressa")
def load_adressa(root: Path, download: bool = True) -> RecSplit:
    """Adressa in the DenoisingRec format; clean test = the provided dwell-time test set."""
    folder = root / "adressa"
    paths = {part: _fetch(folder, part, download) for part in ("train.rating", "valid.rating",
                                                                "test.negative")}
    train = _read_clicks(paths["train.rating"])
    valid = _read_clicks(paths["valid.rating"])
    test_clean = read_test_negative(paths["test.negative"])
    try:
        paths["test.noisy"] = _fetch(folder, "test.noisy", download)
        test = _read_clicks(paths["test.noisy"])
        test_source = "adressa.test.noisy"
    except DataUnavailableError:
        test, test_source = test_clean, "adressa.test.negative (no test.noisy file)"
    for name, df in (("train.rating", train), ("valid.rating", valid)):
        bad = ~df["flag"].isin([0, 1]).to_numpy()
        if bad.any():
            found = locate_bad_line(paths[name], "\t", [], start_row=int(np.argmax(bad)), min_fields=10**9)
            raise MalformedFileError(f"{paths[name]}, line {found[0] if found else '?'}: "
                                     f"the third field must be 0 or 1 (dwell-time flag)")
    frames = (train, valid, test, test_clean)
    n_users = int(max(f["user"].max() for f in frames if len(f))) + 1
    n_items = int(max(f["item"].max() for f in frames if len(f))) + 1
    v, t = _pairs(valid), _pairs(test)
    valid_in_test = bool(len(v)) and bool(np.isin(v[:, 0] * n_items + v[:, 1],
                                                  t[:, 0] * n_items + t[:, 1]).all())
    flag = train["flag"].to_numpy()
    return RecSplit(
        name="adressa", n_users=n_users, n_items=n_items, train=_pairs(train),
        valid=v, valid_clean=_pairs(valid[valid["flag"].to_numpy() == 1]),
        test=t, test_clean=_pairs(test_clean), ks=(5, 20),
        train_rating=flag.astype(np.float64), train_noisy=flag == 0,
        valid_in_test=valid_in_test,
        meta={"source": "DenoisingRec / DeCA adressa files",
              "files": {str(p): sha256_of(p) for p in paths.values()},
              "test_noisy_source": test_source,
              "train_noisy": "flag == 0 (dwell time <= 10 s), as published, not planted"},
    )
