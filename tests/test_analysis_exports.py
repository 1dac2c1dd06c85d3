"""Score exports from seed-run checkpoints (no Ray: the folders are written as the trainable does)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deca_tune.exports import export_scores
from analysis.experiment import load_experiment
from analysis.noise_detection import run_table
from deca_tune.metrics.noise_detection import noise_detection_auc
from deca_tune.training import build_trainer
from helpers_analysis import write_experiment


def _save_trial(root, spec, epochs=1):
    trainer = build_trainer(spec)
    for _ in range(epochs):
        trainer.train_epoch()
    unit = f"{spec['dataset']}__{spec['backbone']}__{spec['method']}"
    folder = root / "seeds" / unit / f"seed{spec['seed']}_00000" / "checkpoint_000000"
    folder.mkdir(parents=True)
    torch.save(trainer.state_dict(), folder / "trainer.pt")
    return trainer


def test_rec_and_image_exports(tmp_path) -> None:
    root = tmp_path / "exp"
    rec = {"task": "rec", "dataset": "synthetic", "backbone": "mf", "method": "normal", "max_epochs": 1,
           "device": "cpu", "dataset_options": {"n_users": 60, "n_items": 50}}
    img = {"task": "image", "dataset": "synthetic-images", "backbone": "mlp", "method": "normal",
           "max_epochs": 1, "device": "cpu", "noise_rate": 0.4, "valid_size": 50, "meta_per_class": 2,
           "dataset_options": {"n_train": 300, "n_test": 50}}
    trainers = {(s["task"], seed): _save_trial(root, {**s, "seed": seed}) for s in (rec, img) for seed in (0, 1)}
    runs = [{"dataset": s["dataset"], "backbone": s["backbone"], "method": "normal", "seed": seed,
             "task": s["task"], "status": "completed", "config/noise_rate": s.get("noise_rate")}
            for s in (rec, img) for seed in (0, 1)]
    write_experiment(root, runs=runs, manifest={"seeds": [0, 1]})
    rows = export_scores(root, log=lambda *_: None)
    assert len(rows) == 4 and rows["noise_auc"].between(0, 1).all()
    # rec: every training positive, probability = sigmoid of f (normal has no Eq. 25)
    frame = pd.read_csv(root / "exports" / "synthetic__mf__normal__seed0_interpretability.csv")
    split = trainers[("rec", 0)].split
    assert len(frame) == len(split.train)
    with torch.no_grad():
        expected = torch.sigmoid(trainers[("rec", 0)].method.f(
            torch.as_tensor(split.train[:, 0]), torch.as_tensor(split.train[:, 1]))).numpy()
    assert np.allclose(frame["probability"], expected, atol=1e-6)  # best epoch = the only epoch
    auc = noise_detection_auc(frame["probability"], ~frame["noisy"].astype(bool))
    assert rows.loc[(rows["task"] == "rec") & (rows["seed"] == 0), "noise_auc"].iloc[0] == pytest.approx(auc)
    # image: clean score of every training image, truth = the injected mask
    frame = pd.read_csv(root / "exports" / "synthetic-images__mlp__normal__seed1_clean_scores.csv")
    mask = trainers[("image", 1)].split.noisy_mask.numpy()
    assert np.array_equal(frame["noisy"].to_numpy(), mask)
    assert frame["noisy"].mean() == pytest.approx(0.4, abs=0.1)  # 230 images: sampling error
    # the report merges the per-run scores into the seed runs: mean ± std over the two seeds
    tables = {t.name: t for t in run_table(load_experiment(root))}
    assert set(tables) == {"noise_detection_synthetic", "noise_detection_synthetic-images"}
    data = tables["noise_detection_synthetic-images"].data
    cell = data[data["column"] == "ROC-AUC"].iloc[0]
    img_rows = rows[rows["task"] == "image"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(img_rows["noise_auc"].mean())
    assert cell["row"] == "Normal (noise 40%)"
