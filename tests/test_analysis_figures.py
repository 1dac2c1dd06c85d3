"""Figures and the report on fabricated experiment folders (finished, partial, resumed)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from analysis import figures as F
from analysis import noise_detection as ND
from deca_tune.metrics.noise_detection import truth_and_scores
from analysis.experiment import load_experiment
from analysis.report import build_report
from deca_tune.report import main as report_main
from helpers_analysis import curves_for, deca_trials, rec_metrics, rec_runs, write_experiment

METRICS = ["test_clean/recall@20", "test_clean/ndcg@20"]


def assert_png(path: Path, min_kb: float = 8.0) -> None:
    """A real picture: big enough, and not a single flat colour."""
    assert path.exists() and path.suffix == ".png", path
    assert path.stat().st_size > min_kb * 1024, (path, path.stat().st_size)
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert float(pixels[..., :3].std()) > 0.05, f"{path} is (almost) uniform"
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 20


@pytest.fixture()
def rec_exp(tmp_path) -> Path:
    means = {(b, m): rec_metrics(0.03 + i / 200, 0.09 + i / 100, 0.02 + i / 300, 0.05 + i / 150)
             for b in ("gmf",) for i, m in enumerate(("normal", "tce", "deca", "deca_p"))}
    runs = rec_runs(means, drop={("gmf", "deca_p", 2)})
    trials = deca_trials("ml-100k", "gmf", "deca") + deca_trials("ml-100k", "gmf", "normal", n=6, seed=1)
    root = write_experiment(tmp_path / "exp", runs=runs, curves=curves_for(runs, METRICS),
                            trials=trials, manifest={"seeds": [0, 1, 2]})
    rng = np.random.default_rng(0)
    rating = rng.integers(1, 6, 600)
    pd.DataFrame({"user": np.arange(600), "item": np.arange(600), "rating": rating,
                  "probability": np.clip(rating / 5 + rng.normal(0, 0.15, 600), 0, 1)}).to_csv(
        root / "deca_interpretability.csv", index=False)
    return root


def test_learning_curves(rec_exp, tmp_path) -> None:
    exp = load_experiment(rec_exp)
    (path,) = F.learning_curves(exp, tmp_path / "figs")
    assert path.name == "fig3_curves_ml-100k_gmf.png"
    assert_png(path)


def test_sensitivity_heatmap_bins_optuna_trials(rec_exp, tmp_path) -> None:
    exp = load_experiment(rec_exp)
    paths = F.sensitivity_heatmaps(exp, tmp_path / "figs")
    assert [p.name for p in paths] == ["fig5_sensitivity_ml-100k_gmf_deca.png"]  # not for normal
    assert_png(paths[0])
    binned, labels = F._bin(pd.Series([1.0, 3.0, 30.0, 300.0, 999.0, 2.0, 5.0, 7.0, 9.0, 11.0]))
    assert len(labels) == 3 and binned.notna().all()  # 10 trials: sqrt -> 3 bins, none lost
    six = pd.Series([24.2347, 50.598, 64.3117, 314.673, 473.499, 682.349])  # real Optuna draws
    binned, labels = F._bin(six)
    assert len(labels) == 2 and binned.notna().all()  # all unique: binned, extremes kept
    grid, labels = F._bin(pd.Series([1, 10, 100, 1000, 10, 1]))  # a grid keeps its values
    assert labels == ["1", "10", "100", "1000"]


def test_search_view_and_importance(rec_exp, tmp_path) -> None:
    exp = load_experiment(rec_exp)
    assert exp.search_params == ["C0", "C1", "lr"]
    trials = exp.search_trials[(exp.search_trials["method"] == "deca")
                               & (exp.search_trials["status"] == "TERMINATED")]
    imp = F.param_importance(trials, ["C0", "C1", "lr"], "valid/ndcg@20")
    assert set(imp) == {"C0", "C1", "lr"}
    assert max(imp, key=imp.get) == "C1"  # the fabricated metric depends on C1 only
    paths = F.search_views(exp, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["search_ml-100k_gmf_deca.png", "search_ml-100k_gmf_normal.png"]
    for p in paths:
        assert_png(p)


def test_rating_probability_and_motivation_bars(rec_exp, tmp_path) -> None:
    frame = F.read_interpretability(rec_exp / "deca_interpretability.csv")
    path = F.rating_probability({"DeCA": frame, "DeCA(p)": frame.assign(probability=frame["probability"] / 2)},
                                tmp_path / "fig6.png")
    assert_png(path)
    bars = pd.DataFrame({"pair": ["GMF-MF", "GMF (2 seeds)"], "kind": ["different models", "different seeds"],
                         "clean": [0.1, 0.05], "noisy": [0.3, 0.2]})
    assert_png(F.motivation_bars(bars, tmp_path / "fig1.png", "ML-100K"), min_kb=5)
    (tmp_path / "bad.csv").write_text("user,item,score\n1,2,0.3\n")
    with pytest.raises(ValueError, match="bad.csv: missing column"):
        F.read_interpretability(tmp_path / "bad.csv")


def test_fig6_pools_seeds_per_method_and_skips_sets_without_ratings(tmp_path) -> None:
    rng = np.random.default_rng(1)
    frames = []
    for method in ("deca", "deca_p"):
        for seed in (0, 1):
            rating = rng.integers(1, 6, 300)
            frames.append(pd.DataFrame({"dataset": "ml-100k", "backbone": "gmf", "method": method,
                                        "seed": seed, "user": 0, "item": 0, "rating": rating,
                                        "probability": rating / 6, "_file": f"{method}{seed}"}))
    frames.append(frames[0].assign(dataset="synthetic", rating=np.nan))
    paths = F.interpretability_figures(frames, tmp_path)
    assert [p.name for p in paths] == ["fig6_rating_probability_ml-100k.png"]
    assert_png(paths[0])


def test_noise_detection_from_exports(tmp_path) -> None:
    perfect = pd.DataFrame({"rating": [5, 4, 4, 3, 2, 1], "probability": [0.9, 0.8, 0.7, 0.5, 0.2, 0.1]})
    res = ND.score_export(perfect)
    assert res["noise_auc"] == 1.0 and res["noise_precision"] == 1.0
    assert (res["n_clean"], res["n_noisy"]) == (3, 2)  # rating 3 left out
    inverted = pd.DataFrame({"noisy": [True, True, False, False], "score": [0.9, 0.8, 0.2, 0.1]})
    assert ND.score_export(inverted)["noise_auc"] == 0.0
    perfect.to_csv(tmp_path / "a_clean_scores.csv", index=False)
    table = ND.export_table([tmp_path / "a_clean_scores.csv"])
    assert "| a_clean_scores | 1.0000 | 1.0000 | 0.400 | 3 | 2 |" in table.to_markdown()
    with pytest.raises(ValueError, match="no truth column"):
        truth_and_scores(pd.DataFrame({"score": [0.1]}), "x.csv")


def test_noise_detection_from_seed_runs(tmp_path) -> None:
    runs = rec_runs({("gmf", "deca"): {"noise_auc": 0.70, "noise_precision": 0.4},
                     ("gmf", "normal"): {"noise_auc": 0.60, "noise_precision": 0.3}}, d=0.01)
    (table,) = ND.run_table(load_experiment(write_experiment(tmp_path / "nd", runs=runs)))
    md = table.to_markdown()
    assert "| DeCA | **0.700 ± 0.010** | **0.400 ± 0.010** |" in md


def test_report_on_finished_experiment(rec_exp, tmp_path) -> None:
    report = build_report(rec_exp, tmp_path / "report", dataset_table=False)
    names = {p.name for p in report.files}
    assert {"report.md", "report.html", "tables.tex", "table2_ml-100k.md", "table2_ml-100k.tex",
            "table2_ml-100k.csv", "run_status.md"} <= names
    assert {p.name for p in report.figures} >= {"fig3_curves_ml-100k_gmf.png",
                                               "fig5_sensitivity_ml-100k_gmf_deca.png",
                                               "fig6_rating_probability.png"}
    for p in report.figures:
        assert_png(p, min_kb=5)
    md = report.markdown.read_text()
    assert "(2/3 seeds)" in md and "GMF / DeCA(p): 2/3 seeds finished (seeds 0,1)" in md
    assert "![fig3_curves_ml-100k_gmf](figures/fig3_curves_ml-100k_gmf.png)" in md
    html = report.html.read_text()
    assert html.count("data:image/png;base64,") == len(report.figures)  # self-contained
    assert "<b>" in html and "noise_detection_exports" in html  # interpretability export scored


def test_report_on_partial_experiment(tmp_path, capsys) -> None:
    """Search started, no seed runs yet: the report says what is missing, and does not fail."""
    root = tmp_path / "partial"
    (root / "search" / "ml-100k__gmf__deca").mkdir(parents=True)
    (root / "search" / "ml-100k__gmf__normal").mkdir(parents=True)
    write_experiment(root, trials=deca_trials("ml-100k", "gmf", "deca", n=8),
                     manifest={"seeds": [0, 1, 2]})
    rc = report_main([str(root), "--formats", "md,csv", "--no-dataset-table"])
    assert rc == 0
    out = capsys.readouterr()
    assert "seed_runs.csv is missing or empty" in out.err
    md = (root / "report" / "report.md").read_text()
    assert "| ml-100k / gmf / normal | 0 | 0 | 0/3 | incomplete |" in md
    assert "| ml-100k / gmf / deca | 9 | 1 | 0/3 | incomplete |" in md
    assert "| DeCA | missing (0/3 seeds) |" in md
    assert not (root / "report" / "report.html").exists()


def test_report_on_resumed_experiment_deduplicates_seeds(tmp_path) -> None:
    """A resumed run may write a seed twice: the last row counts, once."""
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.03, 0.09, 0.02, 0.05)})
    again = dict(runs[0])
    again["test_clean/recall@5"] = 0.029  # the rerun's value of seed 0 replaces the first
    root = write_experiment(tmp_path / "resumed", runs=runs + [again])
    report = build_report(root, formats=["csv"], dataset_table=False)
    data = pd.read_csv(report.out_dir / "tables" / "table2_ml-100k.csv")
    cell = data[(data["row"] == "Normal") & (data["column"] == "R@5")].iloc[0]
    assert cell["n"] == 3 and cell["mean"] == pytest.approx((0.029 + 0.030 + 0.032) / 3)


def test_cli_errors(tmp_path, capsys) -> None:
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        report_main([str(tmp_path), "--formats", "pdf"])
    assert exc.value.code == 2
