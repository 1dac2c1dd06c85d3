"""The motivation study (section 3) on tiny data: pairs, truth masks, outputs."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from deca_tune.motivation import KIND_MODELS, KIND_SEEDS, rec_motivation_split, run_motivation, \
    write_motivation
from deca_tune.motivation import main as motivation_main
from helpers_rec import tiny_split


def test_rating_3_is_dropped_and_truth_follows_the_rating_rule() -> None:
    split = tiny_split()
    train, clean = rec_motivation_split(split)
    rating = split.train_rating
    assert len(train.train) == int((rating != 3).sum()) == len(clean)
    assert np.array_equal(clean, rating[rating != 3] >= 4)
    assert np.array_equal(train.train_rating, rating[rating != 3])
    assert len(split.train) == len(rating)  # the cached split itself is untouched


def test_rec_motivation_on_synthetic(tmp_path) -> None:
    result = run_motivation("rec", "synthetic", ["mf", "gmf"], seeds=(0, 1), max_epochs=2,
                            spec_overrides={"dataset_options": {"n_users": 80, "n_items": 60}},
                            log=lambda *_: None)
    pairs = result.pairs
    assert list(pairs["kind"]) == [KIND_MODELS, KIND_SEEDS, KIND_SEEDS]
    assert list(pairs["pair"]) == ["MF-GMF", "MF (seeds 0, 1)", "GMF (seeds 0, 1)"]
    assert pairs[["clean", "noisy"]].apply(lambda c: c.between(0, 1)).all().all()
    # synthetic: the planted truth is the mask; every training positive has one
    from deca_tune.data import load_dataset

    split = load_dataset("rec", "synthetic", n_users=80, n_items=60)
    assert result.n_noisy == int(np.asarray(split.train_noisy).sum())
    assert result.n_clean + result.n_noisy == len(split.train)
    assert len(result.models) == 4 and set(result.models["seed"]) == {0, 1}
    files = write_motivation(result, tmp_path)
    back = pd.read_csv(files[0])
    assert back["noisy"].tolist() == pytest.approx(pairs["noisy"].tolist())
    png = mpimg.imread(files[2])
    assert files[2].stat().st_size > 5000 and png[..., :3].std() > 0.05


def test_image_motivation_same_noisy_labels_for_every_model(tmp_path) -> None:
    opts = {"dataset_options": {"n_train": 700, "n_test": 100}, "valid_size": 100,
            "meta_per_class": 2, "batch_size": 100}
    result = run_motivation("image", "synthetic-images", ["convnet", "mlp"], seeds=(0, 1),
                            max_epochs=1, spec_overrides={"noise_rate": 0.4, **opts},
                            log=lambda *_: None)
    n = result.n_clean + result.n_noisy
    assert n == 700 - 100 - 20
    assert result.n_noisy / n == pytest.approx(0.4, abs=0.01)
    assert len(result.pairs) == 3 and result.pairs["noisy"].between(0, 1).all()
    assert result.models["test_clean/accuracy"].notna().all()


def test_cli_bad_name(tmp_path, capsys) -> None:
    assert motivation_main(["--task", "rec", "--dataset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown recommendation data set 'nope'" in capsys.readouterr().err
