"""Same seeds, same results: the speed work of issue 13 must not change what a run computes.

``REFERENCE`` below holds, per (backbone, method), numbers of every epoch of a short run on a
small hand-made split, as the code of commit 59cf234 (the last commit before the issue-13 speed
changes) computed them, one torch thread, CPU. They were produced by running this file as a
script against a pristine export of that commit::

    git archive 59cf234 | tar -x -C /tmp/ref_head
    cd /tmp/ref_head && PYTHONPATH=/tmp/ref_head /work/main/.venv/bin/python \
        /work/main/tests/test_results_unchanged.py > reference.txt

What is compared, and why it holds on any CPU (issue 16). Another CPU (AVX2 instead of AVX-512,
an Intel instead of an AMD, or ``ATEN_CPU_CAPABILITY=default``) runs other float kernels, so the
same seed gives numbers that differ in the last bits, and 3 epochs of Adam grow that a little.
Measured over these runs between 59cf234 and this code, each under the native (AVX-512),
``avx2`` and ``default`` kernels of one AMD EPYC (6 combinations): losses agree to a relative
3e-6 (the DeCA KL; the other losses to 1e-7), the squared parameter norm to 4e-7, the score
summaries below to 1.5e-6 of the score spread, and every single score to 7e-5 of the spread
(below 1e-5 for most runs) once the constant offset of WBPR is removed (see below).

- Stable numbers are compared to a tolerance a real change breaks: the epoch's losses (and the
  DeCA terms) to ``LOSS_RTOL``, the squared norm of all parameters to ``PARAM_RTOL``, and three
  offset-free summaries of the [users x items] score matrix (its standard deviation and the
  mean lift of the held-out validation and test items over the mean score) to ``SCORE_TOL``
  times the reference's standard deviation. A different sampler draw, loss form, learning-rate
  step or model changes these by 1e-3 or more (checked: lr +1%, seed 6 or batch size 127 fail
  every run at its first epoch); the tolerances sit 4-70x above what rounding did on the
  machine measured (Intel's MKL may take other paths than the measured AMD).
  Offsets are left out: a bias whose true gradient is zero (BPR's scores are only compared in
  differences) is moved by Adam from rounding noise alone, a different constant on each CPU that
  no ranking sees.
- Ranking metrics (Recall@K, NDCG@K) are not compared as numbers: two items whose scores differ
  by a few units in the last place swap on another CPU, and one held-out item crossing the
  top-20 of 80 users moves NDCG@20 by 3e-3 (the issue's failure). Instead, from this machine's
  scores, the test computes the lowest and highest value the metric can take when every score
  may move by ``RANK_EPS`` times the score spread (14x the largest measured score difference;
  ``helpers_rec.rank_metric_bounds``), and
  requires the recorded value to lie in that range. Where no held-out item is near a tie at the
  cutoff the range is a single value, so the check is exact; near-ties, and only those, are
  allowed to fall either way. With ``eps = 0`` the same bounds must enclose this machine's
  reported metric (the bounds follow the evaluator), and the range must stay narrow (at most
  ``RANK_MAX_USERS`` users' worth of the metric), so the check cannot pass by being wide.

The runs learn enough for their scores to be ranked (GMF, MF and LightGCN at lr 0.05 and L2
0.01; under L2 0.1 GMF's scores stay within 1e-5 of each other and their order is rounding
noise). NeuMF keeps lr 0.01 and L2 0.1: with weaker L2 its ReLU layers turn last-bit differences
into score differences of 0.1 within 3 epochs (measured), which would test chaos, not the code.
CDAE is left out on purpose: issue 13 changes it to the authors' form, a different model.
``deca_p`` pre-trains its prior without the f' cache.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers_rec import rank_metric_bounds

#: (backbone, method) runs, 3 epochs each
RUNS = [("mf", "normal"), ("gmf", "normal"), ("neumf", "normal"), ("lightgcn", "normal"),
        ("gmf", "deca"), ("neumf", "deca"), ("lightgcn", "deca"), ("gmf", "deca_p"),
        ("gmf", "tce"), ("gmf", "wbpr"), ("gmf", "ensemble"), ("mf", "deca-dp")]
EPOCHS = 3
#: learning rate and L2 per backbone (see the module docstring)
SETTINGS = {"neumf": {"lr": 0.01, "l2": 0.1}}
DEFAULT_SETTINGS = {"lr": 0.05, "l2": 0.01}
#: the losses compared (every epoch, when the method reports them)
LOSS_KEYS = ("loss", "deca/kl", "deca/h_mean", "deca/h_prime_mean", "loss/likelihood",
             "loss/bce_twin")
#: the ranking metrics checked (every epoch)
RANK_KEYS = ("valid/ndcg@20", "valid/recall@5", "valid_clean/ndcg@5", "valid_clean/recall@20",
             "test/ndcg@20", "test/recall@3", "test_clean/ndcg@20", "test_clean/recall@20")
SCORE_KEYS = ("scores/std", "scores/valid_lift", "scores/test_lift")
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6
PARAM_RTOL = 1e-5
SCORE_TOL = 1e-4
RANK_EPS = 1e-3
#: the widest range a ranking check may accept, in users: at most this many users' metric
#: may be open (measured here: at most 2.3, and 0 in 70% of the checks)
RANK_MAX_USERS = 3


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


def run(backbone: str, method: str, split) -> list[dict]:
    """Per epoch: the losses, ``params/sq_norm``, the score summaries, the ranking metrics, and
    (key ``"_scores"``) the score matrix the ranking metrics came from."""
    import torch

    from deca_tune.training.rec_trainer import RecTrainer

    spec = {"backbone": backbone, "method": method, "max_epochs": EPOCHS, "batch_size": 128,
            "seed": 5, **SETTINGS.get(backbone, DEFAULT_SETTINGS), "eval_batch_users": 32,
            "pretrain_cache": "off", "device": "cpu"}
    if method.startswith("deca"):
        spec.update({"C0": 100.0, "C1": 1000.0, "alpha": 0.5})
    if method == "tce":
        spec.update({"num_gradual": 10})
    # the forms the reference was recorded with (59cf234); issue 17 changed the defaults to
    # normal's scaling and MyMediaLite's sampling, which tests/test_nesting.py and
    # tests/test_baselines_published.py check
    if method == "tce":
        spec.update({"loss_scale": "denoisingrec"})
    if method == "wbpr":
        spec.update({"wbpr_form": "user_weighted"})
    trainer = RecTrainer(spec, split=split)
    out = []
    for _ in range(EPOCHS):
        m = trainer.train_epoch()
        row = {k: float(m[k]) for k in LOSS_KEYS + RANK_KEYS if k in m}
        trainer.method.eval()  # as the evaluator scored, in its batches of users
        with torch.no_grad():
            scores = torch.cat([trainer.method.score_all(torch.arange(a, min(a + 32, split.n_users)))
                                .float() for a in range(0, split.n_users, 32)]).double().numpy()
            row["params/sq_norm"] = float(sum(p.detach().double().pow(2).sum()
                                              for p in trainer.method.parameters()))
        mean = scores.mean()
        row["scores/std"] = float(scores.std())
        row["scores/valid_lift"] = float(scores[split.valid[:, 0], split.valid[:, 1]].mean() - mean)
        row["scores/test_lift"] = float(scores[split.test[:, 0], split.test[:, 1]].mean() - mean)
        row["_scores"] = scores
        out.append(row)
    out[0]["_eval_sets"] = trainer.eval_masks()
    return out


# ---- produced by the script mode of this file at commit 59cf234 (see the module docstring) ----
REFERENCE: dict[tuple[str, str], list[dict[str, float]]] = {
    ('mf', 'normal'): [
        {'loss': 1.3864817023277283, 'valid/ndcg@20': 0.05180839875567252, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.010766913951834826, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06152843717360005, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.0595399655804103, 'test_clean/recall@20': 0.225, 'params/sq_norm': 131.60776465068218, 'scores/std': 0.14353233187271683, 'scores/valid_lift': -0.018352288356552247, 'scores/test_lift': 0.009643988305899902},
        {'loss': 1.3084942251443863, 'valid/ndcg@20': 0.06839999624215025, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.025, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.08908607391255044, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.052289072381712376, 'test_clean/recall@20': 0.175, 'params/sq_norm': 361.56992647851115, 'scores/std': 0.42747174711601943, 'scores/valid_lift': -0.03496198394668833, 'scores/test_lift': 0.030983987309899326},
        {'loss': 1.1038771569728851, 'valid/ndcg@20': 0.07393464371160037, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.02217132018086354, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.09101491640410216, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.06618193611001691, 'test_clean/recall@20': 0.225, 'params/sq_norm': 687.6070613060247, 'scores/std': 0.8581246449175284, 'scores/valid_lift': -0.024427748002872257, 'scores/test_lift': 0.07250758973246775},
    ],
    ('gmf', 'normal'): [
        {'loss': 1.3886375427246094, 'valid/ndcg@20': 0.057598505509432595, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.058382798152848345, 'valid_clean/recall@20': 0.2, 'test/ndcg@20': 0.046304855282555235, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.042560217662393277, 'test_clean/recall@20': 0.15, 'params/sq_norm': 60.88656920257216, 'scores/std': 0.015434330983523818, 'scores/valid_lift': -0.0018322506843833249, 'scores/test_lift': -0.0015313862339826293},
        {'loss': 1.3790850043296814, 'valid/ndcg@20': 0.08414994997452133, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.0375, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.07032956228117557, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.06512907683138554, 'test_clean/recall@20': 0.225, 'params/sq_norm': 143.7303147713356, 'scores/std': 0.09148306657824352, 'scores/valid_lift': -0.006815812899561327, 'scores/test_lift': 0.0003151219077941886},
        {'loss': 1.2987149357795715, 'valid/ndcg@20': 0.09808162042781265, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.05699105169872285, 'valid_clean/recall@20': 0.35, 'test/ndcg@20': 0.07391428857887208, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.05493454178522317, 'test_clean/recall@20': 0.175, 'params/sq_norm': 374.04463474482833, 'scores/std': 0.45574642913096347, 'scores/valid_lift': 0.02937518345812956, 'scores/test_lift': 0.05222273857022325},
    ],
    ('neumf', 'normal'): [
        {'loss': 1.467310607433319, 'valid/ndcg@20': 0.17107232108996473, 'valid/recall@5': 0.125, 'valid_clean/ndcg@5': 0.12088279815284834, 'valid_clean/recall@20': 0.575, 'test/ndcg@20': 0.15737380174127352, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.13231897172408372, 'test_clean/recall@20': 0.35, 'params/sq_norm': 78.61484984198039, 'scores/std': 0.5326486987675675, 'scores/valid_lift': 0.3483299755871606, 'scores/test_lift': 0.3582869069565398},
        {'loss': 1.285881981253624, 'valid/ndcg@20': 0.17300821182020237, 'valid/recall@5': 0.15, 'valid_clean/ndcg@5': 0.13338279815284834, 'valid_clean/recall@20': 0.5, 'test/ndcg@20': 0.130445429173017, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.10244696165248106, 'test_clean/recall@20': 0.3, 'params/sq_norm': 75.55427963043829, 'scores/std': 0.9981055438871426, 'scores/valid_lift': 0.6193960409949067, 'scores/test_lift': 0.5998522950673941},
        {'loss': 1.3169761300086975, 'valid/ndcg@20': 0.1669291620011932, 'valid/recall@5': 0.1375, 'valid_clean/ndcg@5': 0.12306044822116351, 'valid_clean/recall@20': 0.525, 'test/ndcg@20': 0.14761754809315636, 'test/recall@3': 0.075, 'test_clean/ndcg@20': 0.13827759309706866, 'test_clean/recall@20': 0.35, 'params/sq_norm': 85.04801389038404, 'scores/std': 0.764162417744974, 'scores/valid_lift': 0.4269028762805586, 'scores/test_lift': 0.4091547077971821},
    ],
    ('lightgcn', 'normal'): [
        {'loss': 1.3449166417121887, 'valid/ndcg@20': 0.14017527317521686, 'valid/recall@5': 0.1125, 'valid_clean/ndcg@5': 0.07544456402014998, 'valid_clean/recall@20': 0.475, 'test/ndcg@20': 0.15550978089396156, 'test/recall@3': 0.1, 'test_clean/ndcg@20': 0.14329048847264678, 'test_clean/recall@20': 0.375, 'params/sq_norm': 552.547770401308, 'scores/std': 0.35223693705212805, 'scores/valid_lift': 0.16445360797764352, 'scores/test_lift': 0.14316766359218946},
        {'loss': 1.262587457895279, 'valid/ndcg@20': 0.14254273310800808, 'valid/recall@5': 0.1375, 'valid_clean/ndcg@5': 0.1291623718795864, 'valid_clean/recall@20': 0.475, 'test/ndcg@20': 0.10796435627529262, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.11486002297129379, 'test_clean/recall@20': 0.275, 'params/sq_norm': 1149.6565790643451, 'scores/std': 0.44167273755628345, 'scores/valid_lift': 0.06438252209311411, 'scores/test_lift': 0.027665904786885367},
        {'loss': 1.1437317878007889, 'valid/ndcg@20': 0.09557726203831245, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.08904015779112126, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.10546351837686019, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.12422642533639609, 'test_clean/recall@20': 0.3, 'params/sq_norm': 1900.769998006191, 'scores/std': 0.7136155712387467, 'scores/valid_lift': -0.013366265853316385, 'scores/test_lift': -0.01725488205199023},
    ],
    ('gmf', 'deca'): [
        {'loss': 263.8672833442688, 'deca/kl': 0.0015928124222206463, 'deca/h_mean': 0.5004267022013664, 'deca/h_prime_mean': 0.5010391473770142, 'loss/likelihood': -131.93018245697021, 'valid/ndcg@20': 0.051136508097113786, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.023266913951834826, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06564536622735617, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.08476252539248659, 'test_clean/recall@20': 0.225, 'params/sq_norm': 385.7307467413719, 'scores/std': 0.0338108233557841, 'scores/valid_lift': -0.0007327767446016487, 'scores/test_lift': -0.0019473208471512127},
        {'loss': 232.38809251785278, 'deca/kl': 0.002367637411225587, 'deca/h_mean': 0.5148495994508266, 'deca/h_prime_mean': 0.5125393345952034, 'loss/likelihood': -116.18507099151611, 'valid/ndcg@20': 0.08229127120842931, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.06448472181127125, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.059170402341389795, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.07131642233200541, 'test_clean/recall@20': 0.2, 'params/sq_norm': 820.2363243661832, 'scores/std': 0.12425570049764666, 'scores/valid_lift': 0.012542199244101826, 'scores/test_lift': -0.0013415229568879417},
        {'loss': 194.65097618103027, 'deca/kl': 0.006275767344050109, 'deca/h_mean': 0.5690080299973488, 'deca/h_prime_mean': 0.5418374836444855, 'loss/likelihood': -97.30649876594543, 'valid/ndcg@20': 0.1016325272760158, 'valid/recall@5': 0.125, 'valid_clean/ndcg@5': 0.07634722953407735, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.05726390983347572, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.05636750145232672, 'test_clean/recall@20': 0.175, 'params/sq_norm': 1425.5882752744767, 'scores/std': 0.3522667143679076, 'scores/valid_lift': 0.0658377901744096, 'scores/test_lift': -0.005516197057440886},
    ],
    ('neumf', 'deca'): [
        {'loss': 229.73350477218628, 'deca/kl': 0.11881348760735477, 'deca/h_mean': 0.49999988451600075, 'deca/h_prime_mean': 0.5000524595379829, 'loss/likelihood': -114.64283180236816, 'valid/ndcg@20': 0.1061214024979255, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.053273243839286444, 'valid_clean/recall@20': 0.4, 'test/ndcg@20': 0.13396997858293896, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.12998476245832738, 'test_clean/recall@20': 0.375, 'params/sq_norm': 409.58278728149577, 'scores/std': 1.2114927790733583, 'scores/valid_lift': 0.3308789795575042, 'scores/test_lift': 0.44470904751991247},
        {'loss': 59.317367374897, 'deca/kl': 2.620203211903572, 'deca/h_mean': 0.501032717525959, 'deca/h_prime_mean': 0.5008416101336479, 'loss/likelihood': -26.89479725062847, 'valid/ndcg@20': 0.10428970392896852, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.04761588420101352, 'valid_clean/recall@20': 0.375, 'test/ndcg@20': 0.11609111442825774, 'test/recall@3': 0.0625, 'test_clean/ndcg@20': 0.08754148278625473, 'test_clean/recall@20': 0.275, 'params/sq_norm': 581.4446177117172, 'scores/std': 11.109573900661914, 'scores/valid_lift': 2.998112620413302, 'scores/test_lift': 4.067963112890723},
        {'loss': 56.951729238033295, 'deca/kl': 2.9485411942005157, 'deca/h_mean': 0.5035632774233818, 'deca/h_prime_mean': 0.5017203539609909, 'loss/likelihood': -25.347062155604362, 'valid/ndcg@20': 0.10265822916584186, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.04697839192381963, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.10668116267271129, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.07654285040679218, 'test_clean/recall@20': 0.25, 'params/sq_norm': 746.13687105264, 'scores/std': 24.10372696927596, 'scores/valid_lift': 6.353892155960196, 'scores/test_lift': 8.506272735670208},
    ],
    ('lightgcn', 'deca'): [
        {'loss': 282.3907995223999, 'deca/kl': 0.0012156209215845593, 'deca/h_mean': 0.500440526753664, 'deca/h_prime_mean': 0.5010212659835815, 'loss/likelihood': -141.18781924247742, 'valid/ndcg@20': 0.10928740292816568, 'valid/recall@5': 0.1, 'valid_clean/ndcg@5': 0.057938234132698364, 'valid_clean/recall@20': 0.325, 'test/ndcg@20': 0.09169838159457591, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.10203869422406757, 'test_clean/recall@20': 0.275, 'params/sq_norm': 492.46267252637494, 'scores/std': 0.0442417179675629, 'scores/valid_lift': 0.010572923501896037, 'scores/test_lift': 0.0021722007949582234},
        {'loss': 278.29481744766235, 'deca/kl': 0.0013993771863169968, 'deca/h_mean': 0.5147138275206089, 'deca/h_prime_mean': 0.512300543487072, 'loss/likelihood': -139.1363399028778, 'valid/ndcg@20': 0.049734339859729415, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.026540157791121267, 'valid_clean/recall@20': 0.15, 'test/ndcg@20': 0.052353498665140406, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.06959196024466496, 'test_clean/recall@20': 0.175, 'params/sq_norm': 798.7220164164194, 'scores/std': 0.0628040166305474, 'scores/valid_lift': -0.007915114035486493, 'scores/test_lift': -0.018864524301525687},
        {'loss': 275.25711584091187, 'deca/kl': 0.0021712466186727397, 'deca/h_mean': 0.5685709193348885, 'deca/h_prime_mean': 0.5417965427041054, 'loss/likelihood': -137.6123402118683, 'valid/ndcg@20': 0.06980591002862375, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.025, 'valid_clean/recall@20': 0.2, 'test/ndcg@20': 0.058726725025733874, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.05949501687193446, 'test_clean/recall@20': 0.125, 'params/sq_norm': 1220.3642783087444, 'scores/std': 0.10338627162489843, 'scores/valid_lift': -0.009186437513309897, 'scores/test_lift': -0.037094423877462646},
    ],
    ('gmf', 'deca_p'): [
        {'loss': 263.87215995788574, 'deca/kl': 0.006169158004922792, 'deca/h_mean': 0.5004264339804649, 'deca/h_prime_mean': 0.5010399892926216, 'loss/likelihood': -131.9280343055725, 'valid/ndcg@20': 0.0513278204351009, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.023266913951834826, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06540041783259783, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.09077939243453946, 'test_clean/recall@20': 0.25, 'params/sq_norm': 445.7773076089219, 'scores/std': 0.034106348440057305, 'scores/valid_lift': -0.000677558447544746, 'scores/test_lift': -0.0018168777630974686},
        {'loss': 232.44634008407593, 'deca/kl': 0.02640919154509902, 'deca/h_mean': 0.5148454867303371, 'deca/h_prime_mean': 0.5125401392579079, 'loss/likelihood': -116.19013690948486, 'valid/ndcg@20': 0.08320525462104453, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.06621780785943641, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.06456929084141513, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.07708976524723532, 'test_clean/recall@20': 0.225, 'params/sq_norm': 802.8395447481869, 'scores/std': 0.1250438387463665, 'scores/valid_lift': 0.014009871712575395, 'scores/test_lift': -0.0012164410141607407},
        {'loss': 194.69565773010254, 'deca/kl': 0.07168807229027152, 'deca/h_mean': 0.5690056160092354, 'deca/h_prime_mean': 0.5418117642402649, 'loss/likelihood': -97.26340556144714, 'valid/ndcg@20': 0.10989114408382432, 'valid/recall@5': 0.1375, 'valid_clean/ndcg@5': 0.09524530587565445, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.060204008243861816, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.062065785478405154, 'test_clean/recall@20': 0.2, 'params/sq_norm': 1278.7481841860317, 'scores/std': 0.3548685707388225, 'scores/valid_lift': 0.06944884123591089, 'scores/test_lift': -0.004080017783368639},
    ],
    ('gmf', 'tce'): [
        {'loss': 0.6870265156030655, 'valid/ndcg@20': 0.08617643345064381, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.04761588420101352, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.06470735792186315, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.044135686264465776, 'test_clean/recall@20': 0.15, 'params/sq_norm': 43.31100181894676, 'scores/std': 0.01865871045218681, 'scores/valid_lift': -0.002366053474446128, 'scores/test_lift': -0.001715676089127871},
        {'loss': 0.651310108602047, 'valid/ndcg@20': 0.08401305489028062, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.04697839192381963, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.07842022530405166, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.08091916086473856, 'test_clean/recall@20': 0.225, 'params/sq_norm': 134.00850962858271, 'scores/std': 0.15013648648262376, 'scores/valid_lift': -0.009198172499115254, 'scores/test_lift': -0.015856196839983294},
        {'loss': 0.5656115189194679, 'valid/ndcg@20': 0.07668255995733705, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.03293823413269837, 'valid_clean/recall@20': 0.225, 'test/ndcg@20': 0.07153056467878907, 'test/recall@3': 0.0375, 'test_clean/ndcg@20': 0.06933330151261813, 'test_clean/recall@20': 0.175, 'params/sq_norm': 390.0993998301608, 'scores/std': 0.7999695720624342, 'scores/valid_lift': 0.018324016407132104, 'scores/test_lift': -0.0665631469339133},
    ],
    ('gmf', 'wbpr'): [
        {'loss': 0.6860478222370148, 'valid/ndcg@20': 0.07797860676752424, 'valid/recall@5': 0.0625, 'valid_clean/ndcg@5': 0.02217132018086354, 'valid_clean/recall@20': 0.2, 'test/ndcg@20': 0.08597886753960986, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.06652365099441705, 'test_clean/recall@20': 0.2, 'params/sq_norm': 65.8232314729523, 'scores/std': 0.018583689601356475, 'scores/valid_lift': -0.004051447603657533, 'scores/test_lift': -0.0008758068688136215},
        {'loss': 0.6690529137849808, 'valid/ndcg@20': 0.06597551645522029, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.010766913951834826, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.07467444315424496, 'test/recall@3': 0.05, 'test_clean/ndcg@20': 0.057915304943671385, 'test_clean/recall@20': 0.2, 'params/sq_norm': 167.03634665269882, 'scores/std': 0.09817181049872882, 'scores/valid_lift': -0.018886372854643316, 'scores/test_lift': -0.009428221151932425},
        {'loss': 0.6194330900907516, 'valid/ndcg@20': 0.05844971439496131, 'valid/recall@5': 0.025, 'valid_clean/ndcg@5': 0.00967132018086354, 'valid_clean/recall@20': 0.225, 'test/ndcg@20': 0.07255546197303496, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.07394980308789086, 'test_clean/recall@20': 0.25, 'params/sq_norm': 406.9845372682613, 'scores/std': 0.412276247260076, 'scores/valid_lift': -0.12982164579894745, 'scores/test_lift': -0.061559307853312935},
    ],
    ('gmf', 'ensemble'): [
        {'loss': 2.7760875821113586, 'loss/bce_twin': 1.3853823244571686, 'valid/ndcg@20': 0.06856909043843087, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.05154015779112127, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.055103944894946154, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.05288546387542844, 'test_clean/recall@20': 0.175, 'params/sq_norm': 128.76696889111648, 'scores/std': 0.0030611873907123366, 'scores/valid_lift': -0.0005749208138635664, 'scores/test_lift': -0.00038338687581329634},
        {'loss': 2.747448682785034, 'loss/bce_twin': 1.3616278916597366, 'valid/ndcg@20': 0.07817759601647414, 'valid/recall@5': 0.075, 'valid_clean/ndcg@5': 0.06275163576310608, 'valid_clean/recall@20': 0.275, 'test/ndcg@20': 0.06030991524876804, 'test/recall@3': 0.0, 'test_clean/ndcg@20': 0.06129913896402728, 'test_clean/recall@20': 0.2, 'params/sq_norm': 320.0464084276563, 'scores/std': 0.020929570591582417, 'scores/valid_lift': -0.0019260940079887656, 'scores/test_lift': -0.0005201277260978854},
        {'loss': 2.535543590784073, 'loss/bce_twin': 1.2189924865961075, 'valid/ndcg@20': 0.11170381099050515, 'valid/recall@5': 0.0875, 'valid_clean/ndcg@5': 0.07559297535714575, 'valid_clean/recall@20': 0.3, 'test/ndcg@20': 0.09267897377093001, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.08060460347876106, 'test_clean/recall@20': 0.225, 'params/sq_norm': 840.88302793355, 'scores/std': 0.10304117452473646, 'scores/valid_lift': 0.0025695214280858636, 'scores/test_lift': 0.014273610548116267},
    ],
    ('mf', 'deca-dp'): [
        {'loss': 496.6980514526367, 'deca/kl': 0.0006773114585127971, 'deca/h_mean': 0.499876718968153, 'deca/h_prime_mean': 0.5000057779252529, 'loss/likelihood': -248.34649085998535, 'valid/ndcg@20': 0.06527965865280524, 'valid/recall@5': 0.05, 'valid_clean/ndcg@5': 0.0375, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.06875904101667665, 'test/recall@3': 0.025, 'test_clean/ndcg@20': 0.07277225315065558, 'test_clean/recall@20': 0.2, 'params/sq_norm': 367.9021178728781, 'scores/std': 0.1632120395922516, 'scores/valid_lift': -0.016488699693204864, 'scores/test_lift': -0.004216929321032972},
        {'loss': 403.9058418273926, 'deca/kl': 0.030795657716225833, 'deca/h_mean': 0.5610388070344925, 'deca/h_prime_mean': 0.4999820813536644, 'loss/likelihood': -201.91354370117188, 'valid/ndcg@20': 0.0601386205988502, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.00967132018086354, 'valid_clean/recall@20': 0.175, 'test/ndcg@20': 0.040853132995915184, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.056408364751339604, 'test_clean/recall@20': 0.2, 'params/sq_norm': 1048.9885439156515, 'scores/std': 0.47568597086163844, 'scores/valid_lift': -0.04016826572633647, 'scores/test_lift': -0.01067615599177163},
        {'loss': 137.34855842590332, 'deca/kl': 0.17757918778806925, 'deca/h_mean': 0.6796653121709824, 'deca/h_prime_mean': 0.4999898485839367, 'loss/likelihood': -68.47322964668274, 'valid/ndcg@20': 0.06440948281222353, 'valid/recall@5': 0.0375, 'valid_clean/ndcg@5': 0.023266913951834826, 'valid_clean/recall@20': 0.25, 'test/ndcg@20': 0.03554438721508288, 'test/recall@3': 0.0125, 'test_clean/ndcg@20': 0.03917228876906777, 'test_clean/recall@20': 0.125, 'params/sq_norm': 2531.4406274803137, 'scores/std': 1.0567138492060755, 'scores/valid_lift': -0.050562742687762174, 'scores/test_lift': -0.038600197769701694},
    ],
}


@pytest.mark.parametrize("backbone,method", RUNS)
def test_same_seed_same_results_as_before(backbone, method, one_torch_thread):
    split = small_split()
    expected = REFERENCE[(backbone, method)]
    got = run(backbone, method, split)
    eval_sets = got[0].pop("_eval_sets")
    assert len(got) == len(expected)
    for epoch, (g, e) in enumerate(zip(got, expected), 1):
        scores = g.pop("_scores")
        where = (backbone, method, epoch)
        assert set(g) == set(e), (where, sorted(set(g) ^ set(e)))
        for key in LOSS_KEYS:
            if key in e:
                assert g[key] == pytest.approx(e[key], rel=LOSS_RTOL, abs=LOSS_ATOL), (where, key)
        assert g["params/sq_norm"] == pytest.approx(e["params/sq_norm"], rel=PARAM_RTOL), where
        for key in SCORE_KEYS:
            assert abs(g[key] - e[key]) <= SCORE_TOL * e["scores/std"], (where, key, g[key], e[key])
        spread = float(scores.std())
        assert spread > 0, where
        for key in RANK_KEYS:
            name, metric = key.split("/")
            relevant, mask = eval_sets[name]
            k = int(metric.split("@")[1])
            exact_lo, exact_hi = rank_metric_bounds(scores, relevant, mask, [k], 0.0)[metric]
            assert exact_lo - 1e-12 <= g[key] <= exact_hi + 1e-12, (where, key, "bounds vs evaluator")
            lo, hi = rank_metric_bounds(scores, relevant, mask, [k], RANK_EPS * spread)[metric]
            n_users = len(np.unique(np.asarray(relevant)[:, 0]))
            assert (hi - lo) * n_users <= RANK_MAX_USERS, (where, key, lo, hi)
            assert lo - 1e-12 <= e[key] <= hi + 1e-12, (where, key, e[key], (lo, hi))


def test_rank_bounds_tell_a_tie_from_a_real_change():
    """The bounds are a point where no score is near the cutoff, widen over a near-tie, and
    exclude the value of a ranking that really changed."""
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [1.0, 1.0 + 1e-9, 0.5, 0.0]])
    relevant = np.array([[0, 1], [1, 0]])
    mask = np.array([[0, 3]])
    exact = rank_metric_bounds(scores, relevant, mask, [1], 0.0)["recall@1"]
    assert exact == (0.0, 0.0)  # user 0: item 1 second; user 1: item 0 behind item 1 by 1e-9
    near = rank_metric_bounds(scores, relevant, mask, [1], 1e-6)["recall@1"]
    assert near == (0.0, 0.5)  # the near-tie of user 1 may fall either way, user 0 may not
    assert not near[0] <= 1.0 <= near[1]  # user 0's item at the top is a real change: excluded
    ndcg = rank_metric_bounds(scores, relevant, mask, [2], 1e-6)["ndcg@2"]
    assert ndcg[0] == pytest.approx(1 / np.log2(3)) and ndcg[1] == pytest.approx((1 / np.log2(3) + 1) / 2)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    split = small_split()
    print("REFERENCE: dict[tuple[str, str], list[dict[str, float]]] = {")
    for backbone, method in RUNS:
        rows = run(backbone, method, split)
        print(f"    ({backbone!r}, {method!r}): [")
        for row in rows:
            print("        {" + ", ".join(f"{k!r}: {v!r}" for k, v in row.items()
                                        if not k.startswith("_")) + "},")
        print("    ],")
    print("}")
    sys.exit(0)
