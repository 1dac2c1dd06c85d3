"""The denoising benchmark runs end to end (1 epoch, 1 seed) and writes its table."""
from __future__ import annotations

import json

from deca_tune.bench import denoising


def test_denoising_bench_one_epoch(shared_data, tmp_path):
    out, res = tmp_path / "bench.md", tmp_path / "bench.json"
    code = denoising.main(["--datasets", "ml-100k-paper", "--methods", "normal", "deca", "--seeds", "0",
                           "--epochs", "1", "--data-root", str(shared_data), "--results", str(res),
                           "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "### ml-100k-paper (protocol `paper`), GMF" in text
    assert "| deca | 1 |" in text and "| normal | 1 |" in text
    runs = json.loads(res.read_text())["runs"]
    assert set(runs) == {"ml-100k-paper|normal|0", "ml-100k-paper|deca|0"}
    spec = runs["ml-100k-paper|deca|0"]["spec"]
    assert (spec["C0"], spec["C1"], spec["alpha"], spec["l2"], spec["protocol"]) == (1000.0, 1000.0, 1.0, 0.1, "paper")
    assert 0.5 < runs["ml-100k-paper|normal|0"]["noise_last"]["noise_auc"] < 1.0
