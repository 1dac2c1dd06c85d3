"""No test leakage (issue 10, part 1): under every protocol, no pair of the selection split is
rankable and relevant in a test split, for every registered recommendation data set (the real
files where present, small written files of the same format otherwise)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deca_tune.data import REC_DATASETS, load_split
from deca_tune.data.interactions import RecSplit
from deca_tune.tasks import get_task

PROTOCOLS = ("default", "paper")


def leaks(split: RecSplit, protocol: str, sets: dict | None = None) -> dict[str, int]:
    """Per test split: selection-split pairs that are relevant there and not masked."""
    sets = split.evaluation_sets(protocol) if sets is None else sets
    selection = get_task("rec").selection_metric(protocol).split("/")[0]
    sel = sets[selection][0]
    out = {}
    for name in ("test", "test_clean"):
        relevant, mask = sets[name]
        key = lambda a: a[:, 0].astype(np.int64) * split.n_items + a[:, 1]  # noqa: E731
        hit = np.isin(key(sel), key(relevant)) & ~np.isin(key(sel), key(mask))
        out[name] = int(hit.sum())
    return out


# ------------------------------------------------------------------ small files of each format
def _deca_split_files(root: Path, dataset: str) -> None:
    """The authors' layout with validation nested in test (as their ML-100K files are)."""
    rng = np.random.default_rng(0)
    folder = root / "deca-splits" / dataset
    folder.mkdir(parents=True)
    train = [(u, i, int(rng.integers(1, 6))) for u in range(1, 21) for i in rng.choice(30, 6, replace=False)]
    valid = [(u, 30 + u % 5, 5 if u % 2 else 3) for u in range(1, 21)]
    later = [(u, 35 + u % 4, 5 if u % 3 else 2) for u in range(1, 21)]
    write = lambda name, rows: (folder / f"{dataset}.{name}").write_text(  # noqa: E731
        "".join(f"{u}\t{i}\t{r}\r\n" for u, i, r in rows))
    write("train.rating", train)
    if dataset == "ml-100k":
        write("valid.noisy", valid)
        write("valid.rating", [r for r in valid if r[2] == 5])
        test = valid + later
    else:
        write("valid.rating", valid)
        test = later
    write("test.noisy", test)
    write("test.negative", [r for r in test if r[2] == 5])


def _u_data(root: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [(u, i, int(rng.integers(1, 6)), 1000 * u + k)
            for u in range(1, 31) for k, i in enumerate(rng.choice(25, 10, replace=False), 1)]
    (root / "ml-100k").mkdir(parents=True)
    (root / "ml-100k" / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))


def _marketbias(root: Path, name: str) -> None:
    rng = np.random.default_rng(2)
    folder = root / "marketbias"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["item_id,user_id,rating,timestamp,size,fit,user_attr,model_attr,category,brand,year,split"]
    for u in range(30):
        for i in rng.choice(12, 6, replace=False):
            lines.append(f"i{i},u{u},{rng.integers(1, 6)},2012-01-1{i % 10} 08:00:00+00:00,M,Fit,S,S,D,B,2012,0")
    (folder / f"df_{name}.csv").write_text("\n".join(lines) + "\n")


def _adressa(root: Path) -> None:
    """DenoisingRec's layout with the validation clicks repeated in test.noisy."""
    rng = np.random.default_rng(3)
    folder = root / "adressa"
    folder.mkdir(parents=True)
    train = [(u, i, int(rng.integers(0, 2))) for u in range(20) for i in rng.choice(15, 5, replace=False)]
    valid = [(u, 15 + u % 3, u % 2) for u in range(20)]
    test = valid + [(u, 18 + u % 2, 1 if u % 3 else 0) for u in range(20)]
    write = lambda name, rows: (folder / f"adressa.{name}").write_text(  # noqa: E731
        "".join(f"{u}\t{i}\t{f}\n" for u, i, f in rows))
    write("train.rating", train)
    write("valid.rating", valid)
    write("test.noisy", test)
    write("test.negative", [r for r in test if r[2]])


def _csv(root: Path) -> Path:
    rng = np.random.default_rng(4)
    path = root / "ratings.csv"
    rows = [f"u{u},i{i},{rng.integers(1, 6)},{100 * u + k}"
            for u in range(30) for k, i in enumerate(rng.choice(20, 8, replace=False))]
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path


def _real(shared: Path | None, rel: str) -> bool:
    return shared is not None and (shared / rel).exists()


@pytest.fixture(scope="module")
def shared_or_none() -> Path | None:
    import os

    root = Path(os.environ.get("DECA_TUNE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    return root if root.is_dir() else None


def _splits(tmp: Path, shared: Path | None) -> dict[str, RecSplit]:
    """One split of every registered recommendation data set (real files where present)."""
    def load(name: str, root: Path, **options) -> RecSplit:
        return load_split("rec", {"dataset": name, "data_root": str(root), "download": False,
                                  "verify_checksums": root != tmp, "dataset_options": options})

    if not _real(shared, "ml-100k/u.data"):
        _u_data(tmp)
    for dataset in ("ml-100k", "modcloth"):
        if not _real(shared, f"deca-splits/{dataset}/{dataset}.train.rating"):
            _deca_split_files(tmp, dataset)
    for name in ("modcloth", "electronics"):
        _marketbias(tmp, name)
    _adressa(tmp)
    out = {
        "ml-100k": load("ml-100k", shared if _real(shared, "ml-100k/u.data") else tmp),
        "modcloth": load("modcloth", tmp), "electronics": load("electronics", tmp),
        "adressa": load("adressa", tmp), "csv": load("csv", tmp, path=str(_csv(tmp)), time_col="timestamp",
                                                     split="chrono"),
        "synthetic": load("synthetic", tmp, n_users=60, n_items=40),
    }
    for dataset in ("ml-100k", "modcloth"):
        real = _real(shared, f"deca-splits/{dataset}/{dataset}.train.rating")
        out[f"{dataset}-paper"] = load(f"{dataset}-paper", shared if real else tmp)
    return out


@pytest.fixture(scope="module")
def splits(tmp_path_factory, shared_or_none) -> dict[str, RecSplit]:
    return _splits(tmp_path_factory.mktemp("leakage-data"), shared_or_none)


def test_every_registered_data_set_is_covered(splits):
    assert set(splits) == set(REC_DATASETS.names())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(REC_DATASETS.names()))
def test_no_selection_pair_is_rankable_and_relevant_at_test_time(splits, name, protocol):
    assert leaks(splits[name], protocol) == {"test": 0, "test_clean": 0}


def test_the_nested_files_really_nest_and_the_old_rule_leaked(splits):
    """The authors' ML-100K and the Adressa layout put validation pairs in test: ranking with
    only the training pairs masked (the rule before issue 10) leaks them into the test metrics."""
    for name in ("ml-100k-paper", "adressa"):
        split = splits[name]
        assert split.stats()["test_pairs_in_valid"] > 0
        old = split.evaluation_sets("default")
        old = {**old, "test": (split.test, split.train), "test_clean": (split.test_clean, split.train)}
        assert leaks(split, "default", old)["test"] > 0


def test_the_trainer_evaluates_on_the_leak_free_sets(splits):
    from deca_tune.training.rec_trainer import RecTrainer

    split = splits["ml-100k-paper"]
    for protocol in PROTOCOLS:
        trainer = RecTrainer({"dataset": "ml-100k-paper", "protocol": protocol, "device": "cpu"}, split=split)
        assert leaks(split, protocol, trainer.eval_masks()) == {"test": 0, "test_clean": 0}
