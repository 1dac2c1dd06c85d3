"""Every rec baseline with its mechanism switched off IS ``normal`` (issue 17): same seed, same
per-epoch losses and metrics, bit for bit (the same run twice on one machine; nothing here is a
stored reference). T-CE at drop_rate 0 (whatever its schedule), R-CE at beta 0, the ensemble with
one member; on the authors' CDAE too (rows batching, summed loss). WBPR's base
loss is BPR, not BCE, so no setting of it is ``normal``: with uniform negatives and no weights
it is plain BPR-MF on ``normal``'s stream of batches, checked against a BPR built on ``normal``."""
from __future__ import annotations

import pytest

from deca_tune.losses.bpr import bpr_loss
from deca_tune.methods.rec.normal import Normal, pair_logits
from deca_tune.tasks import get_task
from deca_tune.training.rec_trainer import RecTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"n_users": 40, "n_items": 30, "dim": 4, "like_rate": 0.2, "seed": 3}
EPOCHS = 3
#: the method's own loss parts (named after the method) are not compared; timings neither
SKIP = ("loss/", "tce/")


def _kept(m: dict) -> dict[str, float]:
    return {k: float(v) for k, v in m.items() if not k.startswith(SKIP) and not k.endswith("seconds")}


def _spec(method: str, backbone: str = "gmf", **kw) -> dict:
    return get_task("rec").only_known(
        {"dataset": "synthetic", "dataset_options": TINY, "backbone": backbone, "method": method,
         "max_epochs": EPOCHS, "batch_size": 32, "device": "cpu", "pretrain_cache": "off",
         "lr": 0.01, "l2": 0.1, "seed": 7, **kw})


def _curve(spec: dict, split=None) -> list[dict[str, float]]:
    trainer = RecTrainer(spec, split=split)
    out = []
    for _ in range(EPOCHS):
        m = trainer.train_epoch()
        out.append(_kept(m))
    return out


@pytest.mark.parametrize("backbone", ["gmf", "neumf", "cdae"])
@pytest.mark.parametrize("method, off", [
    ("tce", {"drop_rate": 0.0}),
    ("tce", {"drop_rate": 0.0, "num_gradual": 1, "exponent": 2.0}),
    ("rce", {"beta": 0.0}),
    ("ensemble", {"ensemble_members": 1}),
])
def test_method_switched_off_is_normal(method, off, backbone):
    want = _curve(_spec("normal", backbone))
    got = _curve(_spec(method, backbone, **off))
    assert got == want
    assert len(want) == EPOCHS and want[0]["loss"] != want[-1]["loss"]


def test_the_switch_matters():
    """The nesting test can fail: the mechanisms switched on change the run."""
    base = _curve(_spec("normal"))
    for method, on in (("tce", {"drop_rate": 0.3, "num_gradual": 2}), ("rce", {"beta": 0.5}),
                       ("ensemble", {"ensemble_members": 2}),
                       ("tce", {"drop_rate": 0.0, "loss_scale": "denoisingrec"})):
        assert _curve(_spec(method, **on)) != base, (method, on)


class _BPR(Normal):
    """Plain BPR-MF on ``normal``'s batches (what WBPR must be with its mechanisms off)."""

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        loss = bpr_loss(*pair_logits(self.f, users, pos, neg))
        return loss, {"bpr": loss.detach()}


def test_wbpr_off_is_plain_bpr():
    spec = _spec("wbpr", wbpr_form="unweighted", sampler="uniform")
    got = _curve(spec)
    trainer = RecTrainer(spec)
    trainer.method.__class__ = _BPR  # same models, same seeds: only the loss code is swapped
    want = []
    for _ in range(EPOCHS):
        m = trainer.train_epoch()
        want.append(_kept(m))
    assert got == want
    # and the published sampling (pairs with replacement, popularity negatives) is another run
    assert _curve(_spec("wbpr")) != got
