"""The published numbers (analysis/published/deca_paper.csv): complete, transcribed exactly from
the paper's Tables 2-6, named as the project names things; and ours beside them in the report."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import published as P
from analysis.experiment import load_experiment
from analysis.report import build_report
from analysis.tables import performance_tables
from helpers_analysis import rec_metrics, rec_runs, write_experiment
from helpers_paper import paper_cells, paper_text


@pytest.fixture(scope="module")
def pub() -> pd.DataFrame:
    return P.load_published()


def _one(pub: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=pub.index)
    for key, value in where.items():
        mask &= pub[key] == value
    hit = pub[mask]
    assert len(hit) == 1, where
    return hit.iloc[0]


def test_counts_are_complete(pub) -> None:
    paper = pub[pub["source"] == "paper"]
    # Tables 2/3: 2 data sets x 4 backbones x 6 methods x 4 metrics; Table 4: 2 x 4 methods x 5
    # noise rates; Table 5: 4 backbones x 6 rows x 4 metrics; Table 6: 7 rows x 4 metrics
    assert paper.groupby("table").size().to_dict() == {2: 192, 3: 192, 4: 40, 5: 96, 6: 28}
    for table, n_sets in ((2, 2), (3, 2)):
        sub = paper[paper["table"] == table]
        assert sub["paper_dataset"].nunique() == n_sets
        assert (sub.groupby(["paper_dataset", "backbone", "method"]).size() == 4).all()
    assert (paper.loc[paper["table"].isin((2, 3, 4)), "std"].notna()).all()  # value±std everywhere
    assert paper.loc[paper["table"].isin((5, 6)), "std"].isna().all()  # the paper gives none
    # the authors' code: the fidelity bench's 18 cells (R@20, N@20) + Table 5 (DeCA, DeCA(p) and
    # the seed-0 check of DeCA-DP / DeCA-DN), Modcloth GMF
    authors = pub[pub["source"] == "authors_code"]
    assert authors.groupby("table").size().to_dict() == {2: 36, 5: 8}
    assert set(authors["datasets"]) == {"ml-100k-paper", "modcloth-paper"}


def test_cells_checked_by_hand(pub) -> None:
    """A few cells read off the paper (numbers are facts)."""
    c = _one(pub, source="paper", table=2, paper_dataset="MovieLens", paper_block="GMF",
             paper_row="DeCA", paper_column="R@20")
    assert (c["value"], c["std"], c["bold"], c["star"]) == (0.109, 0.007, True, True)
    assert (c["backbone"], c["method"], c["metric"]) == ("gmf", "deca", "test_clean/recall@20")
    assert c["datasets"].split() == ["ml-100k-paper", "ml-100k"]
    c = _one(pub, source="paper", table=2, paper_dataset="Modcloth", paper_block="LightGCN",
             paper_row="DeCA(p)", paper_column="N@20")
    assert (c["value"], c["std"], c["bold"], c["star"]) == (0.096, 0.0, True, False)
    c = _one(pub, source="paper", table=2, paper_dataset="MovieLens", paper_block="NeuMF",
             paper_row="T-CE", paper_column="N@3")
    assert (c["value"], c["std"], c["metric"]) == (0.047, 0.003, "test_clean/ndcg@3")
    c = _one(pub, source="paper", table=3, paper_dataset="Electronics", paper_block="LightGCN",
             paper_row="DeCA(p)", paper_column="R@50")
    assert (c["value"], c["std"], c["star"], c["datasets"]) == (0.104, 0.001, True, "electronics")
    c = _one(pub, source="paper", table=4, paper_dataset="FMNIST", paper_row="ITLM", paper_column="30%")
    assert (c["value"], c["std"], c["noise_rate"]) == (pytest.approx(0.8756), pytest.approx(0.0004), 0.3)
    assert (c["backbone"], c["method"], c["metric"]) == ("resnet32", "itlm", "test_clean/accuracy")
    c = _one(pub, source="paper", table=5, paper_block="NeuMF", paper_row="DeCA(p)-DN", paper_column="N@5")
    assert (c["value"], c["method"]) == (0.062, "deca_p-dn") and math.isnan(c["std"])
    c = _one(pub, source="paper", table=6, paper_row="DeCA(p) (h, h' = NeuMF)", paper_column="R@5")
    assert (c["value"], c["method"], c["h_backbone"], c["backbone"]) == (0.0751, "deca_p", "neumf", "gmf")
    c = _one(pub, source="authors_code", table=2, paper_dataset="MovieLens", paper_block="CDAE",
             paper_row="DeCA", paper_column="R@20")
    assert (c["value"], c["std"], c["n"]) == (0.1085, 0.0010, 3)


def test_every_cell_matches_the_paper_text(pub) -> None:
    text = paper_text()
    if text is None:
        pytest.skip("the paper's text is not on this machine (set DECA_PAPER)")
    cells = paper_cells(text)
    raw = pd.read_csv(P.PUBLISHED_FILE, dtype=str, keep_default_na=False)
    raw = raw[raw["source"] == "paper"]
    assert len(cells) == len(raw) == 548
    for cell, row in zip(cells, raw.to_dict("records")):
        where = (cell["table"], cell["dataset"], cell["row"], cell["column"])
        assert (str(cell["table"]), cell["dataset"], cell["block"], cell["row"], cell["column"]) == \
            (row["table"], row["paper_dataset"], row["paper_block"], row["paper_row"],
             row["paper_column"]), where
        scale = 100 if cell["percent"] else 1  # accuracies: 89.01% -> 0.8901, exactly
        assert float(cell["value"]) == pytest.approx(float(row["value"]) * scale, abs=1e-12), where
        assert len(row["value"].partition(".")[2]) == len(cell["value"].partition(".")[2]) + \
            (2 if cell["percent"] else 0), where  # every printed digit kept
        if cell["std"] is None:
            assert row["std"] == "", where
        else:
            assert float(cell["std"]) == pytest.approx(float(row["std"]) * scale, abs=1e-12), where
        assert (str(cell["bold"]), str(cell["star"])) == (row["bold"], row["star"]), where


def test_names_are_the_projects(pub) -> None:
    from deca_tune.data.registry import IMAGE_DATASETS, REC_DATASETS
    from deca_tune.methods.registry import IMAGE_METHODS, REC_METHODS
    from deca_tune.models.registry import IMAGE_BACKBONES, REC_BACKBONES

    for rec in pub.to_dict("records"):
        image = rec["table"] == 4
        datasets, methods, backbones = ((IMAGE_DATASETS, IMAGE_METHODS, IMAGE_BACKBONES) if image
                                        else (REC_DATASETS, REC_METHODS, REC_BACKBONES))
        assert all(d in datasets for d in rec["datasets"].split()), rec
        assert rec["method"] in methods and rec["backbone"] in backbones, rec
        assert rec["h_backbone"] == "" or rec["h_backbone"] in REC_BACKBONES
        assert rec["metric"] == P.paper_metric(rec["paper_column"])


def test_bad_file_names_file_and_line(tmp_path) -> None:
    good = P.PUBLISHED_FILE.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(good[:3] + [good[3].replace("paper,", "papr,", 1)]) + "\n")
    with pytest.raises(P.PublishedError, match=r"bad\.csv, line 4: source 'papr'"):
        P.load_published(bad)
    bad.write_text("\n".join(good[:3] + [good[2]]) + "\n")
    with pytest.raises(P.PublishedError, match=r"line 4: the same cell twice"):
        P.load_published(bad)
    with pytest.raises(P.PublishedError, match="not found"):
        P.load_published(tmp_path / "none.csv")


def _experiment(tmp_path):
    # ml-100k-paper GMF, paper (Table 2): normal R@20 0.095 ± 0.001, deca R@20 0.109 ± 0.007,
    # deca_p N@20 0.066 ± 0.001; the authors' code: normal R@20 0.0925 ± 0.0016 (5 seeds)
    means = {("gmf", "normal"): {"test_clean/recall@3": 0.021, "test_clean/recall@20": 0.0935,
                                 "test_clean/ndcg@3": 0.035, "test_clean/ndcg@20": 0.059},
             ("gmf", "deca"): {"test_clean/recall@3": 0.022, "test_clean/recall@20": 0.100,
                               "test_clean/ndcg@3": 0.038, "test_clean/ndcg@20": 0.064},
             ("gmf", "deca_p"): {"test_clean/recall@3": 0.027, "test_clean/recall@20": 0.099,
                                 "test_clean/ndcg@3": 0.054, "test_clean/ndcg@20": 0.060}}
    runs = rec_runs(means, dataset="ml-100k-paper", d=0.001, drop={("gmf", "deca_p", 1), ("gmf", "deca_p", 2)})
    return load_experiment(write_experiment(tmp_path / "e", runs=runs, manifest={"seeds": [0, 1, 2]}))


def test_ours_beside_the_paper(tmp_path, pub) -> None:
    exp = _experiment(tmp_path)
    (ours,) = performance_tables(exp)
    assert ours.columns == ["R@3", "R@20", "N@3", "N@20"]  # the paper's MovieLens columns
    table = P.compare(ours, pub)
    data = table.data.set_index("row")
    # |0.0935 - 0.095| = 0.0015 <= 0.001 + 0.001 + 0.0005: reproduced
    normal = data.loc["Normal R@20"]
    assert normal["verdict"] == "reproduced" and normal["diff"] == pytest.approx(-0.0015)
    assert normal["authors"] == 0.0925 and normal["authors_n"] == 5
    assert normal["tolerance"] == pytest.approx(0.0025)
    # |0.100 - 0.109| = 0.009 > 0.007 + 0.001 + 0.0005: not reproduced
    assert data.loc["DeCA R@20", "verdict"] == "not reproduced"
    assert data.loc["DeCA R@20", "rel_diff"] == pytest.approx(-0.009 / 0.109)
    # one seed of DeCA(p): no std, not comparable (the difference is still shown)
    assert data.loc["DeCA(p) N@20", "verdict"] == "not comparable: 1 seed of ours"
    assert data.loc["DeCA(p) N@20", "diff"] == pytest.approx(0.060 - 0.001 - 0.066)
    counts = {v: int(table.data["verdict"].str.startswith(v).sum()) for v in P.VERDICTS}
    assert counts == {"reproduced": 7, "not reproduced": 1, "not comparable": 4}
    assert "7 reproduced, 1 not reproduced, 4 not comparable (of 12 cells)" in table.caption
    md = table.to_markdown()
    assert "| Normal R@20 | 0.095 ± 0.001 | 0.0925 ± 0.0016 (n=5) | 0.0935 ± 0.0010 (n=3) | " \
           "-0.0015 (-2%) | reproduced |" in md
    # the paper's numbers are not like for like on the project's own split: a note says so
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.02, 0.09, 0.03, 0.06)}, dataset="ml-100k")
    (own,) = performance_tables(load_experiment(write_experiment(tmp_path / "own", runs=runs)))
    table = P.compare(own, pub)
    assert any("authors' split (ml-100k-paper)" in n for n in table.notes)
    assert math.isnan(table.data.set_index("row").loc["Normal R@20", "authors"])  # theirs: the -paper split


def test_report_writes_the_comparison(tmp_path) -> None:
    exp = _experiment(tmp_path)
    report = build_report(exp.root, tmp_path / "r", formats=("md", "csv"), dataset_table=False)
    names = [t.name for t in report.tables]
    assert "paper_table2_ml-100k-paper" in names and "paper_comparison_counts" in names
    back = pd.read_csv(tmp_path / "r" / "tables" / "paper_table2_ml-100k-paper.csv")
    assert {"paper", "paper_std", "authors", "ours_mean", "ours_std", "diff", "verdict"} <= set(back.columns)
    counts = pd.read_csv(tmp_path / "r" / "tables" / "paper_comparison_counts.csv")
    got = counts.set_index("column")["value"].to_dict()
    assert got == {"reproduced": 7, "not reproduced": 1, "not comparable": 4, "cells": 12}
    assert "paper_table2_ml-100k-paper" in (tmp_path / "r" / "report.md").read_text()
    report = build_report(exp.root, tmp_path / "r2", formats=("csv",), dataset_table=False,
                          published=False)
    assert not any(t.name.startswith("paper_") for t in report.tables)


def test_report_command_line_published_option(tmp_path, capsys) -> None:
    from deca_tune.report import main

    exp = _experiment(tmp_path)
    assert main([str(exp.root), "--out", str(tmp_path / "r"), "--formats", "csv", "--no-dataset-table",
                 "--published", str(tmp_path / "nowhere.csv")]) == 2
    assert "nowhere.csv: published-numbers file not found" in capsys.readouterr().err
    assert main([str(exp.root), "--out", str(tmp_path / "r"), "--formats", "csv", "--no-dataset-table",
                 "--no-published"]) == 0
    assert not (tmp_path / "r" / "tables" / "paper_comparison_counts.csv").exists()


def test_image_and_h_model_tables_beside_the_paper(tmp_path, pub) -> None:
    from analysis.tables import h_model_tables, image_tables

    # Table 4, CIFAR10 ResNet-32 at 40%: Normal 84.15 ± 0.47%, DeCA(p) 86.62 ± 0.26%
    runs = []
    for method, acc in (("normal", 0.8400), ("deca_p", 0.8500)):
        for seed, off in zip((0, 1, 2), (-1, 0, 1)):
            runs.append({"dataset": "cifar10", "backbone": "resnet32", "method": method, "seed": seed,
                         "task": "image", "noise_rate": 0.4, "test_clean/accuracy": acc + off * 0.002})
    (ours,) = image_tables(load_experiment(write_experiment(tmp_path / "img", runs=runs)))
    table = P.compare(ours, pub)
    data = table.data.set_index("row")
    # |0.8400 - 0.8415| = 0.0015 <= 0.0047 + 0.002 + 0.00005
    assert data.loc["Normal 40%", "verdict"] == "reproduced" and data.loc["Normal 40%", "paper"] == 0.8415
    # |0.8500 - 0.8662| = 0.0162 > 0.0026 + 0.002 + 0.00005
    assert data.loc["DeCA(p) 40%", "verdict"] == "not reproduced"
    assert "Table 4" in table.caption
    # Table 6 (Modcloth, h and h'): DeCA with h = GMF, R@20 0.2453 (no std in the paper)
    means = {("gmf", "normal"): rec_metrics(0.0629, 0.2246, 0.0430, 0.0884)}
    runs = rec_runs(means, dataset="modcloth-paper", d=0.001)
    for h, r20 in (("mf", 0.2452), ("gmf", 0.2400)):
        runs += rec_runs({("gmf", "deca"): rec_metrics(0.07, r20, 0.05, 0.098)}, dataset="modcloth-paper",
                         d=0.001, extra={"h_backbone": h})
    exp = load_experiment(write_experiment(tmp_path / "h", runs=runs))
    (ours,) = h_model_tables(exp)
    table = P.compare(ours, pub)
    data = table.data.set_index("row")
    row = data.loc["DeCA (h, h' = GMF) R@20"]
    # |0.2400 - 0.2453| = 0.0053 > 0 + 0.001 + 0.00005: the paper gives no std here
    assert row["paper"] == 0.2453 and row["verdict"] == "not reproduced" and math.isnan(row["paper_std"])
    assert data.loc["DeCA (h, h' = MF) R@20", "paper"] == 0.2452
    assert data.loc["DeCA (h, h' = MF) R@20", "verdict"] == "reproduced"
    assert data.loc["Normal R@5", "paper"] == 0.0629
    assert "no std" in table.caption
