"""The report on a tiny *real* experiment: ``deca_tune.search`` runs (Ray Tune, Optuna, ASHA) on a
small ``synthetic`` data set, then ``python -m deca_tune.report`` reads what it wrote."""
from __future__ import annotations

import json

import matplotlib.image as mpimg
import pandas as pd
import pytest

from deca_tune.recommend import recommend
from deca_tune.report import main as report_main
from deca_tune.search import main as search_main

pytestmark = pytest.mark.slow  # a real Ray Tune search: tens of seconds of Tune overhead


@pytest.fixture(scope="module")
def experiment(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    # one unit, two trials, one epoch: each Tuner.fit costs seconds of Ray overhead
    argv = ["--datasets", "synthetic", "--backbones", "gmf", "--methods", "deca",
            "--num-samples", "2", "--max-epochs", "1", "--grace-period", "1", "--seeds", "0", "1",
            "--set", "dataset_options.n_users=80", "--set", "dataset_options.n_items=60",
            "--storage-path", str(storage), "--name", "tiny", "--verbose", "0"]
    assert search_main(argv) == 0
    return storage / "tiny"


def test_report_reads_the_real_experiment(experiment, capsys) -> None:
    assert report_main([str(experiment)]) == 0
    assert "report.html" in capsys.readouterr().out
    out = experiment / "report"
    md = (out / "report.md").read_text()
    assert "| synthetic / gmf / deca | 2 | 0 | 2/2 | complete |" in md
    # what the run cost, from the manifest the search wrote: one finished run and the whole
    assert "| run 1 |" in md and "| all runs |" in md and "| finished |" in md and "(target <= 1.15)" in md
    # our mean ± std must agree with the search's own summary.csv (computed independently)
    summary = pd.read_csv(experiment / "summary" / "summary.csv").set_index("method")
    cells = pd.read_csv(out / "tables" / "table2_synthetic.csv")
    for method, row in (("deca", "DeCA"),):
        for col, metric in (("R@20", "test_clean/recall@20"), ("N@5", "test_clean/ndcg@5")):
            cell = cells[(cells["row"] == row) & (cells["column"] == col)].iloc[0]
            assert cell["n"] == 2 and cell["expected"] == 2
            assert cell["mean"] == pytest.approx(summary.loc[method, f"{metric}/mean"])
            assert cell["std"] == pytest.approx(summary.loc[method, f"{metric}/std"])
    stats = json.loads((experiment / "manifest.json").read_text())["data"]["synthetic"]["stats"]
    assert f"| synthetic | {stats['users']} | {stats['items']} |" in md
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"fig3_curves_synthetic_gmf.png", "fig5_sensitivity_synthetic_gmf_deca.png",
            "search_synthetic_gmf_deca.png"} <= figures
    for name in figures:
        pixels = mpimg.imread(out / "figures" / name)
        assert pixels[..., :3].std() > 0.05
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(figures)


def test_partial_view_of_the_real_experiment(experiment, tmp_path) -> None:
    """Drop one seed run from the summary (as if the rerun had not finished): shown as 1/2."""
    runs = pd.read_csv(experiment / "summary" / "seed_runs.csv")
    runs = runs[~((runs["method"] == "deca") & (runs["seed"] == 1))]
    partial = tmp_path / "partial"
    (partial / "summary").mkdir(parents=True)
    runs.to_csv(partial / "summary" / "seed_runs.csv", index=False)
    (partial / "manifest.json").write_text((experiment / "manifest.json").read_text())
    assert report_main([str(partial), "--formats", "md", "--no-dataset-table"]) == 0
    md = (partial / "report" / "report.md").read_text()
    assert "(1/2 seeds)" in md and "GMF / DeCA: 1/2 seeds finished (seeds 0)" in md


def test_score_exports_feed_the_noise_detection_table(experiment, tmp_path) -> None:
    """Checkpoints -> per-example scores -> AUC per run -> mean ± std over seeds in the report."""
    assert report_main([str(experiment), "--export-scores", "--out", str(tmp_path / "r"),
                        "--formats", "md,csv", "--no-dataset-table"]) == 0
    rows = pd.read_csv(experiment / "exports" / "noise_detection.csv")
    assert sorted(rows["seed"]) == [0, 1] and rows["noise_auc"].between(0, 1).all()
    scores = pd.read_csv(experiment / "exports" / "synthetic__gmf__deca__seed0_interpretability.csv")
    assert {"user", "item", "noisy", "probability"} <= set(scores.columns)
    assert scores["noisy"].astype(bool).mean() == pytest.approx(
        1 - rows.loc[rows["seed"] == 0, "n_clean"].iloc[0] / len(scores))
    cells = pd.read_csv(tmp_path / "r" / "tables" / "noise_detection_synthetic.csv")
    auc = cells[(cells["row"] == "DeCA") & (cells["column"] == "ROC-AUC")].iloc[0]
    assert auc["n"] == 2 and auc["mean"] == pytest.approx(rows["noise_auc"].mean())


def test_recommend_from_a_real_trial(experiment) -> None:
    trial = next(p for p in (experiment / "seeds" / "synthetic__gmf__deca").iterdir()
                 if p.is_dir() and p.name.startswith("seed0"))
    recs = recommend(trial, users=["0", "1"], k=4)
    assert len(recs) == 8 and set(recs["user"]) == {0, 1}
