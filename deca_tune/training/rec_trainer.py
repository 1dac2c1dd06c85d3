"""THE training loop for recommendation, shared by every method (``deca_tune.methods``).

Per epoch: shuffle the training positives (``method.epoch_order``), sample ``neg_ratio``
negatives for each with the method's sampler, run mini-batches of ``method.batch_loss`` + ``l2 / (2 n_users) * ||theta||^2``
(the DeCA authors' scaling of lambda, over the target model's parameters) with Adam (spec
``recipe: published``), or + the L2 of the rows the batch looks up with Adam on those rows only
(``recipe: linear``, :meth:`RecTrainer.batch_l2`, :class:`~deca_tune.training.adam.LazyAdam`), then
evaluate by full ranking on the validation and test splits. Early stopping watches the selection
metric (noisy validation NDCG@20, or clean validation under the ``paper`` protocol) and
:meth:`fit` restores the best epoch. The epoch skeleton is :class:`EpochTrainer`'s. Nothing here
knows about Ray.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import torch

from deca_tune.data.sampling import SAMPLERS, RowBatches
from deca_tune.methods.rec.base import RecMethod, takes_row_negatives
from deca_tune.methods.rec.normal import pair_index
from deca_tune.models.rec.base import RecBackbone, add_row_grads, recipe_of
from deca_tune.metrics.ranking import RankingEvaluator
from deca_tune.tasks.rec import SELECTION_K, resolve_recipe
from deca_tune.training.adam import Adam, LazyAdam
from deca_tune.training.base import EpochTrainer

#: the splits evaluated every epoch and the pairs masked when ranking for each
EVAL_SPLITS = ("valid", "valid_clean", "test", "test_clean")
#: positives (with their negatives) of the agreement probe's batch; rows batching: the users of
#: the first PROBE_PAIRS positives, with all their positives and negatives
PROBE_PAIRS = 1024


#: seed of the validation users' sample (spec ``valid_users``): one sample for every trial
VALID_USERS_SEED = 0


def sample_valid_users(sets: dict[str, tuple[np.ndarray, np.ndarray]],
                       n: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``sets`` (``RecSplit.evaluation_sets``: ``(user, item)`` rows) with the validation splits'
    relevant pairs cut to those of a fixed random sample of ``n`` of their users (all of them when
    ``n`` is None or at least their number). A metric averaged over users is then an unbiased
    estimate of the full one; the masked pairs stay as they are."""
    valid = [name for name in ("valid", "valid_clean") if name in sets and len(sets[name][0])]
    if n is None or not valid:
        return sets
    users = np.unique(np.concatenate([sets[name][0][:, 0] for name in valid]))
    if int(n) >= len(users):
        return sets
    chosen = np.sort(np.random.default_rng(VALID_USERS_SEED).choice(users, int(n), replace=False))
    out = dict(sets)
    for name in valid:
        relevant, masked = sets[name]
        out[name] = (relevant[np.isin(relevant[:, 0], chosen)], masked)
    return out


class RecTrainer(EpochTrainer):
    """Trains ``spec["method"]`` on ``spec["backbone"]`` / ``spec["dataset"]``; see the trainer
    contract in ``docs/architecture.md``."""

    task_name = "rec"

    def setup(self) -> None:
        s = self.spec
        self.ks = sorted(set(self.split.ks) | {SELECTION_K})
        selection_split = self.selection_metric.split("/")[0]
        if len(getattr(self.split, selection_split)) == 0:
            raise ValueError(f"data set {self.split.name!r}: the {selection_split} split is empty, so "
                             f"{self.selection_metric} (the selection metric) cannot be computed; "
                             f"use a larger data set or other split options")
        torch.manual_seed(int(s["seed"]))
        self.rng = np.random.default_rng(int(s["seed"]))
        self.method: RecMethod = self.task.method_class(s["method"])(s, self.split)
        self.method.to(self.device)
        self.sampler = SAMPLERS.get(s["sampler"] or self.method.sampler)(self.split)
        #: ``published`` or ``linear`` (spec ``recipe``, ``auto`` resolved on this split)
        self.training_recipe = resolve_recipe(s, len(self.split.train))
        self.linear = self.training_recipe == "linear"
        if self.linear:  # sparse gradients of the looked-up rows, updated alone (LazyAdam)
            for module in self.method.modules():
                if isinstance(module, RecBackbone):
                    module.use_row_gradients(True)
        # torch.optim.Adam's default update, bit for bit, without importing torch._dynamo (issue 13;
        # torch's fused=True Adam was no faster here and rounds differently)
        optimizer = LazyAdam if self.linear else Adam
        self.optimizer = optimizer(self.method.trainable_parameters(), lr=float(s["lr"]))
        # the authors' code: lambda0 * 1/2 * sum ||theta||^2 / n_users, added to every batch loss
        self.l2_weight = float(s["l2"]) / (2.0 * self.split.n_users)
        #: pairs never ranked when scoring the test splits (the protocol's mask)
        self.test_mask = self.split.test_mask(s["protocol"])
        self._eval_sets = sample_valid_users(self.split.evaluation_sets(s["protocol"]), s.get("valid_users"))
        self._setup_recipe()

    def _setup_recipe(self) -> None:
        """The backbone's training recipe, its batching for this method, the authors' early stop."""
        self.recipe = recipe_of(self.method.f)
        #: rows batching (the authors' CDAE) when the backbone asks for it and the method takes
        #: negatives with their own users; otherwise the pairs batching
        self.row_batching = self.recipe.batching == "rows" and takes_row_negatives(self.method)
        bs = int(self.spec["batch_size"])
        for module in self.method.modules():  # CDAE's evaluation normalisation uses the batch size
            if recipe_of(module).batching == "rows" and hasattr(module, "batch_users"):
                module.batch_users = bs
        #: the rows batching's index of the training positives (built once; used when row_batching)
        self.rows = RowBatches(self.split)
        #: the DeCA authors' early-stopping rule (spec ``early_stop: authors``), else None
        self.authors_stop = AuthorsEarlyStop(self) if self.spec.get("early_stop") == "authors" else None

    # ------------------------------------------------------------------ training
    def batches(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """The epoch's mini-batches in the backbone's batching (``TrainingRecipe``); with
        ``early_stop: authors`` the epoch ends at the step where the authors' rule stops."""
        source = row_batches(self) if self.row_batching else self._pair_batches()
        self._probe_batch = None
        for batch in source:
            if self._probe_batch is None:  # the epoch's first mini-batch (agreement_probe)
                self._probe_batch = batch
            yield batch
            if self.authors_stop is not None and self.authors_stop.after_step(self):
                self.stopped_early = True
                return

    def _pair_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        train = self.split.train
        order = self.method.epoch_order(len(train), self.rng)
        users_np = train[order, 0]
        neg_np = self.sampler.sample(users_np, int(self.spec["neg_ratio"]), self.rng)
        users = torch.as_tensor(users_np, device=self.device)
        pos = torch.as_tensor(train[order, 1], device=self.device)
        neg = torch.as_tensor(neg_np, device=self.device)
        bs = int(self.spec["batch_size"])
        for lo in range(0, len(order), bs):
            yield users[lo:lo + bs], pos[lo:lo + bs], neg[lo:lo + bs]

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, float]]:
        if len(batch) == 4:  # rows batching: (users, pos, neg, neg_users)
            loss, parts = self.method.batch_loss(*batch[:3], self.step, neg_users=batch[3])
        else:
            loss, parts = self.method.batch_loss(*batch, self.step)
        return loss + self.l2_penalty(batch), parts

    def l2_penalty(self, batch: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor | float:
        """The backbone recipe's L2 (``TrainingRecipe.l2``) over the method's regularised
        parameters: ``l2 / (2 n_users) * sum ||p||^2``, or ``l2 * sum_p ||p||_2`` (authors' CDAE);
        under ``recipe: linear`` the batch form :meth:`batch_l2` (``batch`` needed)."""
        if not float(self.spec["l2"]) > 0:
            return 0.0
        if self.linear:
            if batch is None:
                raise ValueError("recipe linear: the L2 penalty is the batch's; pass the batch")
            return self.batch_l2(batch)
        params = self.method.regularised_parameters()
        if self.recipe.l2 == "norm":
            return float(self.spec["l2"]) * sum(p.norm(2) for p in params)
        return squared_l2(self.l2_weight, params)

    def batch_l2(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The ``linear`` recipe's L2 (LightGCN's and RecBole's form: the rows a batch looks up)::

            l2 / (2 P) * sum_{(u, i) scored} (sum_T ||T_u||^2 + sum_T' ||T'_i||^2)
              + l2 / (2 n_users) * ||theta_rest||^2

        ``P`` the batch's scored pairs (positives and negatives), ``T`` / ``T'`` the user /
        item tables of each regularised model (``RecBackbone.user_tables``, ``item_tables``;
        ``RecMethod.regularised_rows``), each row counted once per pair that scores it;
        ``theta_rest`` the regularised parameters outside those tables (GMF's output layer,
        NeuMF's tower), small and dense, with the published scaling. On average a user's rows
        get the published form's gradient per epoch. Always squared (also for CDAE, whose
        published form is ``l2 * sum ||p||_2``).

        The tables' part goes without autograd: its value (no gradient) joins the loss, its
        gradient ``l2 / P * T_u`` per occurrence goes straight to the table's row gradients
        (``add_row_grads``, applied by ``LazyAdam``), one gather per table instead of a lookup,
        a square, a sum and their backward."""
        users, pos, neg = batch[:3]
        neg_users = batch[3] if len(batch) == 4 else None
        all_users, all_items = pair_index(users, pos, neg, neg_users)
        l2 = float(self.spec["l2"])
        scale = l2 / (2.0 * all_users.numel())
        total = torch.zeros((), device=self.device)
        tabled: set[int] = set()
        with torch.no_grad():
            for model, u, i in self.method.regularised_rows(all_users, all_items):
                user_tables, item_tables = model.row_tables()
                for table, index in [(t, u) for t in user_tables] + [(t, i) for t in item_tables]:
                    tabled.add(id(table))
                    rows = table.index_select(0, index)
                    total += rows.pow(2).sum()
                    if table.requires_grad:
                        add_row_grads(table, index, rows.mul_(2.0 * scale))
        penalty = scale * total
        rest = [p for p in self.method.regularised_parameters() if id(p) not in tabled]
        return penalty + squared_l2(self.l2_weight, rest) if rest else penalty

    # ---------------------------------------------------------------- evaluation
    def eval_masks(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{split: (relevant pairs, masked pairs)}`` of every non-empty evaluation split under
        the spec's protocol (``RecSplit.evaluation_sets``: the default protocol never counts a
        validation pair at test time)."""
        return {name: self._eval_sets[name] for name in EVAL_SPLITS if len(self._eval_sets[name][0])}

    @property
    def evaluator(self) -> RankingEvaluator:
        """The one-pass ranking evaluator of :meth:`eval_masks` (built on first use)."""
        if getattr(self, "_evaluator", None) is None:
            self._evaluator = RankingEvaluator(self.eval_masks(), self.split.n_users, self.split.n_items,
                                               self.ks, batch_users=int(self.spec["eval_batch_users"]))
        return self._evaluator

    def epoch_eval_splits(self) -> list[str]:
        """The splits this epoch's evaluation scores (spec ``eval_splits``): every split with
        ``"all"``; with ``"selection"`` only the selection metric's split, except once the
        trainer is finished (its last epoch reports every split; see :meth:`train_epoch`)."""
        names = list(self.eval_masks())
        if self.spec.get("eval_splits", "all") == "all" or self.finished:
            return names
        return [self.selection_metric.split("/")[0]]

    @torch.no_grad()
    def evaluate(self, splits: str | list[str] | None = None) -> dict[str, float]:
        """Full-ranking metrics (``<split>/<metric>``) of valid, valid_clean, test and test_clean
        (``splits="all"``), of the given splits, or (``None``, the per-epoch call) of
        :meth:`epoch_eval_splits`. One scoring pass serves every split (``RankingEvaluator``)."""
        self.method.eval()
        if splits is None:
            names = self.epoch_eval_splits()
        elif splits == "all":
            names = list(self.eval_masks())
        else:
            names = [splits] if isinstance(splits, str) else list(splits)
        res = self.evaluator.evaluate(self.method.score_all, names, device=self.device,
                                      owned_scores=bool(getattr(self.method, "fresh_scores", False)))
        return {f"{name}/{k}": v for name in names if name in res for k, v in res[name].items()}

    def train_epoch(self) -> dict[str, float]:
        """:meth:`EpochTrainer.train_epoch`; with ``eval_splits: selection`` an epoch that ends
        the run by early stopping (``patience``) still reports every split."""
        metrics = super().train_epoch()
        missing = [n for n in self.eval_masks() if f"{n}/users" not in metrics]
        if self.finished and missing:
            start = time.perf_counter()
            metrics.update(self.evaluate(missing))  # the same dict as self.last
            metrics["epoch_seconds"] += time.perf_counter() - start
        return metrics

    def _optimizer_step(self, loss: torch.Tensor, parts: dict[str, Any], totals: dict[str, float]) -> None:
        """:meth:`EpochTrainer._optimizer_step`, but tensor parts are summed as tensors (float64)
        and turned into numbers once per epoch (:meth:`after_epoch`): no ``float(tensor)`` per
        batch, which on a GPU waits for the device every step."""
        if self.device.type == "cpu" and not torch.isfinite(loss):  # elsewhere: once per epoch
            raise FloatingPointError(f"non-finite loss at epoch {self.epoch}, step {self.step}: {parts}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self._epoch_totals = totals
        acc = self.__dict__.setdefault("_tensor_totals", {})
        for key, val in (("loss", loss), *parts.items()):
            name = key if key == "loss" or "/" in key else f"loss/{key}"
            totals.setdefault(name, 0.0)  # the order of the keys: loss, then the parts
            if isinstance(val, torch.Tensor):
                val = val.detach().double()
                acc[name] = acc[name] + val if name in acc else val
            else:
                totals[name] = totals.get(name, 0.0) + float(val)

    def after_epoch(self) -> dict[str, float]:
        """Turn the epoch's tensor sums into the numbers of ``totals`` (one conversion each)."""
        acc = self.__dict__.pop("_tensor_totals", {})
        totals = self.__dict__.pop("_epoch_totals", None)
        if totals is not None:
            for name, val in acc.items():
                totals[name] = totals.get(name, 0.0) + float(val)
            if not np.isfinite(totals.get("loss", 0.0)):
                raise FloatingPointError(f"non-finite loss in epoch {self.epoch} (summed over its steps)")
        return {**super().after_epoch(), **self.agreement_probe()}

    def agreement_probe(self) -> dict[str, float]:
        """The method's per-epoch gradient diagnostic (DeCA / DeCA(p): how much of f's gradient
        the agreement KL gives, ``agreement_gradient``) on the first :data:`PROBE_PAIRS` positives
        of the epoch's first mini-batch at the end-of-epoch weights, when the method's
        ``agreement_grad`` is on. It changes nothing that
        training computes: ``torch.autograd.grad`` writes no ``.grad``, the optimiser does not
        step, and the torch RNG (CDAE's dropout) is forked and restored; the numpy RNG is not
        used."""
        batch = self.__dict__.pop("_probe_batch", None)
        probe = getattr(self.method, "agreement_gradient", None)
        if batch is None or probe is None or not self.method.spec.get("agreement_grad", False):
            return {}
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if len(batch) == 4:  # rows batching: (users, pos, neg, neg_users)
                users, pos, neg, neg_users = batch
                if len(pos) > PROBE_PAIRS:  # a whole CDAE epoch can be one batch
                    keep = users[:PROBE_PAIRS].unique()
                    on_pos, on_neg = torch.isin(users, keep), torch.isin(neg_users, keep)
                    users, pos, neg, neg_users = users[on_pos], pos[on_pos], neg[on_neg], neg_users[on_neg]
                return probe(users, pos, neg, neg_users=neg_users)
            return probe(*(t[:PROBE_PAIRS] for t in batch))

    # ------------------------------------------------------------- checkpointing
    def extra_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"numpy_rng": self.rng.bit_generator.state}
        if self.authors_stop is not None:
            out["authors_stop"] = self.authors_stop.state_dict()
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy_rng"]
        if self.authors_stop is not None and "authors_stop" in state:
            self.authors_stop.load_state_dict(state["authors_stop"])


# ---------------------------------------------------------------------------- squared L2
class _SquaredL2(torch.autograd.Function):
    """``weight * sum_p sum(p ** 2)`` with the gradient ``p * (2 * weight * grad)`` per tensor:
    the same numbers as autograd through the expression (bit for bit: ``2 * x`` is exact), in one
    pass per tensor instead of autograd's pow/sum/expand chain (issue 13)."""

    @staticmethod
    def forward(ctx, weight: float, *params: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        ctx.save_for_backward(*params)
        return weight * sum(p.pow(2).sum() for p in params)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        scale = 2 * (grad * ctx.weight)
        return (None, *(p * scale if need else None
                        for p, need in zip(ctx.saved_tensors, ctx.needs_input_grad[1:])))


def squared_l2(weight: float, params: list[torch.Tensor]) -> torch.Tensor:
    """``weight * sum(p.pow(2).sum() for p in params)``, differentiable (see :class:`_SquaredL2`)."""
    return _SquaredL2.apply(weight, *params)


# ---------------------------------------------------------------------------- rows batching
def row_batches(trainer: RecTrainer) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of the rows batching (``TrainingRecipe.batching == "rows"``, the DeCA authors'
    CDAE training; :class:`deca_tune.data.sampling.RowBatches`) from the trainer's generator, as
    tensors ``(users, pos, neg, neg_users)`` on its device."""
    dev = trainer.device
    for batch in trainer.rows.epoch(trainer.rng, int(trainer.spec["batch_size"]), int(trainer.spec["neg_ratio"])):
        yield tuple(torch.as_tensor(a, device=dev) for a in batch)


# ------------------------------------------------------------------ the authors' early stopping
class AuthorsEarlyStop:
    """The DeCA authors' early stopping (train.py:195-203), spec ``early_stop: authors``.

    After the optimiser step of iteration ``c`` (0-based, counted from the run's first step) with
    ``c > 0`` and ``c % early_stop_every == 0`` (their ``eval_freq`` 500): the validation loss is
    the sum over mini-batches of ``batch_size`` of the mean BCE of the target model f (eval mode)
    on their validation positives (the ``valid.rating`` file: ``meta["paper_masks"]`` of the
    ``-paper`` splits; else the protocol's selection split) plus one fresh uniform negative each
    (rejecting training positives, as their validation sampler does), shuffled together. A value
    above the previous one adds a rise (rises are never reset); the 2nd rise stops training at
    once, mid-epoch, and the current (not the best) model is the result (use ``restore_best:
    False``). The negatives and the shuffle come from their own generator, so the training stream
    is the same with and without the rule.
    """

    rounds = 2  # their early_stop_rounds

    def __init__(self, trainer: RecTrainer) -> None:
        split, spec = trainer.split, trainer.spec
        name = split.meta.get("paper_masks") or trainer.selection_metric.split("/")[0]
        self.pairs = np.asarray(getattr(split, name), dtype=np.int64)
        if not len(self.pairs):
            raise ValueError(f"early_stop authors: the {name} split of {split.name!r} is empty")
        self.split_name = name
        self.every = int(spec["early_stop_every"])
        self.batch_size = int(spec["batch_size"])
        self.sampler = SAMPLERS.get("uniform")(split)
        self.rng = np.random.default_rng([int(spec["seed"]), 500])
        self.last = float("inf")
        self.rises = 0
        self.history: list[tuple[int, float]] = []

    def after_step(self, trainer: RecTrainer) -> bool:
        """Called after every optimiser step; True when training must stop now."""
        c = trainer.step - 1
        if c <= 0 or c % self.every:
            return False
        loss = self.validation_loss(trainer)
        self.history.append((trainer.step, loss))
        rose = loss > self.last
        self.last = loss
        if rose:
            self.rises += 1
            return self.rises >= self.rounds
        return False

    @torch.no_grad()
    def validation_loss(self, trainer: RecTrainer) -> float:
        pos = self.pairs
        neg = self.sampler.sample(pos[:, 0], 1, self.rng)[:, 0]
        users = np.concatenate([pos[:, 0], pos[:, 0]])
        items = np.concatenate([pos[:, 1], neg])
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(pos))])
        order = self.rng.permutation(len(users))
        f = trainer.method.f
        was_training = f.training
        f.eval()
        try:
            dev = trainer.device
            logits = f(torch.as_tensor(users[order], device=dev), torch.as_tensor(items[order], device=dev))
        finally:
            f.train(was_training)
        target = torch.as_tensor(labels[order], device=logits.device, dtype=logits.dtype)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return float(sum(chunk.mean() for chunk in bce.split(self.batch_size)))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "last": self.last, "rises": self.rises,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.last, self.rises = float(state["last"]), int(state["rises"])
        self.history = [tuple(x) for x in state.get("history", [])]
