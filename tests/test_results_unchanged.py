"""Same seeds, same numbers: the speed work of issue 13 must not change what a run computes.

``REFERENCE`` below holds, per (backbone, method), the metrics of every epoch of a short run on a
small hand-made split, as the code of commit 59cf234 (the last commit before the issue-13 speed
changes; 85f88fc gives the same numbers) computed them, one torch thread, CPU. They were produced
by running this file as a script against a pristine export of that commit::

    git archive 59cf234 | tar -x -C /tmp/ref_head
    cd /tmp/ref_head && PYTHONPATH=/tmp/ref_head /work/main/.venv/bin/python \
        /work/main/tests/test_results_unchanged.py > reference.txt

The test reruns the same runs with the current code and requires every value to agree to 1e-6
(absolute; relative 1e-6 is also accepted, for the DeCA losses of order 100). CDAE is left out
on purpose: issue 13 changes it to the authors' form, a different model. ``deca_p`` pre-trains
its prior without the f' cache.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

#: (backbone, method) runs, 3 epochs each
RUNS = [("mf", "normal"), ("gmf", "normal"), ("neumf", "normal"), ("lightgcn", "normal"),
        ("gmf", "deca"), ("neumf", "deca"), ("lightgcn", "deca"), ("gmf", "deca_p"),
        ("gmf", "tce"), ("gmf", "wbpr"), ("gmf", "ensemble"), ("mf", "deca-dp")]
EPOCHS = 3
#: the metrics compared (every epoch)
KEYS = ("loss", "valid/ndcg@20", "valid/recall@5", "valid_clean/ndcg@5", "valid_clean/recall@20",
        "test/ndcg@20", "test/recall@3", "test_clean/ndcg@20", "test_clean/recall@20",
        "deca/kl", "deca/h_mean", "deca/h_prime_mean", "loss/likelihood", "loss/bce_twin")


def small_split():
    """80 users x 120 items, 6-20 items each; held-out items are disjoint from training."""
    from deca_tune.data.interactions import RecSplit

    rng = np.random.default_rng(13)
    n_users, n_items = 80, 120
    pop = rng.random(n_items) ** 2 + 0.05
    train, valid, test = [], [], []
    for u in range(n_users):
        k = int(rng.integers(6, 21))
        items = rng.choice(n_items, size=k, replace=False, p=pop / pop.sum())
        train += [(u, i) for i in items[:-2]]
        valid.append((u, items[-2]))
        test.append((u, items[-1]))
    train, valid, test = (np.array(a, dtype=np.int64) for a in (train, valid, test))
    return RecSplit("small", n_users, n_items, train, valid, valid[::2], test, test[1::2],
                    ks=(3, 5))


def run(backbone: str, method: str, split) -> list[dict[str, float]]:
    from deca_tune.training.rec_trainer import RecTrainer

    spec = {"backbone": backbone, "method": method, "max_epochs": EPOCHS, "batch_size": 128,
            "seed": 5, "lr": 0.01, "l2": 0.1, "eval_batch_users": 32, "pretrain_cache": "off",
            "device": "cpu"}
    if method.startswith("deca"):
        spec.update({"C0": 100.0, "C1": 1000.0, "alpha": 0.5})
    if method == "tce":
        spec.update({"num_gradual": 10})
    trainer = RecTrainer(spec, split=split)
    out = []
    for _ in range(EPOCHS):
        m = trainer.train_epoch()
        out.append({k: float(m[k]) for k in KEYS if k in m})
    return out


# ---- produced by the script mode of this file at commit 85f88fc (see the module docstring) ----
REFERENCE: dict[tuple[str, str], list[dict[str, float]]] = {
    ('mf', 'normal'): [
        {'loss': 1.387373611330986, 'valid/ndcg@20': 0.060357506602997324, 'valid/recall@5': 0.0125, 'valid_clean/ndcg@5': 0.00967132018086354, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.06557615423260284, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.062120533056441773, 'test_clean/recall@20': 0.2},
        {'loss': 1.3864526152610779, 'valid/ndcg@20': 0.08621917015497596, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.0375, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.10491870498037618, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.10573747553483648, 'test_clean/recall@20': 0.325},
        {'loss': 1.3824107348918915, 'valid/ndcg@20': 0.09555440735688346, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.04826691395183483, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.11882588355908734, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.10828777774659544, 'test_clean/recall@20': 0.3},
    ],
    ('gmf', 'normal'): [
        {'loss': 1.3870692402124405, 'valid/ndcg@20': 0.08616284104346865, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.06404015779112127, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.09403198251657408, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.03109727089401338, 'test_clean/recall@20': 0.125},
        {'loss': 1.3866332322359085, 'valid/ndcg@20': 0.10541711816093899, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.06904648767857288, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.05211680574224338, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.04820252960236402, 'test_clean/recall@20': 0.125},
        {'loss': 1.386437401175499, 'valid/ndcg@20': 0.1099350900019768, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.01934264036172708, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.09486827189395797, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.0934083996999164, 'test_clean/recall@20': 0.275},
    ],
    ('neumf', 'normal'): [
        {'loss': 1.467310607433319, 'valid/ndcg@20': 0.17107232108996473, 'valid/recall@5': 0.125, 'valid_clean/ndcg@5': 0.12088279815284834, 'valid_clean/recall@20': 0.575, 'test/ndcg@20': 0.15737380174127352, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.13231897172408372, 'test_clean/recall@20': 0.35},
        {'loss': 1.285881981253624, 'valid/ndcg@20': 0.17300821182020237, 'valid/recall@5': 0.15, 'valid_clean/ndcg@5': 0.13338279815284834, 'valid_clean/recall@20': 0.5, 'test/ndcg@20': 0.130445429173017, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.10244696165248106, 'test_clean/recall@20': 0.3},
        {'loss': 1.3169761300086975, 'valid/ndcg@20': 0.1669291620011932, 'valid/recall@5': 0.1375, 'valid_clean/ndcg@5': 0.12306044822116351, 'valid_clean/recall@20': 0.525, 'test/ndcg@20': 0.14761754809315636, 'test/recall@3': 0.075, 'test_clean/ndcg@20': 0.13827759309706866, 'test_clean/recall@20': 0.35},
    ],
    ('lightgcn', 'normal'): [
        {'loss': 1.4313267916440964, 'valid/ndcg@20': 0.14213013606498498, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.09826691395183482, 'valid_clean/recall@20': 0.425, 'test/ndcg@20': 0.165620683983951, 'test/recall@3': 0.0875, 'test_clean/ndcg@20': 0.1519735325650809, 'test_clean/recall@20': 0.325},
        {'loss': 1.396281436085701, 'valid/ndcg@20': 0.18362983465437177, 'valid/recall@5': 0.125, 'valid_clean/ndcg@5': 0.13353120948984412, 'valid_clean/recall@20': 0.625, 'test/ndcg@20': 0.16243978781109625, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.14259802796630683, 'test_clean/recall@20': 0.5},
        {'loss': 1.3878768533468246, 'valid/ndcg@20': 0.1881471198226188, 'valid/recall@5': 0.175, 'valid_clean/ndcg@5': 0.14697839192381962, 'valid_clean/recall@20': 0.625, 'test/ndcg@20': 0.14118073183303115, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.11276675290603785, 'test_clean/recall@20': 0.375},
    ],
    ('gmf', 'deca'): [
        {'loss': 273.3083610534668, 'valid/ndcg@20': 0.05662008379620563, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.0375, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.048023728371003736, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.06238061586936472, 'test_clean/recall@20': 0.175, 'deca/kl': 0.00010098164714023028, 'deca/h_mean': 0.499999962747097, 'deca/h_prime_mean': 0.500054594129324, 'loss/likelihood': -136.65283489227295},
        {'loss': 267.2940583229065, 'valid/ndcg@20': 0.08211160484842803, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.0625, 'valid_clean/recall@20': 0.225, 'test/ndcg@20': 0.07064657519056564, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.0920064233727178, 'test_clean/recall@20': 0.225, 'deca/kl': 0.00015770363506817375, 'deca/h_mean': 0.501084566116333, 'deca/h_prime_mean': 0.5007635205984116, 'loss/likelihood': -133.64361929893494},
        {'loss': 261.31557512283325, 'valid/ndcg@20': 0.11374495244772043, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.0673134016304077, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06376154470748432, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.07958496771212635, 'test_clean/recall@20': 0.225, 'deca/kl': 8.90855108082178e-05, 'deca/h_mean': 0.5036934986710548, 'deca/h_prime_mean': 0.5023694410920143, 'loss/likelihood': -130.65197229385376},
    ],
    ('neumf', 'deca'): [
        {'loss': 229.73350477218628, 'valid/ndcg@20': 0.1061214024979255, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.053273243839286444, 'valid_clean/recall@20': 0.4, 'test/ndcg@20': 0.13396997858293896, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.12998476245832738, 'test_clean/recall@20': 0.375, 'deca/kl': 0.11881348760735477, 'deca/h_mean': 0.49999988451600075, 'deca/h_prime_mean': 0.5000524595379829, 'loss/likelihood': -114.64283180236816},
        {'loss': 59.317367374897, 'valid/ndcg@20': 0.10428970392896852, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.04761588420101352, 'valid_clean/recall@20': 0.375, 'test/ndcg@20': 0.11609111442825774, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.08754148278625473, 'test_clean/recall@20': 0.275, 'deca/kl': 2.620203211903572, 'deca/h_mean': 0.501032717525959, 'deca/h_prime_mean': 0.5008416101336479, 'loss/likelihood': -26.89479725062847},
        {'loss': 56.951729238033295, 'valid/ndcg@20': 0.10265822916584186, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.04697839192381963, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.10668116267271129, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.07654285040679218, 'test_clean/recall@20': 0.25, 'deca/kl': 2.9485411942005157, 'deca/h_mean': 0.5035632774233818, 'deca/h_prime_mean': 0.5017203539609909, 'loss/likelihood': -25.347062155604362},
    ],
    ('lightgcn', 'deca'): [
        {'loss': 275.7427282333374, 'valid/ndcg@20': 0.06468061740962117, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.05154015779112127, 'valid_clean/recall@20': 0.1, 'test/ndcg@20': 0.06152889658216239, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.08645443870189293, 'test_clean/recall@20': 0.175, 'deca/kl': 1.9888429051206913e-05, 'deca/h_mean': 0.5000039935112, 'deca/h_prime_mean': 0.500053383409977, 'loss/likelihood': -137.83000373840332},
        {'loss': 275.3298292160034, 'valid/ndcg@20': 0.07192131217889751, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.07153382790366966, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.06462386446965838, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.0859812688367261, 'test_clean/recall@20': 0.2, 'deca/kl': 1.7547333186485048e-05, 'deca/h_mean': 0.5010719299316406, 'deca/h_prime_mean': 0.5007608458399773, 'loss/likelihood': -137.6190221309662},
        {'loss': 275.2347445487976, 'valid/ndcg@20': 0.07071337608262265, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.05, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.06951615377991956, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.08425732611645341, 'test_clean/recall@20': 0.175, 'deca/kl': 2.1576842982540256e-05, 'deca/h_mean': 0.5036735534667969, 'deca/h_prime_mean': 0.502361461520195, 'loss/likelihood': -137.56624627113342},
    ],
    ('gmf', 'deca_p'): [
        {'loss': 273.30845642089844, 'valid/ndcg@20': 0.05662008379620563, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.0375, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.048023728371003736, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.06238061586936472, 'test_clean/recall@20': 0.175, 'deca/kl': 0.00014012197161150652, 'deca/h_mean': 0.499999962747097, 'deca/h_prime_mean': 0.500054594129324, 'loss/likelihood': -136.6528377532959},
        {'loss': 267.2955894470215, 'valid/ndcg@20': 0.08211160484842803, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.0625, 'valid_clean/recall@20': 0.225, 'test/ndcg@20': 0.07064657519056564, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.0920064233727178, 'test_clean/recall@20': 0.225, 'deca/kl': 0.0008637446953798644, 'deca/h_mean': 0.501084566116333, 'deca/h_prime_mean': 0.5007635205984116, 'loss/likelihood': -133.64367055892944},
        {'loss': 261.32096242904663, 'valid/ndcg@20': 0.11356451643369858, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.0673134016304077, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06376154470748432, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.07958496771212635, 'test_clean/recall@20': 0.225, 'deca/kl': 0.0023001470253802836, 'deca/h_mean': 0.5036934986710548, 'deca/h_prime_mean': 0.5023694410920143, 'loss/likelihood': -130.65245532989502},
    ],
    ('gmf', 'tce'): [
        {'loss': 0.6920842006802559, 'valid/ndcg@20': 0.07448771423564102, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.039040157791121265, 'valid_clean/recall@20': 0.225, 'test/ndcg@20': 0.09296947474607119, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.08664143399356157, 'test_clean/recall@20': 0.2},
        {'loss': 0.6823758333921432, 'valid/ndcg@20': 0.06219918587490976, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.02827324383928644, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.11665967341961565, 'test/recall@3': 0.075, 'test_clean/ndcg@20': 0.12081817243152689, 'test_clean/recall@20': 0.25},
        {'loss': 0.6739839687943459, 'valid/ndcg@20': 0.04410014832904045, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.0, 'valid_clean/recall@20': 0.1, 'test/ndcg@20': 0.07883499111636735, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.07413894088103284, 'test_clean/recall@20': 0.225},
    ],
    ('gmf', 'wbpr'): [
        {'loss': 0.6834325641393661, 'valid/ndcg@20': 0.08097427618716338, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.05903382790366966, 'valid_clean/recall@20': 0.2, 'test/ndcg@20': 0.09250412442099276, 'test/recall@3': 0.075, 'test_clean/ndcg@20': 0.1196503207850105, 'test_clean/recall@20': 0.275},
        {'loss': 0.6778149157762527, 'valid/ndcg@20': 0.0790594617393696, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.025, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.07394742757054888, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.0623440517563044, 'test_clean/recall@20': 0.15},
        {'loss': 0.7436889857053757, 'valid/ndcg@20': 0.07435242233565578, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.039040157791121265, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.07995541255441727, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.07783850146240551, 'test_clean/recall@20': 0.2},
    ],
    ('gmf', 'ensemble'): [
        {'loss': 2.774095892906189, 'valid/ndcg@20': 0.08728199110080818, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.06621780785943641, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06869863773426835, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.043285721501568925, 'test_clean/recall@20': 0.15, 'loss/bce_twin': 1.386302873492241},
        {'loss': 2.7732391357421875, 'valid/ndcg@20': 0.07761445332314224, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.044046487678572874, 'valid_clean/recall@20': 0.3, 'test/ndcg@20': 0.08623504183518318, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.06713627423843807, 'test_clean/recall@20': 0.225, 'loss/bce_twin': 1.3862928748130798},
        {'loss': 2.7728680074214935, 'valid/ndcg@20': 0.12297766824849488, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.057938234132698364, 'valid_clean/recall@20': 0.375, 'test/ndcg@20': 0.06685071194716828, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.08856818924359981, 'test_clean/recall@20': 0.275, 'loss/bce_twin': 1.386295273900032},
    ],
    ('mf', 'deca-dp'): [
        {'loss': 500.50672912597656, 'valid/ndcg@20': 0.07007749385376212, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.02544456402014998, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.061799660423020396, 'test/recall@3': 0.0, 'test_clean/ndcg@20': 0.03484982136772325, 'test_clean/recall@20': 0.125, 'deca/kl': 1.5543606570744828e-06, 'deca/h_mean': 0.5001460276544094, 'deca/h_prime_mean': 0.5000057779252529, 'loss/likelihood': -250.2524185180664},
        {'loss': 495.6363525390625, 'valid/ndcg@20': 0.06371041528886241, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.010766913951834826, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.056946152831222105, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.05303630865963983, 'test_clean/recall@20': 0.2, 'deca/kl': 5.91990999510017e-05, 'deca/h_mean': 0.5033185333013535, 'deca/h_prime_mean': 0.4999820813536644, 'loss/likelihood': -247.81423568725586},
        {'loss': 472.5905532836914, 'valid/ndcg@20': 0.056419047057657136, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.0, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.053822130299892246, 'test/recall@3': 0.0, 'test_clean/ndcg@20': 0.047036319531982076, 'test_clean/recall@20': 0.175, 'deca/kl': 0.0006534122185257729, 'deca/h_mean': 0.5117632448673248, 'deca/h_prime_mean': 0.4999898485839367, 'loss/likelihood': -236.28368949890137},
    ],
}


@pytest.mark.parametrize("backbone,method", RUNS)
def test_same_seed_same_metrics_as_before(backbone, method, one_torch_thread):
    expected = REFERENCE[(backbone, method)]
    got = run(backbone, method, small_split())
    assert len(got) == len(expected)
    for epoch, (g, e) in enumerate(zip(got, expected), 1):
        assert set(g) == set(e), (epoch, sorted(set(g) ^ set(e)))
        for key in e:
            assert g[key] == pytest.approx(e[key], abs=1e-6, rel=1e-6), (backbone, method, epoch, key)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    split = small_split()
    print("REFERENCE: dict[tuple[str, str], list[dict[str, float]]] = {")
    for backbone, method in RUNS:
        rows = run(backbone, method, split)
        print(f"    ({backbone!r}, {method!r}): [")
        for row in rows:
            print("        {" + ", ".join(f"{k!r}: {v!r}" for k, v in row.items()) + "},")
        print("    ],")
    print("}")
    sys.exit(0)
