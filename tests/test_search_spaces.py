"""Search-space files: the shipped spaces, their paper grids, conversions and error messages."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from search_spaces.loader import (SearchSpaceError, SpaceCatalog, load_catalog, load_family)

GOOD = """\
task: rec
methods: [deca]
params:
  C0:
    distribution: loguniform
    low: 1
    high: 1000
    grid: [1, 10]
"""


@pytest.fixture(scope="module")
def catalog() -> SpaceCatalog:
    return load_catalog()


def test_rec_deca_space_matches_the_paper(catalog):
    space = catalog.space("rec", "deca")
    p = space.params
    assert set(p) == {"lr", "l2", "C0", "C1", "alpha"}
    assert (p["C0"].distribution, p["C0"].low, p["C0"].high) == ("loguniform", 1, 1000)
    assert (p["C1"].distribution, p["C1"].low, p["C1"].high) == ("loguniform", 1, 1000)
    assert (p["alpha"].distribution, p["alpha"].low, p["alpha"].high) == ("uniform", 0, 1)
    # l2 is lambda: the loss divides it by n_users
    assert (p["l2"].distribution, p["l2"].low, p["l2"].high) == ("loguniform", 0.01, 1000)
    assert (p["lr"].low, p["lr"].high) == (1e-4, 1e-2)
    assert p["C0"].grid == p["C1"].grid == (1, 10, 100, 1000)
    assert p["alpha"].grid == (0, 0.5, 1)
    assert p["l2"].grid == (0.01, 0.1, 1, 10, 100, 1000)
    assert space.grid_size() == 4 * 4 * 3 * 6
    assert catalog.space("rec", "deca_p").params.keys() == p.keys()


def test_each_method_searches_only_its_own_parameters(catalog):
    assert set(catalog.space("rec", "normal").params) == {"lr", "l2"}
    assert set(catalog.space("rec", "tce").params) == {"lr", "l2", "drop_rate", "num_gradual"}
    image = catalog.space("image", "deca_p").params
    assert set(image) == {"lr", "C1", "C2", "T1"}
    assert (image["lr"].low, image["lr"].high) == (1e-2, 1e-1)
    assert image["C1"].grid == image["C2"].grid == (1, 10, 50, 100)
    assert set(catalog.space("image", "normal").params) == {"lr"}


def test_every_rec_method_shares_normals_lr_and_l2(catalog):
    """Issue 17: an equal number of trials is an equal chance only if every method searches the
    same lr and l2 (range, grid, first trial), and each method's space contains its "off"
    setting, where it is ``normal``."""
    from deca_tune.methods import REC_METHODS

    base = catalog.space("rec", "normal").params
    key = lambda p: (p.distribution, p.low, p.high, p.grid, p.start)  # noqa: E731
    for method in REC_METHODS.names():
        params = catalog.space("rec", method).params
        assert key(params["lr"]) == key(base["lr"]) and key(params["l2"]) == key(base["l2"]), method
    rce = catalog.space("rec", "rce").params
    assert set(rce) == {"lr", "l2", "beta"} and rce["beta"].low == 0 and 0 in rce["beta"].grid
    assert rce["beta"].start == 0.2  # the authors' default
    assert catalog.space("rec", "tce").params["drop_rate"].low == 0


def test_conversions_to_tune_optuna_and_grid(catalog):
    from optuna.distributions import FloatDistribution, IntDistribution
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Float, Integer
    from ray.tune.search.variant_generator import generate_variants

    from deca_tune.search.spaces import grid_space, tune_space

    space = catalog.space("rec", "tce")
    domains = tune_space(space)
    assert isinstance(domains["lr"], Float)
    assert isinstance(domains["num_gradual"], Integer)
    optuna_space = OptunaSearch.convert_search_space(domains)
    assert optuna_space["lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert optuna_space["drop_rate"] == FloatDistribution(0.0, 0.5, log=False)
    # inclusive integer bounds survive Tune's exclusive upper bound
    assert optuna_space["num_gradual"] == IntDistribution(10, 30000, log=True)
    n = sum(1 for _ in generate_variants(grid_space(space)))
    assert n == space.grid_size() == 1 * 6 * 3 * 4
    fixed = space.without(["l2", "lr"])
    assert set(fixed.params) == {"drop_rate", "num_gradual"} and fixed.grid_size() == 12


def test_samples_stay_in_bounds(catalog):
    from deca_tune.search.spaces import tune_space

    space = tune_space(catalog.space("rec", "deca"))
    for _ in range(50):
        c0 = space["C0"].sample()
        alpha = space["alpha"].sample()
        assert 1 <= c0 <= 1000 and 0 <= alpha <= 1


@pytest.mark.parametrize("text, where, message", [
    (GOOD.replace("loguniform", "lognormal"), ":5: params.C0.distribution", "unknown distribution"),
    (GOOD.replace("low: 1", "low: 0"), ":6: params.C0.low", "must be > 0"),
    (GOOD.replace("high: 1000", "high: 0.5"), ":7: params.C0.high", "greater than low"),
    (GOOD.replace("grid: [1, 10]", "grid: [1, 5000]"), ":8: params.C0.grid", "outside"),
    (GOOD.replace("grid: [1, 10]", "grid: []"), ":8: params.C0.grid", "non-empty"),
    (GOOD.replace("    grid: [1, 10]\n", ""), "params.C0.grid", "missing"),
    (GOOD.replace("high: 1000", "high: 1000\n    step: 2"), ":8: params.C0.step", "unknown key"),
    (GOOD.replace("task: rec", "task: audio"), ":1: task", "unknown task"),
    (GOOD.replace("methods: [deca]", "methods: deca"), ":2: methods", "non-empty list"),
    (GOOD + "extra: 1\n", ":9: extra", "unknown key"),
    (GOOD.replace("high: 1000", "high: 1000\n    high: 10"), ":8: key 'params.C0.high'", "twice"),
    (GOOD.replace("low: 1", "low: one"), ":6: params.C0.low", "finite number"),
    (GOOD + "backbones: cdae\n", ":9: backbones", "non-empty list of backbone names"),
    (GOOD.replace("grid: [1, 10]", "grid: [1, 10]\n    form: 3"), ":9: params.C0.form", "must be a text"),
])
def test_bad_files_name_file_line_and_key(tmp_path: Path, text, where, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as info:
        load_family(path)
    assert "bad.yaml" in str(info.value)
    assert where in str(info.value)
    assert message in str(info.value)


def test_catalog_rejects_conflicts(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("C0", "C1"))
    with pytest.raises(SearchSpaceError, match=r"method 'deca' is also listed by .*a\.yaml"):
        load_catalog(tmp_path)
    (tmp_path / "b.yaml").write_text(GOOD.replace("methods: [deca]", 'methods: "*"'))
    with pytest.raises(SearchSpaceError, match=r"params\.C0: .*shared"):
        load_catalog(tmp_path)


def test_integer_distribution_needs_integers(tmp_path: Path):
    path = tmp_path / "int.yaml"
    path.write_text(GOOD.replace("loguniform", "int").replace("low: 1", "low: 1.5"))
    with pytest.raises(SearchSpaceError, match=r"params\.C0\.low: must be an integer"):
        load_family(path)


def test_grid_is_finite_numbers(catalog):
    for task in ("rec", "image"):
        for method in catalog.methods(task):
            for p in catalog.space(task, method).params.values():
                assert all(math.isfinite(g) for g in p.grid), (task, method, p.name)


def test_start_point_is_the_default_configuration(catalog, tmp_path: Path):
    assert catalog.space("rec", "deca").start_point() == {"lr": 1e-3, "l2": 0.1, "C0": 1000,
                                                          "C1": 1000, "alpha": 1}
    assert catalog.space("rec", "deca").without(["l2"]).start_point().keys() == {"lr", "C0", "C1", "alpha"}
    path = tmp_path / "s.yaml"
    path.write_text(GOOD + "    start: 5000\n")
    with pytest.raises(SearchSpaceError, match=r"s\.yaml:9: params\.C0\.start: value 5000"):
        load_family(path)


def test_backbone_files_replace_entries_of_their_backbones_only(catalog, tmp_path: Path):
    """CDAE's l2 (rec_cdae.yaml): its own form and first value, for every method, on CDAE only."""
    for method in ("normal", "deca", "tce"):
        cdae = catalog.space("rec", method, "cdae").params["l2"]
        gmf = catalog.space("rec", method, "gmf").params["l2"]
        assert "unsquared" in cdae.form and cdae.start == 1 and "rec_cdae.yaml" in cdae.source
        assert "||p||^2" in gmf.form and gmf.start == 0.1
        assert set(catalog.space("rec", method, "cdae").params) == set(catalog.space("rec", method).params)
    # a backbone file never adds a parameter its method does not search
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("methods: [deca]", 'methods: "*"\nbackbones: [cdae]')
                                     .replace("high: 1000", "high: 10"))
    spaces = load_catalog(tmp_path)
    assert spaces.space("rec", "deca", "cdae").params["C0"].high == 10
    assert spaces.space("rec", "deca", "gmf").params["C0"].high == 1000
    assert "C0" not in spaces.space("rec", "normal", "cdae").params
    # the plan's authors' start replaces `start`, clamped into the range
    space = catalog.space("rec", "deca", "gmf").with_start({"l2": 0.0, "C0": 10}, "theirs")
    assert space.params["l2"].start == 0.01 and "clamped" in space.params["l2"].start_note
    assert space.params["C0"].start == 10 and space.params["C0"].start_note == "theirs"
