"""Tables from fabricated experiment folders: mean ± std, bold, the 5% star rule, Welch's t-test
mark, missing seeds."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import tables as T
from analysis.experiment import ExperimentError, load_experiment
from helpers_analysis import rec_metrics, rec_runs, write_experiment

# GMF block: column R@5 -> DeCA(p) beats the best baseline (T-CE 0.100) by 6% => bold + star;
# R@20 -> DeCA beats Ensemble 0.200 by 4% => bold, no star; N@5 -> a baseline (WBPR) is best;
# N@20 -> the ablation DeCA-DP is best denoising, +10% => star on DeCA-DP.
MEANS = {
    ("gmf", "normal"): rec_metrics(0.090, 0.190, 0.050, 0.100),
    ("gmf", "wbpr"): rec_metrics(0.095, 0.180, 0.070, 0.098),
    ("gmf", "tce"): rec_metrics(0.100, 0.195, 0.055, 0.099),
    ("gmf", "ensemble"): rec_metrics(0.098, 0.200, 0.060, 0.095),
    ("gmf", "deca"): rec_metrics(0.102, 0.208, 0.065, 0.105),
    ("gmf", "deca_p"): rec_metrics(0.106, 0.205, 0.066, 0.106),
    ("gmf", "deca-dp"): rec_metrics(0.080, 0.150, 0.040, 0.110),
    ("neumf", "normal"): rec_metrics(0.110, 0.250, 0.070, 0.120),
    ("neumf", "deca"): rec_metrics(0.120, 0.260, 0.075, 0.125),
}


def _cell(table: T.Table, block: str, row: str, column: str) -> pd.Series:
    data = table.data
    hit = data[(data["block"] == block) & (data["row"] == row) & (data["column"] == column)]
    assert len(hit) == 1, (block, row, column)
    return hit.iloc[0]


@pytest.fixture()
def exp(tmp_path):
    runs = rec_runs(MEANS, drop={("neumf", "deca", 2)}, failed={("gmf", "wbpr", 1)})
    manifest = {"seeds": [0, 1, 2], "datasets": ["ml-100k"], "backbones": ["gmf", "neumf"],
                "methods": ["normal", "deca", "deca_p-dn"]}
    return load_experiment(write_experiment(tmp_path / "exp", runs=runs, manifest=manifest))


def test_format_cell_styles() -> None:
    assert T.format_cell(0.0951, 0.0021, 2, 3) == "0.095 ± 0.002 (2/3 seeds)"
    assert T.format_cell(0.0951, 0.0021, 3, 3, bold=True, star=True) == "**0.095 ± 0.002**\\*"
    assert T.format_cell(0.0951, 0.0021, 3, 3, bold=True, star=True, style="tex") == \
        "\\textbf{0.095 $\\pm$ 0.002}$^{*}$"
    assert T.format_cell(0.0951, 0.0021, 3, 3, bold=True, style="html") == "<b>0.095 ± 0.002</b>"
    assert T.format_cell(0.8472, 0.0047, 3, 3, percent=True) == "84.72 ± 0.47%"
    assert T.format_cell(0.8472, 0.0047, 3, 3, percent=True, style="tex") == "84.72 $\\pm$ 0.47\\%"
    assert T.format_cell(0.0951, float("nan"), 1, 3) == "0.095 (1/3 seeds)"  # no std from one seed
    assert T.format_cell(float("nan"), float("nan"), 0, 3) == "missing (0/3 seeds)"


def test_mean_std_and_marks(exp) -> None:
    (table,) = T.performance_tables(exp)
    assert table.name == "table2_ml-100k"
    assert table.columns == ["R@5", "R@20", "N@5", "N@20"]
    assert table.blocks == ["GMF", "NeuMF"]
    cell = _cell(table, "GMF", "DeCA(p)", "R@5")
    assert cell["mean"] == pytest.approx(0.106) and cell["std"] == pytest.approx(0.002)
    assert cell["n"] == 3 and cell["bold"] and cell["star"]
    # +4% over the best baseline: bold but no star
    cell = _cell(table, "GMF", "DeCA", "R@20")
    assert cell["bold"] and not cell["star"]
    assert not _cell(table, "GMF", "Ensemble", "R@20")["bold"]
    # a baseline is best: it is bold, no star anywhere in the column
    assert _cell(table, "GMF", "WBPR", "N@5")["bold"]
    assert not table.data[(table.data["block"] == "GMF") & (table.data["column"] == "N@5")]["star"].any()
    # the ablation counts as a denoising result
    cell = _cell(table, "GMF", "DeCA-DP", "N@20")
    assert cell["bold"] and cell["star"]
    assert _cell(table, "GMF", "DeCA-DP", "R@5")["mean"] == pytest.approx(0.080)
    md = table.to_markdown()
    # both are far above Normal (3 seeds, std 0.002): significant after Holm, the dagger
    assert "**0.106 ± 0.002**\\*†" in md and "**0.208 ± 0.002**† |" in md


def test_student_t_and_incomplete_beta_match_known_values() -> None:
    import math

    # closed forms: I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b
    assert T.betainc(2.5, 1.0, 0.3) == pytest.approx(0.3 ** 2.5, rel=1e-12)
    assert T.betainc(1.0, 3.5, 0.4) == pytest.approx(1 - 0.6 ** 3.5, rel=1e-12)
    assert T.betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-12)  # symmetric
    for t in (0.1, 0.7, 1.0, 2.5, 10.0, 100.0):
        # df = 1 (Cauchy) and df = 2 have closed-form two-sided tails
        assert T.student_t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-12)
        assert T.student_t_two_sided(-t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)
    # tabulated 97.5% quantiles: two-sided p = 0.05
    for t, df in ((12.7062047, 1), (2.776445105, 4), (2.228138852, 10), (2.042272456, 30)):
        assert T.student_t_two_sided(t, df) == pytest.approx(0.05, abs=1e-8)
    assert T.student_t_two_sided(1.959963985, 1e7) == pytest.approx(0.05, abs=1e-6)  # -> normal
    assert T.student_t_two_sided(0.0, 5) == 1.0 and T.student_t_two_sided(math.inf, 5) == 0.0


def test_welch_t_test_and_the_issue_example() -> None:
    import math

    # the issue's cell: 10% better (the paper's star) but not significant over 3 seeds
    t, df, p = T.welch_t_test(0.181, 0.018, 3, 0.164, 0.002, 3)
    v1, v2 = 0.018 ** 2 / 3, 0.002 ** 2 / 3
    assert t == pytest.approx(0.017 / math.sqrt(v1 + v2))
    assert df == pytest.approx((v1 + v2) ** 2 / (v1 ** 2 / 2 + v2 ** 2 / 2))  # Welch-Satterthwaite
    assert 2.0 < df < 2.1 and p == pytest.approx(0.2425, abs=1e-3) and p > 0.05
    # equal sizes and spreads: Student's pooled test, df = 2n - 2
    t, df, p = T.welch_t_test(1.0, 0.5, 5, 0.0, 0.5, 5)
    assert df == pytest.approx(8) and t == pytest.approx(1 / math.sqrt(0.1))
    assert p == pytest.approx(T.student_t_two_sided(t, 8))
    assert all(math.isnan(v) for v in T.welch_t_test(0.2, 0.01, 1, 0.1, 0.01, 3))  # one seed
    assert all(math.isnan(v) for v in T.welch_t_test(0.2, 0.0, 3, 0.1, 0.0, 3))  # no spread


def test_star_without_significance_gets_no_dagger(tmp_path) -> None:
    # DeCA 10% above Normal on R@5 but noisy over seeds: star, no dagger; p-value in the CSV
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.164, 0.2, 0.1, 0.1)}, d=0.002)
    runs += rec_runs({("gmf", "deca"): rec_metrics(0.181, 0.2, 0.1, 0.1)}, d=0.018)
    (table,) = T.performance_tables(load_experiment(write_experiment(tmp_path / "e", runs=runs)))
    cell = _cell(table, "GMF", "DeCA", "R@5")
    assert cell["star"] and not cell["sig"] and cell["reference"] == "normal"
    assert cell["p_value"] == pytest.approx(T.welch_t_test(0.181, 0.018, 3, 0.164, 0.002, 3)[2])
    assert cell["diff"] == pytest.approx(0.017) and cell["ci_low"] < 0 < cell["ci_high"]
    assert "**0.181 ± 0.018**\\* |" in table.to_markdown()
    assert "†" in table.caption and "Welch" in table.caption and "Holm" in table.caption
    back = pd.read_csv(table.to_csv(tmp_path / "t.csv"))
    row = back[(back["row"] == "DeCA") & (back["column"] == "R@5")].iloc[0]
    assert row["p_value"] == pytest.approx(cell["p_value"]) and not row["sig"]
    assert row["ci_low"] == pytest.approx(cell["ci_low"]) and row["p_holm"] >= row["p_value"]
    assert pd.isna(back[(back["row"] == "Normal") & (back["column"] == "R@5")]["p_value"].iloc[0])


def test_t_quantile_interval_and_holm() -> None:
    import math

    # tabulated 97.5% quantiles of Student's t
    for df, q in ((1, 12.7062047), (4, 2.776445105), (10, 2.228138852), (30, 2.042272456)):
        assert T.t_quantile(0.975, df) == pytest.approx(q, abs=1e-6)
    assert T.t_quantile(0.995, 8) == pytest.approx(3.355387331, abs=1e-6)
    # equal spreads: the interval is diff +- t(0.975, 2n-2) * sqrt(2 s^2 / n)
    lo, hi = T.welch_interval(1.0, 0.5, 5, 0.0, 0.5, 5)
    half = 2.306004135 * math.sqrt(2 * 0.25 / 5)
    assert lo == pytest.approx(1.0 - half, abs=1e-6) and hi == pytest.approx(1.0 + half, abs=1e-6)
    assert all(math.isnan(v) for v in T.welch_interval(0.2, 0.01, 1, 0.1, 0.01, 3))
    # Holm by hand: sorted 0.01, 0.02, 0.04 of m = 3 -> 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert T.holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04],
                                                                      nan_ok=True)
    assert T.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone


def test_holm_over_the_table_and_the_marks_below(tmp_path) -> None:
    # GMF: DeCA is 2.5 seed std above Normal on every column: p ~ 0.03 uncorrected, but 5 methods x
    # 4 columns = 20 tests; T-CE is far below Normal on R@5: the double dagger
    means = {("gmf", "normal"): rec_metrics(0.100, 0.200, 0.050, 0.100)}
    for m in ("wbpr", "ensemble", "deca_p"):
        means[("gmf", m)] = rec_metrics(0.100, 0.200, 0.050, 0.100)
    means[("gmf", "deca")] = rec_metrics(0.105, 0.205, 0.055, 0.105)
    means[("gmf", "tce")] = rec_metrics(0.060, 0.200, 0.050, 0.100)
    runs = rec_runs(means, d=0.002)
    (table,) = T.performance_tables(load_experiment(write_experiment(tmp_path / "e", runs=runs)))
    deca = _cell(table, "GMF", "DeCA", "R@5")
    assert deca["p_value"] < 0.05 and deca["p_holm"] > 0.05 and not deca["sig"]
    assert deca["ci_low"] > 0  # the uncorrected 95% interval excludes 0, Holm's family does not
    tce = _cell(table, "GMF", "T-CE", "R@5")
    assert tce["sig"] and tce["sig_direction"] == -1 and tce["diff"] == pytest.approx(-0.04)
    assert "0.060 ± 0.002‡" in table.to_markdown()
    assert table.data["p_value"].notna().sum() == 20
    assert "With 20 tests in this table" in table.caption and "3 seeds" in table.caption


def test_power_note_numbers() -> None:
    # one test, 3 seeds a side: t(0.975, 4) * sqrt(2/3) = 2.267 seed std; 5 seeds: 2.306 * sqrt(2/5)
    first, last = T.smallest_markable(3, 1)
    assert first == pytest.approx(last) and last == pytest.approx(2.776445 * (2 / 3) ** 0.5, abs=1e-5)
    assert T.smallest_markable(5, 1)[1] == pytest.approx(2.306004 * 0.4 ** 0.5, abs=1e-5)
    assert T.smallest_markable(3, 20)[0] > T.smallest_markable(5, 20)[0] > T.smallest_markable(5, 1)[0]
    # chi-square with 2 df: P(X <= x) = 1 - exp(-x/2); the std of 3 seeds is known to [0.52, 6.3]x
    assert T.chi2_cdf_even(3.0, 2) == pytest.approx(1 - 2.718281828 ** -1.5)
    low, high = T.std_interval_factor(3)
    assert low == pytest.approx((2 / 7.377759) ** 0.5, abs=1e-5)
    assert high == pytest.approx((2 / 0.0506356) ** 0.5, abs=1e-4)
    assert T.std_interval_factor(4) is None
    text = T.power_note(20)
    assert "3 seeds" in text and "5 seeds" in text and "not evidence of no difference" in text


def test_missing_and_failed_seeds_are_marked_not_hidden(exp) -> None:
    (table,) = T.performance_tables(exp)
    # seed 2 of NeuMF/DeCA never ran: averaged over the two that did, and says so
    cell = _cell(table, "NeuMF", "DeCA", "R@5")
    assert cell["n"] == 2 and cell["expected"] == 3
    assert cell["mean"] == pytest.approx((0.118 + 0.120) / 2)
    # seed 1 of GMF/WBPR failed (status ERROR, NaN metrics): not counted, listed as failed
    cell = _cell(table, "GMF", "WBPR", "R@5")
    assert cell["n"] == 2 and cell["failed"] == "1" and cell["seeds"] == "0,2"
    md = table.to_markdown()
    assert "(2/3 seeds)" in md
    assert "GMF / WBPR: 2/3 seeds finished (seeds 0,2; failed: seed 1)" in md
    # planned in the manifest, never run: a row of "missing"
    cell = _cell(table, "GMF", "DeCA(p)-DN", "R@5")
    assert cell["n"] == 0
    assert "| DeCA(p)-DN | missing (0/3 seeds) |" in md
    # the missing family never wins bold
    assert not table.data[table.data["n"] == 0]["bold"].any()


def test_latex_and_csv(exp, tmp_path) -> None:
    (table,) = T.performance_tables(exp)
    tex = table.to_latex()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\textbf{0.106 $\\pm$ 0.002}$^{*}$",
                  "GMF & Normal", "\\caption{"):
        assert token in tex
    paths = table.write(tmp_path / "out", ["md", "tex", "csv"])
    assert [p.suffix for p in paths] == [".md", ".tex", ".csv"]
    back = pd.read_csv(paths[2])
    row = back[(back["block"] == "GMF") & (back["row"] == "DeCA(p)") & (back["column"] == "R@5")]
    assert row["mean"].iloc[0] == pytest.approx(0.106) and bool(row["star"].iloc[0])
    with pytest.raises(ValueError, match="unknown table format"):
        table.write(tmp_path / "out", ["pdf"])


def test_electronics_uses_k10_k50_and_falls_back_with_a_note(tmp_path) -> None:
    metrics = {f"test_clean/{m}@{k}": 0.1 for m in ("recall", "ndcg") for k in (10, 50)}
    exp = load_experiment(write_experiment(tmp_path / "e", runs=rec_runs(
        {("gmf", "normal"): metrics}, dataset="electronics")))
    (table,) = T.performance_tables(exp)
    assert table.columns == ["R@10", "R@50", "N@10", "N@50"] and not table.notes
    metrics = {f"test_clean/{m}@{k}": 0.1 for m in ("recall", "ndcg") for k in (10, 20)}
    exp = load_experiment(write_experiment(tmp_path / "f", runs=rec_runs(
        {("gmf", "normal"): metrics}, dataset="electronics")))
    (table,) = T.performance_tables(exp)
    assert table.columns == ["R@10", "R@20", "N@10", "N@20"]
    assert any("K = 50" in n for n in table.notes)
    only20 = {"test_clean/recall@20": 0.1, "test_clean/ndcg@20": 0.05}
    exp = load_experiment(write_experiment(tmp_path / "g", runs=rec_runs({("gmf", "normal"): only20})))
    (table,) = T.performance_tables(exp)
    assert table.columns == ["R@20", "N@20"] and "K = 5" in table.notes[0]


def test_image_table_by_noise_rate(tmp_path) -> None:
    runs = []
    for rate, accs in ((0.2, {"normal": 0.86, "itlm": 0.88, "deca_p": 0.89}),
                       (0.4, {"normal": 0.84, "itlm": 0.87, "deca_p": 0.86})):
        for method, acc in accs.items():
            for seed, off in zip((0, 1, 2), (-1, 0, 1)):
                if (rate, method, seed) == (0.4, "itlm", 2):
                    continue
                runs.append({"dataset": "fashion-mnist", "backbone": "resnet32", "method": method,
                             "seed": seed, "task": "image", "noise_rate": rate,
                             "test_clean/accuracy": acc + off * 0.001})
    manifest = {"seeds": 3, "datasets": ["fashion-mnist"], "backbones": ["resnet32"],
                "methods": ["normal", "mwnet", "itlm", "deca_p"]}
    exp = load_experiment(write_experiment(tmp_path / "img", runs=runs, manifest=manifest))
    assert exp.task_of("fashion-mnist") == "image"
    assert T.performance_tables(exp) == []
    (table,) = T.image_tables(exp)
    assert table.columns == ["20%", "40%"] and table.rows == ["Normal", "MW-Net", "ITLM", "DeCA(p)"]
    assert "| MW-Net | missing (0/3 seeds) | missing (0/3 seeds) |" in table.to_markdown()
    assert _cell(table, "ResNet-32", "DeCA(p)", "20%")["bold"]
    assert _cell(table, "ResNet-32", "ITLM", "40%")["bold"]
    md = table.to_markdown()
    assert "**89.00 ± 0.10%**†" in md and "86.95 ± 0.07%† (2/3 seeds)" in md.replace("**", "")


def test_ablation_and_h_model_tables(tmp_path) -> None:
    means = {("gmf", m): rec_metrics(0.07, 0.24, 0.05, 0.10 + i / 1000)
             for i, m in enumerate(("normal", "deca", "deca-dp", "deca-dn", "deca_p", "deca_p-dp"))}
    runs = rec_runs(means, dataset="modcloth")
    runs += rec_runs({("gmf", "deca"): rec_metrics(0.074, 0.245, 0.051, 0.099)}, dataset="modcloth",
                     extra={"config/h_backbone": "gmf"})
    exp = load_experiment(write_experiment(tmp_path / "abl", runs=runs))
    (t2,) = T.performance_tables(exp)
    # the h = GMF variant is Table 6 material, not a second "DeCA" row in Table 2
    assert _cell(t2, "GMF", "DeCA", "R@5")["mean"] == pytest.approx(0.07)
    (t5,) = T.ablation_tables(exp)
    assert t5.rows == ["DeCA-DP", "DeCA-DN", "DeCA", "DeCA(p)-DP", "DeCA(p)"]
    # bold within each family: DeCA-DN best of deca*, DeCA(p)-DP best of deca_p*
    assert _cell(t5, "GMF", "DeCA-DN", "N@20")["bold"]
    assert _cell(t5, "GMF", "DeCA(p)-DP", "N@20")["bold"]
    assert not _cell(t5, "GMF", "DeCA", "N@20")["bold"]
    (t6,) = T.h_model_tables(exp)
    assert t6.rows[:3] == ["Normal", "DeCA (h, h' = MF)", "DeCA (h, h' = GMF)"]
    assert _cell(t6, "GMF", "DeCA (h, h' = GMF)", "R@5")["mean"] == pytest.approx(0.074)
    assert _cell(t6, "GMF", "DeCA (h, h' = GMF)", "R@5")["bold"]


def test_ablation_table_only_when_ablations_exist(exp, tmp_path) -> None:
    (t5,) = T.ablation_tables(exp)  # the fixture has deca-dp runs and plans deca_p-dn
    assert t5.rows == ["DeCA-DP", "DeCA", "DeCA(p)-DN", "DeCA(p)"]
    plain = load_experiment(write_experiment(tmp_path / "plain", runs=rec_runs(
        {("gmf", "normal"): MEANS[("gmf", "normal")], ("gmf", "deca"): MEANS[("gmf", "deca")]})))
    assert T.ablation_tables(plain) == []
    assert T.h_model_tables(plain) == []
    one_h = load_experiment(write_experiment(tmp_path / "one_h", runs=rec_runs(
        {("gmf", "deca"): MEANS[("gmf", "deca")]}, extra={"config/h_backbone": "mf"})))
    assert T.h_model_tables(one_h) == []  # a single choice of h: no Table 6


def test_dataset_table(tmp_path) -> None:
    stats = {"ml-100k": {"users": 943, "items": 1682, "interactions": 100000, "sparsity": 0.93695,
                         "train": 80000, "valid": 10000, "test": 10000, "valid_clean": 2000,
                         "test_clean": 2100}}
    table = T.dataset_table(["ml-100k", "broken"], stats)
    md = table.to_markdown()
    assert "| MovieLens-100K | 943 | 1,682 | 100,000 | 0.93695 |" in md
    assert any("broken" in n and "describe broken" in n for n in table.notes)
    # the statistics the search recorded in the manifest are what the report shows
    root = write_experiment(tmp_path / "exp", runs=rec_runs({("gmf", "normal"): rec_metrics(0.1, 0.2, 0.1, 0.2)}),
                            manifest={"seeds": [0, 1, 2], "data": {"ml-100k": {"stats": stats["ml-100k"]}}})
    (first,) = [t for t in T.all_tables(load_experiment(root)) if t.name == "table1_datasets"]
    assert "| MovieLens-100K | 943 | 1,682 | 100,000 | 0.93695 |" in first.to_markdown()


def test_real_dataset_table(shared_data) -> None:
    from deca_tune.data import load_split

    table = T.dataset_table(["ml-100k"], {"ml-100k": load_split(
        "rec", {"dataset": "ml-100k", "data_root": str(shared_data)}).stats()})
    assert not table.notes
    users = table.data[table.data["column"] == "# Users"]["value"].iloc[0]
    train = table.data[table.data["column"] == "# Train"]["value"].iloc[0]
    assert users == 943 and train == 79619


def test_bad_experiment_folder(tmp_path) -> None:
    with pytest.raises(ExperimentError, match="does not exist"):
        load_experiment(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExperimentError, match="not an experiment folder"):
        load_experiment(tmp_path / "empty")
    root = write_experiment(tmp_path / "bad", runs=[{"dataset": "x", "seed": 0}])
    with pytest.raises(ExperimentError, match="seed_runs.csv: missing column"):
        load_experiment(root)
    (root / "manifest.json").write_text("{oops")
    with pytest.raises(ExperimentError, match="manifest.json: invalid JSON at line 1"):
        load_experiment(root)
