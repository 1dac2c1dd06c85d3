"""Recommendation data sets: split rules on the real files, bad input, CLI, tiny-file loaders."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deca_tune.data import REC_DATASETS, UnknownOptionError, load_dataset
from deca_tune.data import __main__ as data_cli
from deca_tune.data.download import DataUnavailableError
from deca_tune.data.readers import MalformedFileError, read_table
from deca_tune.registry import UnknownNameError

REPO = Path(__file__).resolve().parents[1]


def _need(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.exists():
        pytest.skip(f"{path} not in the shared data folder")
    return path


def _run_cli(*args: str, env_root: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if env_root is not None:
        env["DECA_TUNE_DATA"] = env_root
    return subprocess.run([sys.executable, "-m", "deca_tune.data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _key(pairs: np.ndarray, n_items: int) -> np.ndarray:
    return pairs[:, 0].astype(np.int64) * n_items + pairs[:, 1]


def _write_u_data(root: Path, rows: list[tuple]) -> Path:
    folder = root / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "u.data"
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- ml-100k on the real file

@pytest.fixture(scope="module")
def ml100k(shared_data):
    _need(shared_data, "ml-100k/u.data")
    split = load_dataset("rec", "ml-100k", data_root=str(shared_data), download=False)
    raw = pd.read_csv(shared_data / "ml-100k" / "u.data", sep="\t", header=None,
                      names=["user", "item", "rating", "ts"])
    return split, raw


def _with_raw(split, raw: pd.DataFrame, pairs: np.ndarray) -> pd.DataFrame:
    """Join dense pairs back to the raw rows (original ids, rating, timestamp)."""
    users = split.meta["original_user_ids"][pairs[:, 0]]
    items = split.meta["original_item_ids"][pairs[:, 1]]
    df = pd.DataFrame({"user": users, "item": items})
    out = df.merge(raw, on=["user", "item"], how="left", validate="one_to_one")
    assert out["rating"].notna().all()
    return out


def test_ml100k_counts_and_split_rule(ml100k):
    split, raw = ml100k
    assert split.n_users == 943 and len(split.train) == 79_619
    n = raw.groupby("user").size().sort_index().to_numpy()
    per_user_train = np.bincount(split.train[:, 0], minlength=split.n_users)
    # users are densely re-indexed in sorted order of their original ids
    assert np.array_equal(split.meta["original_user_ids"], np.sort(raw["user"].unique()))
    assert np.array_equal(per_user_train, np.floor(0.8 * n).astype(int))
    held = np.bincount(np.r_[split.valid[:, 0], split.test[:, 0]], minlength=split.n_users)
    dropped = split.meta["dropped_unseen_item_valid"] + split.meta["dropped_unseen_item_test"]
    assert held.sum() + dropped == len(raw) - 79_619
    # valid is at most floor(0.9 n) - floor(0.8 n) per user (fewer only through dropping)
    per_user_valid = np.bincount(split.valid[:, 0], minlength=split.n_users)
    assert (per_user_valid <= np.floor(0.9 * n) - np.floor(0.8 * n)).all()
    assert per_user_valid.sum() + split.meta["dropped_unseen_item_valid"] == \
        int((np.floor(0.9 * n) - np.floor(0.8 * n)).sum())
    assert split.ks == (3, 5, 10, 20) and not split.valid_in_test
    assert split.train_rating is not None and len(split.train_rating) == len(split.train)


def test_ml100k_chronological_per_user(ml100k):
    split, raw = ml100k
    tr = _with_raw(split, raw, split.train).groupby("user")["ts"]
    va = _with_raw(split, raw, split.valid).groupby("user")["ts"]
    te = _with_raw(split, raw, split.test).groupby("user")["ts"]
    both = pd.concat({"train_max": tr.max(), "valid_min": va.min(), "valid_max": va.max(),
                      "test_min": te.min()}, axis=1)
    ok = both.dropna(subset=["train_max", "valid_min"])
    assert len(ok) > 900 and (ok["train_max"] <= ok["valid_min"]).all()
    ok = both.dropna(subset=["valid_max", "test_min"])
    assert len(ok) > 900 and (ok["valid_max"] <= ok["test_min"]).all()


def test_ml100k_clean_is_rating_5_and_unseen_items_dropped(ml100k):
    split, raw = ml100k
    for noisy, clean in ((split.valid, split.valid_clean), (split.test, split.test_clean)):
        assert (_with_raw(split, raw, clean)["rating"] == 5).all()
        assert (_with_raw(split, raw, noisy)["rating"] == 5).sum() == len(clean)
        assert np.isin(_key(clean, split.n_items), _key(noisy, split.n_items)).all()
        assert np.isin(noisy[:, 1], split.train[:, 1]).all()
    assert split.meta["dropped_unseen_item_valid"] + split.meta["dropped_unseen_item_test"] > 0
    assert np.array_equal(_with_raw(split, raw, split.train)["rating"].to_numpy(), split.train_rating)


def test_tie_break_and_unseen_drop_on_a_tiny_file(tmp_path):
    rows = [(1, i, 5 if i % 2 else 3, 100 + i) for i in range(1, 9)]  # user 1: 8 train rows
    rows += [(1, 99, 5, 200), (1, 12, 5, 200)]  # tie at the end: file order puts 99 in valid
    rows += [(2, 10 + i, 4, 50 - i) for i in range(1, 6)]  # user 2: times descend in the file
    _write_u_data(tmp_path, rows)
    split = REC_DATASETS.get("ml-100k")(tmp_path, download=False, verify=False)
    orig_user, orig_item = split.meta["original_user_ids"], split.meta["original_item_ids"]
    train = {(int(orig_user[u]), int(orig_item[i])) for u, i in split.train}
    # user 2 is sorted by time: its 4 earliest rows are items 15, 14, 13, 12 -> train
    assert train == {(1, i) for i in range(1, 9)} | {(2, i) for i in (12, 13, 14, 15)}
    # user 1: 10 rows -> 8 train, 1 valid (item 99, never in train: dropped), 1 test (item 12)
    assert len(split.valid) == 0 and split.meta["dropped_unseen_item_valid"] == 1
    test = {(int(orig_user[u]), int(orig_item[i])) for u, i in split.test}
    # user 2: 5 rows -> 4 train, 0 valid, 1 test (item 11, unseen in train: dropped)
    assert test == {(1, 12)} and split.meta["dropped_unseen_item_test"] == 1
    assert len(split.test_clean) == 1  # (1, 12) has rating 5
    assert 99 not in orig_item and 11 not in orig_item  # dense ids cover train items only


def test_ml100k_checksum_mismatch_is_an_error(tmp_path):
    _write_u_data(tmp_path, [(1, 1, 5, 1), (1, 2, 4, 2)])
    with pytest.raises(DataUnavailableError, match="SHA-256"):
        REC_DATASETS.get("ml-100k")(tmp_path, download=False)


# ---------------------------------------------------------------- the DeCA authors' splits

def test_ml100k_paper_counts(shared_data):
    _need(shared_data, "deca-splits/ml-100k/ml-100k.train.rating")
    s = load_dataset("rec", "ml-100k-paper", data_root=str(shared_data), download=False)
    assert (len(s.train), len(s.valid), len(s.valid_clean), len(s.test), len(s.test_clean)) == \
        (79_619, 9_901, 1_707, 20_293, 3_594)
    assert s.valid_in_test and s.n_users == 944 and s.n_items == 1611
    assert s.train[:, 0].min() == 1  # ids as given: users 1..943
    assert np.isin(_key(s.valid, s.n_items), _key(s.test, s.n_items)).all()
    assert np.isin(_key(s.test_clean, s.n_items), _key(s.test, s.n_items)).all()
    assert set(np.unique(s.train_rating)) == {1, 2, 3, 4, 5}
    # the default protocol drops (and masks) the validation pairs inside the test files
    sets = s.evaluation_sets("default")
    assert (len(sets["test"][0]), len(sets["test_clean"][0])) == (10_392, 1_887)
    assert (s.stats()["test_pairs_in_valid"], s.stats()["test_clean_pairs_in_valid"]) == (9_901, 1_707)
    paper = s.evaluation_sets("paper")  # the authors' files and masks, untouched
    assert (len(paper["test"][0]), len(paper["test_clean"][0])) == (20_293, 3_594)


def test_modcloth_paper_counts(shared_data):
    _need(shared_data, "deca-splits/modcloth/modcloth.train.rating")
    s = load_dataset("rec", "modcloth-paper", data_root=str(shared_data), download=False)
    assert (len(s.train), len(s.valid), len(s.valid_clean), len(s.test), len(s.test_clean)) == \
        (79_914, 9_990, 5_445, 9_989, 5_433)
    assert (s.n_users, s.n_items, s.valid_in_test, s.ks) == (44_784, 1_020, False, (5, 20))
    assert s.stats()["interactions"] == 99_893


def test_paper_split_missing_offline_names_url_and_path(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("rec", "ml-100k-paper", data_root=str(tmp_path), download=False)
    msg = str(info.value)
    assert "https://raw.githubusercontent.com/wangyu-ustc/DeCA/" in msg
    assert str(tmp_path / "deca-splits" / "ml-100k" / "ml-100k.train.rating") in msg


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("text, message", [
    ("1\t2\t5\n3\t4\t5\n\n5\tsix\t5\n7\t8\t5\n", "line 4: column 'item' is not a number"),
    ("1\t2\t5\n3\t4\t5\t9\n", "line 2: has 4 fields"),
    ("1\t2\t5\t0\n3\t4\t5\t9\n", "line 1: has 4 fields"),  # every line too wide: not silently an index
    ("1\t2\t5\n3\t4\n", "line 2: has 2 field"),
    ("1\t2\t5\r\n3\t4.5\t5\r\n", "line 2: column 'item' is not an integer"),
])
def test_malformed_line_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "x.rating"
    path.write_text(text)
    with pytest.raises(MalformedFileError, match=rf"{path}, {message}"):
        read_table(path, ["user", "item", "rating"])


def test_malformed_u_data_through_the_loader(tmp_path):
    path = _write_u_data(tmp_path, [(1, 1, 5, 10), (1, 2, 4, 11), (1, 3, "", 12)])
    with pytest.raises(MalformedFileError, match=rf"{path}, line 3"):
        REC_DATASETS.get("ml-100k")(tmp_path, download=False, verify=False)


def test_unknown_name_and_option():
    with pytest.raises(UnknownNameError, match="ml-100k.*synthetic"):
        load_dataset("rec", "no-such-set")
    with pytest.raises(UnknownOptionError, match="n_users"):
        load_dataset("rec", "synthetic", n_user=3)


def test_offline_missing_names_url_and_path(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("rec", "ml-100k", data_root=str(tmp_path), download=False)
    msg = str(info.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    assert str(tmp_path / "ml-100k" / "u.data") in msg


# ---------------------------------------------------------------- CLI

def test_describe_cli(shared_data):
    _need(shared_data, "ml-100k/u.data")
    out = _run_cli("describe", "ml-100k", "--data-root", str(shared_data))
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["users"] == 943 and stats["train"] == 79_619 and stats["dataset"] == "ml-100k"
    assert set(stats) >= {"users", "items", "train", "valid", "test", "valid_clean", "test_clean",
                          "sparsity"}


def test_describe_cli_errors(tmp_path, monkeypatch, capsys):
    out = _run_cli("describe", "nope")
    assert out.returncode == 2 and "ml-100k" in out.stderr and "synthetic" in out.stderr
    # the other paths in-process (a subprocess costs seconds on a loaded machine)
    monkeypatch.setenv("DECA_TUNE_DATA", str(tmp_path))
    assert data_cli.main(["describe", "ml-100k", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in err
    assert str(tmp_path / "ml-100k" / "u.data") in err
    assert data_cli.main(["describe", "synthetic", "--option", "n_users=40", "--option",
                          "n_items=30", "--option", "seed=3"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == 40
    assert data_cli.main(["describe", "synthetic", "--option", "users=40"]) == 2
    assert "n_users" in capsys.readouterr().err


# ---------------------------------------------------------------- synthetic

def test_synthetic_deterministic_and_noise_recorded():
    opts = dict(n_users=120, n_items=80, seed=7)
    a = REC_DATASETS.get("synthetic")(None, False, **opts)
    b = REC_DATASETS.get("synthetic")(None, False, **opts)
    c = REC_DATASETS.get("synthetic")(None, False, **{**opts, "seed": 8})
    for key in ("train", "valid", "valid_clean", "test", "test_clean", "train_noisy"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.train, c.train)

    n = a.n_items
    liked = _key(a.meta["liked_pairs"], n)
    assert a.train_noisy.dtype == bool and len(a.train_noisy) == len(a.train)
    # planted noisy positives are exactly the training clicks on items the user does not like
    assert np.array_equal(a.train_noisy, ~np.isin(_key(a.train, n), liked))
    assert 0.15 < a.train_noisy.mean() < 0.35  # noise_rate defaults to 0.25
    # noisy negatives: liked, never observed anywhere
    missed = _key(a.meta["liked_unobserved"], n)
    assert len(missed) > 0 and np.isin(missed, liked).all()
    observed = np.r_[_key(a.train, n), _key(a.valid, n), _key(a.test, n)]
    assert not np.isin(missed, observed).any()
    # clean held-out sets are the liked held-out clicks
    for noisy, clean in ((a.valid, a.valid_clean), (a.test, a.test_clean)):
        assert np.isin(_key(clean, n), liked).all()
        assert np.isin(_key(noisy, n), liked).sum() == len(clean)


def test_synthetic_noise_rate_zero_and_cache():
    s = load_dataset("rec", "synthetic", n_users=50, n_items=40, noise_rate=0.0, missing_rate=0.0)
    assert not s.train_noisy.any() and len(s.meta["liked_unobserved"]) == 0
    assert load_dataset("rec", "synthetic", n_users=50, n_items=40, noise_rate=0.0,
                            missing_rate=0.0) is s
    assert load_dataset("rec", "synthetic", n_users=50, n_items=40, noise_rate=0.1) is not s


# ---------------------------------------------------------------- loaders on tiny files

MARKETBIAS_HEADER = "item_id,user_id,rating,timestamp,size,fit,user_attr,model_attr,category,brand,year,split\n"


def _marketbias_file(root: Path, name: str, n_users: int = 30, n_items: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=6, replace=False):
            rows.append((f"i{i}", f"u{u}", int(rng.integers(1, 6)),
                         f"2012-0{1 + u % 9}-1{i % 10} 08:00:00+00:00"))
    df = pd.DataFrame(rows, columns=["item_id", "user_id", "rating", "timestamp"])
    folder = root / "marketbias"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"df_{name}.csv", "w") as fh:
        fh.write(MARKETBIAS_HEADER)
        for r in df.itertuples(index=False):
            fh.write(f'{r.item_id},{r.user_id},{r.rating},{r.timestamp},"M, tall",Fit,Small,'
                     f'Small,Dresses,"Brand, Inc",2012,0\n')
        fh.write('i0,,5,2012-01-01 08:00:00+00:00,M,Fit,Small,Small,Dresses,B,2012,0\n')  # no user
        fh.write(f"i1,u0,4,2019-01-01 08:00:00+00:00,M,Fit,Small,Small,Dresses,B,2019,0\n")
    return df


@pytest.mark.parametrize("name", ["modcloth", "electronics"])
def test_marketbias_tiny(tmp_path, name):
    raw = _marketbias_file(tmp_path, name)
    s0 = load_dataset("rec", name, data_root=str(tmp_path), download=False, seed=0)
    s1 = load_dataset("rec", name, data_root=str(tmp_path), download=False, seed=1)
    assert s0.meta["dropped_missing_id"] == 1
    dup = int((raw["item_id"].eq("i1") & raw["user_id"].eq("u0")).any())
    assert s0.meta["dropped_duplicates"] == dup
    n = len(raw) + 1 - dup  # + the extra (u0, i1) row, - its duplicate
    kept = len(s0.train) + len(s0.valid) + len(s0.test)
    dropped = s0.meta["dropped_unseen_item_valid"] + s0.meta["dropped_unseen_item_test"]
    assert len(s0.train) == int(0.8 * n) and kept + dropped == n
    assert np.isin(np.r_[s0.valid[:, 1], s0.test[:, 1]], s0.train[:, 1]).all()
    assert not np.array_equal(s0.train, s1.train)  # the seed changes the random split
    ratings = raw.assign(user=raw["user_id"], item=raw["item_id"])
    users, items = s0.meta["original_user_ids"], s0.meta["original_item_ids"]
    clean = pd.DataFrame({"user": users[s0.test_clean[:, 0]], "item": items[s0.test_clean[:, 1]]})
    merged = clean.merge(ratings.drop_duplicates(["user", "item"], keep="last"), on=["user", "item"])
    assert len(merged) == len(clean) and (merged["rating"] == 5).all()
    assert s0.ks == {"modcloth": (5, 20), "electronics": (10, 20, 50)}[name]


def test_marketbias_missing_names_url(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_dataset("rec", "modcloth", data_root=str(tmp_path), download=False)
    assert "https://raw.githubusercontent.com/MengtingWan/marketBias/master/data/df_modcloth.csv" \
        in str(info.value)
    assert str(tmp_path / "marketbias" / "df_modcloth.csv") in str(info.value)


def _adressa_files(root: Path, ncf_test: bool, with_noisy: bool) -> Path:
    folder = root / "adressa"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = [(u, i, int(rng.integers(0, 2))) for u in range(20) for i in rng.choice(15, 5, replace=False)]
    (folder / "adressa.train.rating").write_text("".join(f"{u}\t{i}\t{f}\n" for u, i, f in train))
    valid = [(u, 15 + u % 3, u % 2) for u in range(20)]
    (folder / "adressa.valid.rating").write_text("".join(f"{u}\t{i}\t{f}\n" for u, i, f in valid))
    test = [(u, 18 + u % 2, 1 if u % 3 else 0) for u in range(22)]  # users 20, 21: test only
    clean = [(u, i) for u, i, f in test if f]
    if ncf_test:
        text = "".join(f"({u},{i})\t3\t4\t5\n" for u, i in clean)
    else:
        text = "".join(f"{u}\t{i}\t1\r\n" for u, i in clean)
    (folder / "adressa.test.negative").write_text(text)
    if with_noisy:
        (folder / "adressa.test.noisy").write_text("".join(f"{u}\t{i}\t{f}\n" for u, i, f in test))
    return folder


@pytest.mark.parametrize("ncf_test,with_noisy", [(False, True), (True, False)])
def test_adressa_tiny(tmp_path, ncf_test, with_noisy):
    folder = _adressa_files(tmp_path, ncf_test, with_noisy)
    s = REC_DATASETS.get("adressa")(tmp_path, download=False)
    train = pd.read_csv(folder / "adressa.train.rating", sep="\t", header=None)
    assert len(s.train) == 100 and np.array_equal(s.train_noisy, train[2].to_numpy() == 0)
    # max id + 1 over the files: user 21 only clicks in test.noisy (its test click is short)
    assert (s.n_users, s.n_items) == (22 if with_noisy else 21, 20)
    assert len(s.valid) == 20 and len(s.valid_clean) == 10
    n_clean = sum(1 for u in range(22) if u % 3)
    assert len(s.test_clean) == n_clean
    assert len(s.test) == (22 if with_noisy else n_clean)
    assert not s.valid_in_test and s.ks == (5, 20)


def test_adressa_bad_ncf_line(tmp_path):
    folder = _adressa_files(tmp_path, ncf_test=True, with_noisy=False)
    path = folder / "adressa.test.negative"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "(3;4)\t1\t2\n"
    path.write_text("".join(lines))
    with pytest.raises(MalformedFileError, match=rf"{path}, line 3: expected '\(user,item\)'"):
        REC_DATASETS.get("adressa")(tmp_path, download=False)


def _ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "my ratings.csv"
    rows = ["uid;movie;stars;when"]
    for u in range(12):
        for k in range(10):
            rows.append(f"user{u};m{(u + 3 * k) % 17};{1 + (u + k) % 5};2020-01-{1 + k:02d}T10:00:00")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_chrono_and_clean_rule(tmp_path):
    path = _ratings_csv(tmp_path)
    s = load_dataset("rec", "csv", data_root=str(tmp_path), path=str(path), sep=";", user_col="uid",
                         item_col="movie", rating_col="stars", time_col="when", clean="stars>=4",
                         split="chrono", ks="5,10")
    assert s.n_users == 12 and len(s.train) == 12 * 8 and s.ks == (5, 10)
    raw = pd.read_csv(path, sep=";")
    users, items = s.meta["original_user_ids"], s.meta["original_item_ids"]
    def rows(pairs):
        df = pd.DataFrame({"uid": users[pairs[:, 0]], "movie": items[pairs[:, 1]]})
        return df.merge(raw, on=["uid", "movie"])
    assert (pd.to_datetime(rows(s.train)["when"]).dt.day <= 8).all()  # first 8 of 10 by time
    held = pd.concat([rows(s.valid), rows(s.test)])
    assert (pd.to_datetime(held["when"]).dt.day >= 9).all()
    assert (rows(s.test_clean)["stars"] >= 4).all() and (rows(s.valid_clean)["stars"] >= 4).all()
    assert (rows(s.test)["stars"] >= 4).sum() == len(s.test_clean)


def test_csv_random_split_headerless_tab(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\n" for u in range(10) for i in range(8)))
    s = REC_DATASETS.get("csv")(tmp_path, True, path="r.tsv", sep="\\t", header=False,
                                user_col="0", item_col="1", rating_col="2", clean="2==5", seed=3)
    assert len(s.train) == 64 and len(s.train) + len(s.valid) + len(s.test) + \
        s.meta["dropped_unseen_item_valid"] + s.meta["dropped_unseen_item_test"] == 80


def test_csv_bad_inputs(tmp_path):
    path = _ratings_csv(tmp_path)
    base = dict(path=str(path), sep=";", user_col="uid", item_col="movie", rating_col="stars")
    csv_loader = REC_DATASETS.get("csv")
    for rule in ("stars=>4", "stars>=four", "stars >= 4 and 5", "import os"):
        with pytest.raises(ValueError, match=re.escape(repr(rule))):
            csv_loader(tmp_path, False, **base, clean=rule)
    with pytest.raises(MalformedFileError, match="no column.*'score'.*clean rule"):
        csv_loader(tmp_path, False, **base, clean="score>=4")
    with pytest.raises(MalformedFileError, match="no column.*'rating'.*uid, movie, stars, when"):
        csv_loader(tmp_path, False, **{**base, "rating_col": "rating"}, clean="stars>=4")
    with pytest.raises(ValueError, match="chrono.*time_col"):
        csv_loader(tmp_path, False, **base, clean="stars>=4", split="chrono")
    lines = path.read_text().splitlines()
    lines[5] = "user0;m1;five;2020-01-01"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedFileError, match=rf"{re.escape(str(path))}, line 6: column 'stars'"):
        csv_loader(tmp_path, False, **base, clean="stars>=4")
    lines[5] = "user0;m1;5;not a date"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedFileError, match=rf"line 6: time column 'when'"):
        csv_loader(tmp_path, False, **base, clean="stars>=4", time_col="when")
    with pytest.raises(DataUnavailableError, match="nope.csv"):
        csv_loader(tmp_path, False, path="nope.csv")
