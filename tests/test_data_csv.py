"""The ``csv`` data set at scale: vectorised loading (same results as the per-row reference),
exact error lines, numeric id normalisation, the on-disk split cache, option help and path
resolution, the large synthetic writer and the scale benchmark at a tiny size."""
from __future__ import annotations

import inspect
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deca_tune.data import REC_DATASETS, UnknownOptionError, load_dataset
from deca_tune.data import __main__ as data_cli
from deca_tune.data import custom_csv, split_cache
from deca_tune.data.download import DataUnavailableError
from deca_tune.data.readers import MalformedFileError
from deca_tune.data.splits import TEST, TRAIN, VALID, encode_ids
from deca_tune.data.synthetic import iter_synthetic_rows, write_synthetic_csv

PARTS = ("train", "valid", "valid_clean", "test", "test_clean")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test gets its own split cache folder (never the user's ~/.cache)."""
    monkeypatch.setenv("DECA_TUNE_CACHE", str(tmp_path / "cache"))


def load(path: Path, **options):
    return REC_DATASETS.get("csv")(path.parent, False, path=str(path), **options)


def _write(tmp_path: Path, text: str, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path, **options) -> str:
    with pytest.raises(MalformedFileError) as info:
        load(path, cache=False, **options)
    return str(info.value)


UIRT = dict(user_col="u", item_col="i", rating_col="r", time_col="t", clean="r>=4")


# ----------------------------------------------------------- same results as the reference

def _reference(df: pd.DataFrame, parts_of, clean_min: float) -> dict:
    """The former per-row implementation (``np.unique``/``np.isin`` on the raw ids)."""
    df = df.sort_values("t", kind="stable")
    df = df[~df.duplicated(["u", "i"], keep="last")].sort_index().reset_index(drop=True)
    parts = parts_of(df)
    clean = df["r"].to_numpy() >= clean_min
    seen = np.isin(df["i"].to_numpy(), df["i"].to_numpy()[parts == TRAIN])
    keep = seen | (parts == TRAIN)
    uids, users = np.unique(df["u"].to_numpy()[keep], return_inverse=True)
    iids, items = np.unique(df["i"].to_numpy()[keep], return_inverse=True)
    pairs = np.stack([users, items], 1)
    kp, kc = parts[keep], clean[keep]
    return {"train": pairs[kp == TRAIN], "valid": pairs[kp == VALID],
            "valid_clean": pairs[(kp == VALID) & kc], "test": pairs[kp == TEST],
            "test_clean": pairs[(kp == TEST) & kc], "uids": uids, "iids": iids,
            "rating": df["r"].to_numpy(float)[keep][kp == TRAIN]}


@pytest.mark.parametrize("split", ["random", "chrono"])
def test_vectorised_load_matches_the_per_row_reference(tmp_path, split):
    from deca_tune.data.splits import chrono_parts, random_parts

    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"u": [f"user{k}" for k in rng.integers(0, 120, n)],
                       "i": [f"it{k}" for k in rng.zipf(1.6, n) % 400],
                       "r": rng.integers(1, 6, n), "t": rng.integers(0, 500, n)})  # time ties
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    got = load(path, **UIRT, split=split, seed=4)
    parts_of = (lambda d: random_parts(len(d), 4)) if split == "random" else \
        (lambda d: chrono_parts(d["u"].to_numpy(), d["t"].to_numpy()))
    ref = _reference(pd.read_csv(path, dtype={"u": str, "i": str}), parts_of, 4)
    for part in PARTS:
        assert np.array_equal(getattr(got, part), ref[part]), part
    assert np.array_equal(got.meta["original_user_ids"], ref["uids"])
    assert np.array_equal(got.meta["original_item_ids"], ref["iids"])
    assert np.array_equal(got.train_rating, ref["rating"])
    assert got.meta["dropped_duplicates"] > 0


def test_a_large_file_loads_in_seconds_not_minutes(tmp_path):
    # the former np.isin on text ids took ~200 s on 100k rows; this is 200k text-id rows
    path = tmp_path / "big.csv"
    write_synthetic_csv(path, 200_000, seed=1)
    start = time.perf_counter()
    split = load(path, user_col="user", item_col="item", time_col="timestamp", split="chrono",
                 clean="rating>=4", cache=False)
    assert time.perf_counter() - start < 30  # ~1 s on a quiet 2-core machine
    assert split.n_users == 5000 and len(split.train) > 140_000


# ----------------------------------------------------------- numeric ids

def test_ids_written_as_floats_are_one_user(tmp_path):
    path = _write(tmp_path, "u,i,r\n1,10,5\n1.0,11,5\n2,10.0,4\n+2,11,4\n 3 ,10,5\n3,12,5\n")
    s = load(path, user_col="u", item_col="i", rating_col="r", clean="all", split="random")
    assert s.n_users == 3 and s.meta["original_user_ids"].dtype == np.int64
    assert s.meta["original_user_ids"].tolist() == [1, 2, 3]
    assert s.meta["ids"] == {"user": "integer", "item": "integer"}
    assert s.meta["dropped_duplicates"] == 0
    # integers sort as numbers, not as text ("10" after "9")
    codes, ids = encode_ids(pd.Series(["10", "9", "9.0", "1e1"]), numeric=True)
    assert ids.tolist() == [9, 10] and codes.tolist() == [1, 0, 0, 1]


def test_text_ids_stay_text(tmp_path):
    codes, ids = encode_ids(pd.Series(["1", "1.0", "u1", "NA"]), numeric=True)
    assert ids.tolist() == ["1", "1.0", "NA", "u1"] and codes.tolist() == [0, 1, 3, 2]
    codes, ids = encode_ids(pd.Series(["1.5", "1.50"]), numeric=True)  # not integral: text
    assert len(ids) == 2
    big = ["12345678901234567891", "12345678901234567892"]  # beyond int64: text, kept apart
    assert len(encode_ids(pd.Series(big), numeric=True)[1]) == 2
    exact = ["9007199254740993", "9007199254740992"]  # integers are exact (no float rounding)
    assert encode_ids(pd.Series(exact), numeric=True)[1].tolist() == [9007199254740992,
                                                                       9007199254740993]
    # "NA" and "null" are ids like any other in a csv file
    path = _write(tmp_path, "u,i,r\nNA,a,5\nnull,a,5\nNA,b,5\nnull,b,4\n")
    s = load(path, user_col="u", item_col="i", rating_col="r", clean="all")
    assert sorted(s.meta["original_user_ids"].tolist()) == ["NA", "null"]


def test_id_columns_pandas_cannot_read_as_numbers_are_exact_text(tmp_path):
    from deca_tune.data.readers import read_csv_columns

    # numbers in the first parsing chunks, text later: pandas mixes ints and strings
    rows = ["u,i"] + [f"{k % 1000:03d},{k % 77}" for k in range(200_000)] + ["abc,1", "7,2"]
    path = _write(tmp_path, "\n".join(rows) + "\n")
    df, _ = read_csv_columns(path, {"u": "id", "i": "id"}, exact_ids=True, strict_fields=True)
    assert df["u"].iloc[0] == "000" and df["u"].nunique() == 1002  # "007" is not "7" here
    assert df["i"].dtype == np.int64
    path = _write(tmp_path, "u,i\n1.5,1\n1.50,2\n2,1\n")  # non-integral numbers: text
    df, _ = read_csv_columns(path, {"u": "id", "i": "id"}, exact_ids=True)
    assert df["u"].tolist() == ["1.5", "1.50", "2"]


# ----------------------------------------------------------- errors name the right line

def test_missing_timestamp_names_its_line(tmp_path):
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n\n2,2,5,101\n   \n3,3,5,\n4,4,5,103\n")
    assert re.search(r"r\.csv, line 6: time column 't' is empty", _error(path, **UIRT))
    # a row of empty fields is a row (pandas reads it), not a skipped line
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n,,,\n2,2,5,101\n")
    assert re.search(r"line 3: column 'u' is empty", _error(path, **UIRT))
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n2,2,5,1e2\n3,3,5,soon\n")
    assert re.search(r"line 4: time column 't' value 'soon' is not a number", _error(path, **UIRT))
    path = _write(tmp_path, "u;i;r;t\n1;1;5;2020-01-01\n2;2;5;2020-01-02T10:00\n3;3;5;the 3rd\n")
    assert re.search(r"line 4: time column 't' value 'the 3rd' is neither a number nor a date",
                     _error(path, sep=";", **UIRT))


def test_bad_value_far_down_a_large_file(tmp_path):
    rows = [f"{k % 97},{k % 89},{1 + k % 5},{1000 + k}" for k in range(250_000)]
    rows[200_000] = "5,6,4,yesterday"  # past pandas' first parsing chunks
    rows[100_000] = '"7",' + rows[100_000].split(",", 1)[1]  # a quoted id: fine
    path = _write(tmp_path, "u,i,r,t\n" + "\n".join(rows) + "\n")
    assert re.search(r"line 200002: time column 't' value 'yesterday'", _error(path, **UIRT))


def test_unterminated_quote_names_the_line_where_it_opens(tmp_path):
    path = _write(tmp_path, 'u,i,r,t\n1,1,5,100\n2,"2,5,101\n3,3,5,102\n4,4,5,103\n')
    msg = _error(path, **UIRT)
    assert re.search(r"r\.csv, line 3: a quoted field opens on this line and is never closed", msg)
    # a quote closed lines later shifts the fields: reported at the record's first line
    path = _write(tmp_path, 'u,i,r,t\n1,1,5,100\n2,"2,5,101\n3",3,5,102\n4,4,5,103\n')
    msg = _error(path, **UIRT)
    assert re.search(r"line 3: .*runs on to line 4", msg)
    # quoted line breaks in a field are fine
    path = _write(tmp_path, 'u,i,r,t,note\n1,1,5,100,"two\nlines"\n2,2,5,101,x\n1,2,4,102,y\n')
    assert load(path, **UIRT).meta["dropped_duplicates"] == 0


def test_more_fields_than_the_header_is_an_error(tmp_path):
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n2,2,5,101,9\n3,3,5,102\n")
    assert re.search(r"line 3: has 5 fields, the header has 4", _error(path, **UIRT))
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100,9\n2,2,5,101\n")  # pandas: a silent index
    assert re.search(r"line 2: has 5 fields, the header has 4", _error(path, **UIRT))
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n2,2,5,101,\n")  # a trailing separator too
    assert re.search(r"line 3: has 5 fields, the header has 4", _error(path, **UIRT))
    path = _write(tmp_path, "1\t1\t5\n2\t2\t5\t7\n")
    assert re.search(r"line 2: has 4 fields, line 1 has 3",
                     _error(path, sep="tab", header=False, user_col="0", item_col="1",
                            rating_col="2", clean="all"))
    path = _write(tmp_path, "u,i,r,t\n1,1,5,100\n2,2\n")  # too few: names the missing column
    assert re.search(r"line 3: has 2 field\(s\), the header has 4: no value for column 'r'",
                     _error(path, **UIRT))


def test_unknown_option_lists_the_options(tmp_path):
    path = _write(tmp_path, "user,item,rating\n1,1,5\n")
    with pytest.raises(UnknownOptionError) as info:
        load_dataset("rec", "csv", data_root=str(tmp_path), path=str(path), item_column="x")
    msg = str(info.value)
    assert "item_column" in msg and all(o in msg for o in ("path", "sep", "time_col", "cache"))
    with pytest.raises(ValueError, match="header='maybe'"):
        load(path, header="maybe")


# ----------------------------------------------------------- describe shows what was dropped

def test_describe_shows_dropped_rows(tmp_path, capsys):
    rows = ["u,i,r,t"] + [f"{u},{(u + k) % 10},5,{k}" for u in range(6) for k in range(10)]
    rows += ["0,0,4,999", "1,1,3,999"]  # two duplicates (the later rows win)
    rows += ["2,77,5,1000", "3,78,5,1000"]  # items only at the end: unseen in train
    path = _write(tmp_path, "\n".join(rows) + "\n")
    s = load(path, **UIRT, split="chrono")
    stats = s.stats()
    assert stats["dropped_duplicates"] == s.meta["dropped_duplicates"] == 2
    assert stats["dropped_unseen_item_valid"] + stats["dropped_unseen_item_test"] == 2
    assert all(type(stats[k]) is int for k in stats if k.startswith("dropped_"))
    assert data_cli.main(["describe", "csv", "--option", f"path={path}", "--option", "user_col=u",
                          "--option", "item_col=i", "--option", "rating_col=r", "--option",
                          "time_col=t", "--option", "split=chrono", "--option", "clean=r>=4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dropped_duplicates"] == 2 and "dropped_unseen_item_test" in out


# ----------------------------------------------------------- options: help, paths

def test_options_help_documents_every_option():
    params = [p for p in inspect.signature(custom_csv.load_csv).parameters
              if p not in ("root", "download")]
    for name in params:
        assert re.search(rf"^  {name}\b", custom_csv.CSV_OPTIONS_HELP, re.M), name
    assert "user_col=userId" in custom_csv.CSV_OPTIONS_HELP
    assert "clean='rating>=4'" in custom_csv.CSV_OPTIONS_HELP
    assert "1.0" in custom_csv.CSV_OPTIONS_HELP  # the numeric id rule is documented


def test_resolve_options_makes_the_path_absolute(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "root", tmp_path / "cwd"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "sub" / "r.csv").write_text("user,item,rating\n1,1,5\n")
    (elsewhere / "here.csv").write_text("user,item,rating\n1,1,5\n")
    monkeypatch.chdir(elsewhere)
    out = custom_csv.resolve_options({"path": "sub/r.csv", "sep": ","}, root)
    assert out == {"path": str(root / "sub" / "r.csv"), "sep": ","}
    assert custom_csv.resolve_options({"path": "here.csv"}, root)["path"] == str(elsewhere / "here.csv")
    with pytest.raises(DataUnavailableError, match="nope.csv"):
        custom_csv.resolve_options({"path": "nope.csv"}, root)
    with pytest.raises(ValueError, match="path"):
        custom_csv.resolve_options({"sep": ";"}, root)
    # the hook a driver finds on the loader itself
    assert REC_DATASETS.get("csv").resolve_options is custom_csv.resolve_options


# ----------------------------------------------------------- the split cache

def _same(a, b) -> None:
    for part in PARTS:
        assert np.array_equal(getattr(a, part), getattr(b, part)) and getattr(b, part).dtype == np.int64
    assert (a.name, a.n_users, a.n_items, a.ks, a.valid_in_test) == \
           (b.name, b.n_users, b.n_items, b.ks, b.valid_in_test)
    assert np.array_equal(a.train_rating, b.train_rating)
    assert a.meta.keys() == b.meta.keys()
    for key, val in a.meta.items():
        if isinstance(val, np.ndarray):
            assert np.array_equal(val, b.meta[key]) and val.dtype == b.meta[key].dtype, key
        else:
            assert val == b.meta[key], key


def test_split_cache_round_trip_and_invalidation(tmp_path):
    path = tmp_path / "r.csv"
    write_synthetic_csv(path, 5000, seed=2)
    opts = dict(user_col="user", item_col="item", time_col="timestamp", clean="rating>=4")
    first = load(path, **opts)
    entries = list((tmp_path / "cache" / "splits").glob("*.npz"))
    assert len(entries) == 1 and not list((tmp_path / "cache" / "splits").glob("*.tmp"))
    with np.load(entries[0], allow_pickle=False) as npz:  # plain arrays: no pickle needed
        assert all(npz[name].dtype != object for name in npz.files)
    again = load(path, **opts)
    _same(first, again)
    assert again.meta["original_user_ids"].dtype.kind == "U"
    load(path, **opts, seed=1)  # other options: another entry
    assert len(list((tmp_path / "cache" / "splits").glob("*.npz"))) == 2
    path.write_text(path.read_text().replace("u1,", "u100001,", 1))  # other content: another
    load(path, **opts)
    assert len(list((tmp_path / "cache" / "splits").glob("*.npz"))) == 3
    load(path, **opts, cache=False)
    assert len(list((tmp_path / "cache" / "splits").glob("*.npz"))) == 3


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    path = tmp_path / "r.csv"
    write_synthetic_csv(path, 3000, seed=3)
    first = load(path, user_col="user", item_col="item", clean="rating>=4")
    (entry,) = (tmp_path / "cache" / "splits").glob("*.npz")
    for damage in (b"", b"not a zip file", entry.read_bytes()[:len(entry.read_bytes()) // 2]):
        entry.write_bytes(damage)
        with pytest.warns(RuntimeWarning, match="unreadable"):
            again = load(path, user_col="user", item_col="item", clean="rating>=4")
        _same(first, again)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # rewritten: the next load is a clean hit
            _same(first, load(path, user_col="user", item_col="item", clean="rating>=4"))


def test_cached_split_stores_any_split_without_pickle(tmp_path):
    synthetic = REC_DATASETS.get("synthetic")(None, False, n_users=40, n_items=30, seed=1)
    calls = []
    build = lambda: calls.append(1) or synthetic  # noqa: E731
    key = {"loader": "synthetic", "options": {"n_users": 40}}
    a = split_cache.cached_split(key, build, root=tmp_path / "c")
    b = split_cache.cached_split(key, build, root=tmp_path / "c")
    assert len(calls) == 1 and a is synthetic and b is not synthetic
    _same(a, b)
    assert np.array_equal(a.train_noisy, b.train_noisy) and b.train_noisy.dtype == bool
    assert b.meta["options"] == a.meta["options"]
    # an unwritable cache folder is a warning, not an error
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="not cached"):
        assert split_cache.cached_split(key, build, root=blocker) is synthetic


# ----------------------------------------------------------- large synthetic files, benchmark

def test_synthetic_writer_is_exact_and_deterministic(tmp_path):
    info = write_synthetic_csv(tmp_path / "a.csv", 12_345, seed=5, text_ids=False)
    again = write_synthetic_csv(tmp_path / "b.csv", 12_345, seed=5, text_ids=False)
    assert info["rows"] == 12_345 and (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    df = pd.read_csv(tmp_path / "a.csv")
    assert list(df.columns) == ["user", "item", "rating", "timestamp"] and len(df) == 12_345
    assert df["user"].nunique() == info["users"] == 12_345 // 40 and df["item"].max() < info["items"]
    assert set(df["rating"]) <= {1, 2, 3, 4, 5} and again["bytes"] == info["bytes"]
    chunks = list(iter_synthetic_rows(5000, seed=5, chunk_rows=1000))
    assert len(chunks) > 1 and sum(map(len, chunks)) == 5000


def test_scale_benchmark_tiny(tmp_path):
    from deca_tune.bench import scale

    out = tmp_path / "scale.json"
    assert scale.main(["--tiny", "--in-process", "--workdir", str(tmp_path / "w"), "--out",
                       str(out), "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    (row,) = result["sizes"]
    assert row["size"] == "tiny" and row["rows"] == 2000
    for key in ("write_s", "load_cold_s", "load_cached_s", "load_cold_rss_mb",
                "published_gmf_epoch_s", "published_deca_epoch_s", "linear_gmf_epoch_s",
                "linear_deca_epoch_s", "linear_rank_s", "linear_gemm_floor_s", "linear_train_rss_mb"):
        assert row[key] >= 0, key
    assert row["published_recipe"] == "published" and row["linear_recipe"] == "linear"
    assert row["linear_gmf_steps_timed"] == row["linear_gmf_steps_total"] > 0
    assert "published_rank_s" not in row  # ranked once, with the last recipe's weights
    assert row["linear_rank_users"] > 0 and "loadavg_start" in result["machine"]
    # the floor is users x items x dim (32) x 2 FLOP at the probe's rate
    assert row["linear_gemm_floor_s"] == pytest.approx(
        2 * row["linear_rank_users"] * row["split_items"] * 32 / (row["linear_gemm_gflops"] * 1e9),
        rel=0.05)
    assert row["linear_rank_over_floor"] > 0
    assert "| tiny   | linear" in scale.format_training_table([row], ["published", "linear"])
    # a step cap extrapolates the epoch from the steps timed
    from deca_tune.training.rec_trainer import RecTrainer
    from helpers_rec import tiny_split

    trainer = RecTrainer({"backbone": "gmf", "batch_size": 16, "device": "cpu"}, split=tiny_split())
    timing = scale.timed_epoch(trainer, max_steps=2)
    assert timing["steps_timed"] == 2 and timing["steps_total"] == 12 and trainer.step == 2
    # the default path runs each phase in its own process (its own peak memory)
    args = scale.main.__globals__["argparse"].Namespace(
        ids="text", device="cpu", rank_mb=16.0, threads=1, timeout=120, max_steps=0,
        max_steps_published=0, recipes=["published", "linear"], rank_with=None, rank_max_users=0)
    res = scale._phase_in_subprocess("write", tmp_path / "p" / "r.csv", tmp_path / "p" / "c",
                                     args, 500)
    assert res["rows"] == 500 and res["write_rss_mb"] > 0
    assert scale.parse_size("250k") == ("250k", 250_000) and scale.parse_size("1M")[1] == 10**6


def test_scale_benchmark_search_phase_tiny(tmp_path):
    """``bench scale --phases search``: a whole search on the file, its wall time split into load,
    hand-over, training, evaluation and Tune's overhead, with the driver's and trials' memory."""
    from deca_tune.bench import scale

    out = tmp_path / "scale.json"
    assert scale.main(["--tiny", "--phases", "search", "--search-trials", "2", "--search-epochs", "2",
                       "--search-set", "valid_users=7",
                       "--workdir", str(tmp_path / "w"), "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["sizes"]
    # --search-set reaches every trial's spec
    assert row["search_sets"] == "valid_users=7"
    params = [json.loads(p.read_text()) for p in Path(row["search_experiment"]).glob("*/*/*/params.json")]
    assert len(params) == 6 and all(p.get("valid_users") == 7 for p in params), params[:1]
    trials = row["search_per_trial"]
    # 2 units (normal, deca) x 2 search trials, plus one seed run each
    assert row["search_trials"] == len(trials) == 6 and row["search_slots"] >= 1
    assert {t["unit"] for t in trials} == {"csv__gmf__normal", "csv__gmf__deca"}
    assert sum(t["phase"] == "seeds" for t in trials) == 2
    for t in trials:
        parts = [t[k] for k in scale_search_parts()]
        assert min(parts) >= 0 and t["train"] > 0 and t["peak_rss_mb"] > 0
        # Tune's time_total_s covers the trial's epochs (training and evaluation) and its set-up
        assert t["handover"] + t["setup"] + t["train"] + t["eval"] <= t["total"] + 0.05
    assert row["search_load_s"] > 0 and row["search_share_s"] >= 0
    assert row["search_driver_peak_rss_mb"] > 0 and row["search_trial_peak_rss_mb"] > 0
    assert row["search_tune_overhead_s"] == pytest.approx(
        row["search_wall_s"] - row["search_load_s"] - row["search_share_s"]
        - row["search_total_slot_s"] / row["search_slots"], abs=0.2)
    assert "| tiny | 6 (" in scale.format_search_table([row])


def scale_search_parts() -> tuple[str, ...]:
    from deca_tune.bench.scale_search import SEARCH_PARTS

    return SEARCH_PARTS
