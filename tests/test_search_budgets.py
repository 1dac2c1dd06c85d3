"""Comparable budgets (issue 22, part 1): each unit's epoch budget and first trial come from the
DeCA authors' configuration of its data set and backbone (``deca_tune/search/budgets.py``)."""
from __future__ import annotations

import pandas as pd
import pytest

from deca_tune.bench import fidelity
from deca_tune.bench.authors import AUTHORS_CONFIG
from deca_tune.search import main
from deca_tune.search.budgets import authors_start, epoch_budget, grace_period
from deca_tune.search.config import parse_args
from deca_tune.search.plan import build_plan


def plan_of(tmp_path, *argv: str):
    return build_plan(parse_args([*argv, "--storage-path", str(tmp_path)]))


def units(plan) -> dict[str, object]:
    return {u.key: u for u in plan.units}


def test_budget_is_per_backbone_the_most_epochs_the_authors_give_any_method(tmp_path):
    plan = plan_of(tmp_path, "--datasets", "ml-100k-paper", "modcloth-paper", "--protocol", "paper",
                   "--backbones", "gmf", "neumf", "cdae", "lightgcn", "--methods", "normal", "deca", "tce")
    for unit in plan.units:
        theirs = {v: k for k, v in fidelity.DATASETS.items()}[unit.dataset]
        epochs = [AUTHORS_CONFIG[(theirs, unit.backbone, m)]["epochs"] for m in ("normal", "deca", "deca_p")]
        # the same budget for every method of the backbone, no method below its authors' epochs
        assert unit.max_epochs == unit.spec["max_epochs"] == max(epochs), unit.key
        assert unit.grace_period == grace_period(unit.max_epochs)
    got = {(u.dataset, u.backbone): u.max_epochs for u in plan.units}
    assert got[("ml-100k-paper", "cdae")] == 500 and got[("ml-100k-paper", "gmf")] == 20
    assert got[("modcloth-paper", "lightgcn")] == 60
    # data sets and backbones the authors did not configure keep the earlier default
    assert epoch_budget("rec", "synthetic", "gmf") == 10 and epoch_budget("rec", "ml-100k", "mf") == 10
    assert epoch_budget("image", "fashion-mnist", "mlp") == 10


def test_max_epochs_and_grace_period_override_every_unit(tmp_path, capsys):
    plan = plan_of(tmp_path, "--datasets", "ml-100k-paper", "--backbones", "gmf", "cdae",
                   "--methods", "normal", "--max-epochs", "7", "--grace-period", "3")
    assert {(u.max_epochs, u.grace_period, u.spec["max_epochs"]) for u in plan.units} == {(7, 3, 7)}
    with pytest.raises(SystemExit):  # an explicit grace beyond a unit's budget is an input error
        main(["--datasets", "synthetic", "--grace-period", "11", "--dry-run",
              "--storage-path", str(tmp_path)])
    assert "exceeds the epoch budget 10" in capsys.readouterr().err


@pytest.mark.parametrize("cell", sorted({c[:3] for c in fidelity.cells([0])}))
def test_first_trial_is_the_fidelity_cell(tmp_path, cell):
    """Optuna's first trial of a unit has the fidelity bench's hyperparameters for that cell."""
    dataset, backbone, method = cell
    ours = fidelity.our_spec(dataset, backbone, method, 0, data_root=None, pretrain_cache="off")
    plan = plan_of(tmp_path, "--datasets", ours["dataset"], "--protocol", "paper",
                   "--backbones", backbone, "--methods", method)
    (unit,) = plan.units
    start = unit.space.start_point()
    for key in ("lr", "l2", "C0", "C1", "alpha"):
        if key in ours and key in start:
            low = unit.space.params[key].low
            assert start[key] == max(ours[key], low), key  # lambda 0 lies below the range: its low end
    assert set(start) >= {"lr", "l2"}
    assert unit.max_epochs >= ours["max_epochs"]


def test_cdae_states_its_own_l2_form_and_baselines_start_from_normal(tmp_path):
    plan = plan_of(tmp_path, "--datasets", "ml-100k-paper", "--backbones", "gmf", "cdae",
                   "--methods", "normal", "tce", "deca_p")
    u = units(plan)
    cdae, gmf = u["ml-100k-paper__cdae__normal"].space.params["l2"], u["ml-100k-paper__gmf__normal"].space.params["l2"]
    assert "unsquared" in cdae.form and "rec_cdae.yaml" in cdae.source
    assert "||p||^2" in gmf.form and "n_users" in gmf.form
    assert "rec_cdae.yaml" not in " ".join(u["ml-100k-paper__gmf__tce"].space.files)
    # T-CE has no authors' configuration: the normal cell's lambda, its own parameters' YAML start
    tce = u["ml-100k-paper__cdae__tce"].space.start_point()
    assert tce["l2"] == AUTHORS_CONFIG[("ml-100k", "cdae", "normal")]["lambda0"]
    assert tce["drop_rate"] == 0.2
    # DeCA(p) NeuMF/LightGCN have lambda 0: below the loguniform range, so its low end, said so
    assert authors_start("rec", "ml-100k-paper", "lightgcn", "deca_p")["l2"] == 0.0
    lgcn = plan_of(tmp_path, "--datasets", "ml-100k-paper", "--backbones", "lightgcn", "--methods",
                   "deca_p").units[0].space.params["l2"]
    assert lgcn.start == lgcn.low and "clamped" in lgcn.start_note


def test_first_search_trial_evaluates_the_authors_configuration(ray_session, tmp_path, capsys):
    """End to end (fake trainer): the unit's first Optuna trial is the authors' CDAE cell."""
    argv = ["--datasets", "ml-100k-paper", "--protocol", "paper", "--backbones", "cdae",
            "--methods", "deca", "--set", "trainer_factory=tests.search_fakes:FakeTrainer",
            "--num-samples", "2", "--max-epochs", "2", "--seeds", "0", "--verbose", "0",
            "--storage-path", str(tmp_path), "--name", "first"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    assert code == 0, out
    trials = pd.read_csv(tmp_path / "first/summary/search_trials.csv")
    cfg = AUTHORS_CONFIG[("ml-100k", "cdae", "deca")]
    first = trials[(trials["config/l2"] == cfg["lambda0"]) & (trials["config/C1"] == cfg["C_1"])
                   & (trials["config/C0"] == cfg["C_2"]) & (trials["config/alpha"] == cfg["alpha"])
                   & (trials["config/lr"] == 1e-3)]
    assert len(first) == 1


def test_a_partial_first_trial_is_completed_from_the_spec_or_dropped():
    """Ray's Optuna searcher takes only complete points: a parameter without ``start`` takes the
    unit's spec value (or the spec key it names, as ITLM's trim_ratio: noise_rate) when it lies
    in range; otherwise there is no first trial."""
    from search_spaces.loader import Param, SearchSpace
    from deca_tune.search.run import complete_start

    space = SearchSpace(task="image", method="itlm", params={"lr": Param("lr", "loguniform", low=0.01, high=0.1, start=0.01),
                                "trim_ratio": Param("trim_ratio", "uniform", low=0.0, high=0.6)})
    assert complete_start(space, {"trim_ratio": "noise_rate", "noise_rate": 0.4}) == {"lr": 0.01, "trim_ratio": 0.4}
    assert complete_start(space, {"trim_ratio": 0.2}) == {"lr": 0.01, "trim_ratio": 0.2}
    assert complete_start(space, {"trim_ratio": 0.9}) == {}
    assert complete_start(space, {}) == {}
