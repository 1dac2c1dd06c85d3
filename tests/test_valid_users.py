"""Spec ``valid_users``: the validation splits rank a fixed random sample of their users (large
files, where ranking every validation user costs many epochs of training); test splits all."""
from __future__ import annotations

import numpy as np
import pytest

from deca_tune.tasks import SpecError
from deca_tune.training.rec_trainer import RecTrainer, sample_valid_users
from helpers_rec import tiny_split


def _trainer(**spec):
    return RecTrainer({"backbone": "gmf", "batch_size": 64, "device": "cpu", "max_epochs": 1,
                       "seed": 0, **spec}, split=tiny_split())


def test_sample_keeps_every_pair_of_the_chosen_users_and_nothing_else():
    sets = tiny_split().evaluation_sets("default")
    valid_users = np.unique(np.concatenate([sets[k][0][:, 0] for k in ("valid", "valid_clean")]))
    k = len(valid_users) // 2
    out = sample_valid_users(sets, k)
    chosen = np.unique(np.concatenate([out[n][0][:, 0] for n in ("valid", "valid_clean")]))
    assert len(chosen) == k and set(chosen) <= set(valid_users)
    for name in ("valid", "valid_clean"):
        rel = sets[name][0]
        np.testing.assert_array_equal(out[name][0], rel[np.isin(rel[:, 0], chosen)])
        assert out[name][1] is sets[name][1]  # the mask of ranked-out pairs is untouched
    for name in ("test", "test_clean"):
        assert out[name] is sets[name]
    # the same sample every time (every trial, epoch and method)
    np.testing.assert_array_equal(sample_valid_users(sets, k)["valid"][0], out["valid"][0])
    # none, or at least as many as there are: everything
    assert sample_valid_users(sets, None) is sets
    assert sample_valid_users(sets, len(valid_users)) is sets


def test_trainer_ranks_the_sample_on_validation_and_everyone_on_test():
    full, part = _trainer(), _trainer(valid_users=10)
    a, b = full.evaluate("all"), part.evaluate("all")
    assert b["valid/users"] == 10 < a["valid/users"]
    assert b["test/users"] == a["test/users"] and b["test/recall@20"] == pytest.approx(a["test/recall@20"])
    everyone = _trainer(valid_users=10**6).evaluate("all")
    assert everyone["valid/ndcg@20"] == pytest.approx(a["valid/ndcg@20"])


def test_valid_users_must_be_a_positive_integer():
    with pytest.raises(SpecError, match="valid_users"):
        _trainer(valid_users=0)
    with pytest.raises(SpecError, match="valid_users"):
        _trainer(valid_users=2.5)
