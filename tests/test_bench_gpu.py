"""``python -m deca_tune.bench gpu``: the prepared GPU run works unchanged on a CPU with --tiny
(real search CLI, real trainers), skips what does not fit the time budget, and refuses the full
sizes without a GPU."""
from __future__ import annotations

import json

import pytest

from deca_tune.bench import gpu


@pytest.mark.slow
def test_tiny_run_writes_every_phase(tmp_path, one_torch_thread):
    out = tmp_path / "gpu.json"
    code = gpu.main(["--tiny", "--out", str(out), "--work-dir", str(tmp_path / "work"), "--budget-s", "400"])
    result = json.loads(out.read_text())
    assert code == 0, result["errors"]
    phases = result["phases"]
    e = phases["epoch_time"]
    assert e["train_images"] == 100 and e["input"] == "3x8x8" and e["epoch_seconds"] > 0
    s = phases["search_throughput"]
    for label in ("four_at_0.25", "one_alone"):
        assert s[label]["returncode"] == 0 and s[label]["search_epochs"] >= 1, s[label]
        assert "--gpus-per-trial" in s[label]["command"]
    assert s["four_at_0.25"]["resources"]["concurrency"] == 4
    assert s["throughput_ratio_four_vs_one"] > 0
    f = phases["fmnist_40"]
    assert f["normal_seed1000"]["epochs"] == f["planned_epochs"] >= 1
    d = f["deca_p_seed0"]
    assert d["pretrain"]["cached"] is True  # the normal run was DeCA(p)'s prior: taken from the cache
    assert len(d["curve"]) == d["epochs"] and 0 <= d["last_test_acc"] <= 1
    assert result["finished"] and result["elapsed_seconds"] < 400


def test_a_budget_too_small_skips_with_reasons(tmp_path, one_torch_thread):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--tiny", "--out", str(out), "--budget-s", "20"]) == 0
    phases = json.loads(out.read_text())["phases"]
    assert set(phases) == {"epoch_time", "search_throughput", "fmnist_40"}
    assert all("skipped" in p and "budget" in p["skipped"] for p in phases.values())


def test_full_sizes_need_a_gpu(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--out", str(tmp_path / "gpu.json")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()
