"""Issue 20: a checkpoint is plain data, read with ``torch.load(weights_only=True)``; a crafted
pickle is refused without running it, and resuming through the file stays bit-exact."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deca_tune.training.checkpoints import (UnsafeCheckpointError, check_plain, load_state, load_trainer,
                                            read_checkpoint, save_checkpoint)
from deca_tune.training.image_trainer import ImageTrainer
from deca_tune.training.rec_trainer import RecTrainer
from tests.helpers_rec import tiny_split
from tests.test_image_trainer import _spec as image_spec


class RunsCode:
    """Unpickling calls ``os.mkdir(marker)``: observable proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def crafted_checkpoint(folder: Path) -> tuple[Path, Path]:
    """A ``trainer.pt`` shaped like ours whose pickle would create ``marker`` when opened."""
    marker = folder / "code-ran"
    ckpt = folder / "trial" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    torch.save({"spec": {"task": "rec"}, "method": {"w": torch.zeros(2)}, "payload": RunsCode(marker)},
               ckpt / "trainer.pt")
    return ckpt / "trainer.pt", marker


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    file, marker = crafted_checkpoint(tmp_path)
    for read in (lambda: read_checkpoint(file), lambda: load_state(file.parent.parent),
                 lambda: load_trainer(file)):
        with pytest.raises(UnsafeCheckpointError, match=r"trainer\.pt: refused: .*could run code"):
            read()
    assert not marker.exists(), "loading ran the pickle's code"
    # the file is genuinely dangerous: an unsafe load runs it (what the reader was exposed to)
    torch.load(file, weights_only=False)
    assert marker.is_dir()


def test_recommend_and_export_refuse_it_too(tmp_path, capsys):
    from deca_tune.recommend import main as recommend_main

    file, marker = crafted_checkpoint(tmp_path)
    try:
        code = recommend_main([str(file), "--users", "0"])
    except SystemExit as exc:
        code = exc.code
    assert code != 0 and "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_save_refuses_objects_beyond_plain_data():
    check_plain({"a": [1, 2.0, "x", None, torch.zeros(1)], "rng": np.random.default_rng(0).bit_generator.state})
    with pytest.raises(TypeError, match=r"state\['a'\]\[1\] is a numpy.ndarray"):
        check_plain({"a": [1, np.zeros(2)]})


def _file_roundtrip(trainer, folder: Path) -> dict:
    save_checkpoint(trainer, folder)
    state, _ = load_state(folder)
    return state


@pytest.mark.parametrize("method", ["deca_p", "ensemble", "tce"])
def test_rec_resume_through_the_file_is_bit_exact(method, tmp_path):
    split = tiny_split()
    spec = {"backbone": "gmf", "method": method, "max_epochs": 3, "batch_size": 32, "seed": 3, "lr": 0.01,
            "pretrain_cache": "off", "early_stop": "authors", "early_stop_every": 3}
    full = RecTrainer(dict(spec), split=split)
    ref = [full.train_epoch() for _ in range(3)]
    part = RecTrainer(dict(spec), split=split)
    part.train_epoch()
    state = _file_roundtrip(part, tmp_path)
    resumed = RecTrainer(dict(spec), split=split)
    resumed.load_state_dict(state)
    rest = [resumed.train_epoch() for _ in range(2)]
    for x, y in zip(ref[1:], rest):
        assert x["loss"] == y["loss"] and x["valid/ndcg@20"] == y["valid/ndcg@20"]


@pytest.mark.parametrize("method", ["itlm", "deca_p"])
def test_image_resume_through_the_file_is_bit_exact(method, tmp_path):
    spec = image_spec(method, pretrain_cache="off")
    a = ImageTrainer(spec)
    a.train_epoch()
    state = _file_roundtrip(a, tmp_path)
    ma = a.train_epoch()
    b = ImageTrainer(spec)
    b.load_state_dict(state)
    mb = b.train_epoch()
    assert {k: v for k, v in ma.items() if "seconds" not in k} == {k: v for k, v in mb.items()
                                                                   if "seconds" not in k}
