"""Adam for the rec loop: ``torch.optim.Adam``'s default CPU update, the same operations in the
same order (bit-identical parameters), without ``torch.optim``.

Why not ``torch.optim.Adam``: its first ``add_param_group`` imports ``torch._dynamo`` (through
``torch._disable_dynamo``), which pulls in sympy, triton and torch.distributed: about 180 MB of
resident memory and seconds of import per trial process, for a loop that never compiles
(issue 13). This class also skips the per-step Python of ``torch.optim`` (hooks, profiler
ranges, group initialisation) and runs each operation over all tensors at once (``_foreach_``
ops: the same per-tensor kernels on the CPU, so the same numbers; issue 21: DeCA's four models).

Scope: one parameter group, no weight decay (the loop adds L2 to the loss), no amsgrad, no
maximize, real tensors, ``capturable``/``differentiable`` off: the settings the rec loop uses.
The update of a tensor with a gradient is, as in ``torch.optim.adam._single_tensor_adam``::

    step += 1
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2 ** step)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** step))

:meth:`state_dict` has ``torch.optim.Adam``'s layout, and :meth:`load_state_dict` takes a
``torch.optim.Adam`` state dict (checkpoints written before this class existed resume exactly).

:class:`LazyAdam` (the ``linear`` training recipe, issue 21) is the same update restricted to the
rows a sparse gradient names (TensorFlow's ``LazyAdam``): rows not in the batch keep their
parameters and moments; the step count, and so the bias correction, is the tensor's.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

from deca_tune.models.rec.base import take_row_grads


class Adam:
    """A drop-in for ``torch.optim.Adam(params, lr, betas, eps)`` on the rec loop's path."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        if not lr > 0 or not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0 or not eps >= 0:
            raise ValueError(f"invalid Adam settings lr={lr}, betas={betas}, eps={eps}")
        #: ``torch.optim``'s view: one group; ``lr``, ``betas`` and ``eps`` are read from it each step
        self.param_groups: list[dict[str, Any]] = [
            {"params": self.params, "lr": float(lr), "betas": (float(betas[0]), float(betas[1])),
             "eps": float(eps)}]
        #: per parameter index: ``step`` (float32 CPU tensor), ``exp_avg``, ``exp_avg_sq``
        self.state: dict[int, dict[str, torch.Tensor]] = {}
        self._denoms: dict[int, torch.Tensor] = {}
        self._slots: dict[int, torch.Tensor] = {}  # LazyAdam's row slots (distinct_rows)

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        lr, eps = float(group["lr"]), float(group["eps"])
        params, grads, exp_avgs, exp_avg_sqs, step_sizes, bias_corrections2 = [], [], [], [], [], []
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients (the linear recipe hands "
                                   "tables row gradients instead, see LazyAdam)")
            step_t, exp_avg, exp_avg_sq = self._state(i, param)
            step_t += 1
            step = step_t.item()
            params.append(param)
            grads.append(grad)
            exp_avgs.append(exp_avg)
            exp_avg_sqs.append(exp_avg_sq)
            step_sizes.append(-(lr / (1 - beta1 ** step)))
            bias_corrections2.append((1 - beta2 ** step) ** 0.5)
        if not params:
            return
        # the per-tensor update above, one operation at a time over all tensors (torch's CPU
        # _foreach_ ops run the same kernels per tensor: the same numbers, less Python per step)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        denoms = [self._denom_buffer(p) for p in params]  # reused: no allocation per step
        torch._foreach_copy_(denoms, exp_avg_sqs)
        torch._foreach_sqrt_(denoms)
        torch._foreach_div_(denoms, bias_corrections2)
        torch._foreach_add_(denoms, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)

    def _denom_buffer(self, param: torch.Tensor) -> torch.Tensor:
        buf = self._denoms.get(id(param))
        if buf is None or buf.shape != param.shape or buf.device != param.device:
            buf = self._denoms[id(param)] = torch.empty_like(param)
        return buf

    def _state(self, i: int, param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state = self.state.get(i)
        if state is None:
            state = self.state[i] = {
                "step": torch.tensor(0.0, dtype=torch.float32),
                "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}
        return state["step"], state["exp_avg"], state["exp_avg_sq"]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam.state_dict()``'s layout (state by parameter index)."""
        mine = self.param_groups[0]
        group = {"lr": mine["lr"], "betas": tuple(mine["betas"]), "eps": mine["eps"], "weight_decay": 0,
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                 "differentiable": False, "fused": None, "decoupled_weight_decay": False,
                 "params": list(range(len(self.params)))}
        return {"state": {i: dict(s) for i, s in sorted(self.state.items())}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` or a ``torch.optim.Adam`` state dict of the same parameters
        (its settings included, as ``torch.optim`` does)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError(f"optimizer state has {[len(g['params']) for g in groups]} parameters "
                             f"in {len(groups)} group(s); this Adam has {len(self.params)} in one")
        group = groups[0]
        for key, expected in (("weight_decay", 0), ("amsgrad", False), ("maximize", False)):
            if group.get(key, expected) != expected:
                raise ValueError(f"optimizer state uses {key}={group[key]!r}, which this Adam lacks")
        self.param_groups[0].update({"lr": float(group["lr"]), "eps": float(group["eps"]),
                                     "betas": (float(group["betas"][0]), float(group["betas"][1]))})
        index = {pid: pos for pos, pid in enumerate(group["params"])}
        self.state = {}
        for pid, saved in state_dict["state"].items():
            i = index[pid]
            param = self.params[i]
            self.state[i] = {
                "step": torch.as_tensor(saved["step"], dtype=torch.float32).detach().to("cpu").clone(),
                "exp_avg": saved["exp_avg"].detach().to(device=param.device, dtype=param.dtype).clone(),
                "exp_avg_sq": saved["exp_avg_sq"].detach().to(device=param.device, dtype=param.dtype).clone()}


class LazyAdam(Adam):
    """:class:`Adam` that updates only the rows a sparse gradient names (the ``linear`` recipe).

    A dense gradient gets :class:`Adam`'s update. Row gradients (what
    :func:`deca_tune.models.rec.base.row_lookup` hands a table in the backward: indices and
    gradient rows) update, on the distinct rows ``r`` only, with the summed gradient ``g_r``
    (duplicates summed in backward order)::

        exp_avg[r] = lerp(exp_avg[r], g_r, 1 - beta1);  exp_avg_sq[r] = beta2 exp_avg_sq[r] + (1 - beta2) g_r^2
        param[r]  -= lr / (1 - beta1^t) * exp_avg[r] / (sqrt(exp_avg_sq[r]) / sqrt(1 - beta2^t) + eps)

    with ``t`` the tensor's step count (every step that gave it a gradient): on a row present in
    every step the operations, and so the numbers, are dense Adam's; other rows keep their
    parameters and moments until a batch touches them. Cost per step: the touched rows, not the
    table (``torch.optim.SparseAdam`` differs: another form of the update, sparse tensors, and it
    imports ``torch._dynamo``, see :class:`Adam`). A table with both (a dense gradient and row
    gradients) gets the rows added to the dense gradient and the dense update.
    """

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for p in self.params:
            take_row_grads(p)

    def _distinct(self, parts: list[tuple[torch.Tensor, torch.Tensor]], n_rows: int,
                  device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The distinct rows (increasing) of the parts' indices and, per part, each entry's
        position among them. Tables looked up with the same index tensors in a step (DeCA's
        f, g, h and h' all score the batch's pairs; the batch L2 reads the forward's rows) share
        one computation (cached for the step, keyed by the index tensors' memory)."""
        keys = [(ix.data_ptr(), ix.numel(), ix.stride(0) if ix.dim() else 0, ix._version)
                for ix, _ in parts]
        distinct_keys = list(dict.fromkeys(keys))
        cache_key = (n_rows, str(device), *distinct_keys)
        hit = self._rows_cache.get(cache_key)
        if hit is None:
            first = {key: ix for key, (ix, _) in zip(keys, parts)}
            uniq = [first[key] for key in distinct_keys]
            index = uniq[0] if len(uniq) == 1 else torch.cat(uniq)
            slots = self._slots.get((n_rows, str(device)))
            if slots is None:
                slots = self._slots[(n_rows, str(device))] = torch.zeros(n_rows, dtype=torch.long,
                                                                         device=device)
            rows, inverse = distinct_rows(index, slots)
            # rows in increasing order: the gathers and scatters of the update walk the tables
            # forwards (about 2.5x faster than in random order on a 250k-row table here)
            rows, order = rows.sort()
            rank = torch.empty_like(order)
            rank[order] = torch.arange(len(order), device=order.device)
            inverse = rank.index_select(0, inverse)
            pieces, start = {}, 0
            for key, ix in zip(distinct_keys, uniq):
                pieces[key] = inverse[start:start + len(ix)]
                start += len(ix)
            hit = self._rows_cache[cache_key] = (rows, pieces)
        rows, pieces = hit
        return rows, [pieces[key] for key in keys]

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        lr, eps = float(group["lr"]), float(group["eps"])
        self._rows_cache: dict[tuple, tuple[torch.Tensor, dict]] = {}
        for i, param in enumerate(self.params):
            parts = take_row_grads(param)
            if not parts:
                continue
            if param.grad is not None:
                for index, rows in parts:
                    param.grad.index_add_(0, index, rows.reshape(len(index), -1))
            else:
                self._row_step(i, param, parts, beta1, beta2, lr, eps)
        self._rows_cache = {}  # the index tensors' memory may be reused after the step
        super().step()

    def _row_step(self, i: int, param: torch.Tensor, parts: list[tuple[torch.Tensor, torch.Tensor]],
                  beta1: float, beta2: float, lr: float, eps: float) -> None:
        step_t, exp_avg, exp_avg_sq = self._state(i, param)
        rows, inverses = self._distinct(parts, len(param), param.device)
        g = param.new_zeros((len(rows), *param.shape[1:]))
        for (ix, values), inverse in zip(parts, inverses):  # duplicates summed in the parts' order
            g.index_add_(0, inverse, values.reshape(len(ix), -1))
        step_t += 1
        step = step_t.item()
        m = exp_avg.index_select(0, rows).lerp_(g, 1 - beta1)
        v = exp_avg_sq.index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = v.sqrt().div_((1 - beta2 ** step) ** 0.5).add_(eps)
        p = param.index_select(0, rows).addcdiv_(m, denom, value=-lr / (1 - beta1 ** step))
        exp_avg.index_copy_(0, rows, m)
        exp_avg_sq.index_copy_(0, rows, v)
        param.index_copy_(0, rows, p)


def distinct_rows(index: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, inverse)``: the distinct values of ``index`` (in no particular order) and, per
    entry, the position of its value in ``rows``, in O(len(index)) without sorting: ``slots``
    (one integer per table row, any content) gets each entry's position at its row, so all
    entries of a row read back the same winner. ``torch.unique`` sorts (3x slower here)."""
    pos = torch.arange(len(index), device=index.device)
    slots.index_put_((index,), pos)
    winner = slots.index_select(0, index)
    first = winner == pos
    compact = torch.cumsum(first, 0) - 1
    return index[first], compact.index_select(0, winner)
