"""``ml-100k-paper``, ``modcloth-paper``: the DeCA authors' processed split files, read as they are.

Layout: ``<root>/deca-splits/<set>/<set>.<part>``, tab-separated ``user item rating`` lines
(CRLF line ends in the published files). Ids are used as given, so ``n_users``/``n_items`` are
``max id + 1`` over all files (ML-100K users start at 1: user 0 exists but has no interaction).
Public source: https://github.com/wangyu-ustc/DeCA (``data/<set>/``).

What each file holds (checked on the files, see ``/work/shared/data/README.md``):

ML-100K
  - ``train.rating``: 79,619 training interactions (all ratings) -> ``train``
  - ``valid.noisy``: 9,901 validation interactions (all ratings) -> ``valid``
  - ``valid.rating``: 1,707, the rating-5 rows of ``valid.noisy`` -> ``valid_clean``
  - ``test.noisy``: 20,293 = the 9,901 validation rows + 10,392 later ones -> ``test``
    (so ``valid_in_test=True``)
  - ``test.negative``: 3,594 = every rating-5 row of ``test.noisy`` (1,707 of them are
    ``valid.rating``) -> ``test_clean``. Despite its name it holds no sampled negatives: just
    ``user item 5`` lines.

Modcloth (no ``valid.noisy`` file)
  - ``train.rating``: 79,914 -> ``train``
  - ``valid.rating``: 9,990 validation interactions with ratings 1-5: this *is* the noisy
    validation set -> ``valid``; its rating-5 rows (5,445) -> ``valid_clean``
  - ``test.noisy``: 9,989, disjoint from validation -> ``test`` (``valid_in_test=False``)
  - ``test.negative``: 5,433 = the rating-5 rows of ``test.noisy`` -> ``test_clean``

Evaluation: the authors' code masks every ``valid.rating`` item when ranking for the test
sets. ``RecSplit.test_mask("paper")`` masks ``valid_clean``, which is exactly ``valid.rating``
for ML-100K; for Modcloth ``valid.rating`` is the whole ``valid`` set (``meta["paper_masks"]``
names the split the authors masked). The files are kept as published; under the default protocol
``RecSplit.evaluation_sets`` removes the validation pairs from the ML-100K test sets and masks
them (so nothing selection saw counts at test time), under ``--protocol paper`` it keeps the
authors' rule.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deca_tune.data.registry import REC_DATASETS
from deca_tune.data.download import DataUnavailableError, RemoteFile, ensure_file, sha256_of
from deca_tune.data.interactions import RecSplit
from deca_tune.data.readers import read_table

REPO_RAW = "https://raw.githubusercontent.com/wangyu-ustc/DeCA/HEAD/data"

#: SHA-256 of the published files (the authors publish none; these are the sums of the copies
#: in the shared data folder, which match its SHA256SUMS where that lists the file)
SHA256 = {
    "ml-100k": {
        "train.rating": "cc83282c0c3dd2e6e01359cea1f44fa0c10048a87a394c80fe1499f2bc7e8717",
        "valid.noisy": "dfa7eb1aad8ab4e0ed6de2952407e7c8f2ca0e452ca400ecd549c228fc464924",
        "valid.rating": "00571cac093aa3ec1f4b9be0d8fbc0a0c4d3a0542ee126e1573f671337da7f2b",
        "test.noisy": "bd30a3ed63d5452e4940bc4d0f15b85ba0763f67c46bab9aae9e2348c4667dd8",
        "test.negative": "b6ef56ff61d6d79e27f1f08fda63c83cad72624d5ef7bddd388e165b57bf5551",
    },
    "modcloth": {
        "train.rating": "e4698402116e8b621c66c79405b0309df8da9991fa6669dd9f2768acf7559ced",
        "valid.rating": "216e8b73e746972087833ebc5b94ac0f1667041ab2be5efd3472c75d4526d511",
        "test.noisy": "19e35598ad18039061cdcbf04b55635eda7e6f43ce48f9f6312c2ee21d86fdd4",
        "test.negative": "83c9d9cd457733a364d42cff5298d82413892d46292522590ac3449372558387",
    },
}
CLEAN_RATING = 5


def _read_sha256sums(folder: Path) -> dict[str, str]:
    path = folder / "SHA256SUMS"
    if not path.exists():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, _, fname = line.strip().partition("  ")
            sums[fname.lstrip("*").strip()] = digest.strip()
    return sums


def fetch_split_files(dataset: str, root: Path, download: bool = True,
                      verify: bool = True) -> dict[str, Path]:
    """Paths of one data set's files (downloaded when missing), checksum-verified."""
    folder = root / "deca-splits" / dataset
    listed = _read_sha256sums(folder)
    paths = {}
    for part, digest in SHA256[dataset].items():
        fname = f"{dataset}.{part}"
        remote = RemoteFile(f"{REPO_RAW}/{dataset}/{fname}", digest)
        try:
            path = ensure_file(folder / fname, remote, download=download)
        except DataUnavailableError as exc:
            raise DataUnavailableError(
                f"{dataset}-paper: {folder / fname} not found and not downloadable ({exc}); "
                f"fetch {remote.url} to {folder / fname}, or pass --data-root / set "
                f"$DECA_TUNE_DATA to a folder holding deca-splits/{dataset}/") from None
        if verify:
            got = sha256_of(path)
            for expected, what in ((digest, "the published file"), (listed.get(fname), "SHA256SUMS")):
                if expected is not None and got != expected:
                    raise DataUnavailableError(
                        f"{path}: SHA-256 {got} does not match {what} ({expected})")
        paths[part] = path
    return paths


def load_deca_split(dataset: str, root: Path, download: bool = True, verify: bool = True) -> RecSplit:
    """Read the DeCA authors' files for ``dataset`` (``ml-100k`` or ``modcloth``)."""
    paths = fetch_split_files(dataset, root, download=download, verify=verify)
    frames = {part: read_table(p, ["user", "item", "rating"], sep="\t") for part, p in paths.items()}
    arr = {part: df[["user", "item"]].to_numpy(dtype=np.int64) for part, df in frames.items()}
    n_users = int(max(a[:, 0].max() for a in arr.values() if len(a))) + 1
    n_items = int(max(a[:, 1].max() for a in arr.values() if len(a))) + 1
    if dataset == "ml-100k":
        valid, valid_clean = arr["valid.noisy"], arr["valid.rating"]
        valid_in_test = True
    else:  # modcloth: valid.rating holds every validation rating
        valid = arr["valid.rating"]
        valid_clean = valid[frames["valid.rating"]["rating"].to_numpy() >= CLEAN_RATING]
        valid_in_test = False
    test, test_clean = arr["test.noisy"], arr["test.negative"]
    return RecSplit(
        name=f"{dataset}-paper", n_users=n_users, n_items=n_items,
        train=arr["train.rating"], valid=valid, valid_clean=valid_clean,
        test=test, test_clean=test_clean,
        ks=(3, 5, 10, 20) if dataset == "ml-100k" else (5, 20),
        train_rating=frames["train.rating"]["rating"].to_numpy(dtype=np.float64),
        valid_in_test=valid_in_test,
        meta={"source": f"https://github.com/wangyu-ustc/DeCA/tree/HEAD/data/{dataset}",
              "files": {str(p): SHA256[dataset][part] if verify else None
                        for part, p in paths.items()},
              "paper_masks": "valid_clean" if dataset == "ml-100k" else "valid"},
    )


@REC_DATASETS.register("ml-100k-paper")
def load_ml100k_paper(root: Path, download: bool = True, verify: bool = True) -> RecSplit:
    """The DeCA authors' ML-100K split (the split behind the paper's Table 2)."""
    return load_deca_split("ml-100k", root, download, verify)


@REC_DATASETS.register("modcloth-paper")
def load_modcloth_paper(root: Path, download: bool = True, verify: bool = True) -> RecSplit:
    """The DeCA authors' Modcloth split."""
    return load_deca_split("modcloth", root, download, verify)
