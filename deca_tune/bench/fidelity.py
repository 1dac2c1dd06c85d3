"""Fidelity benchmark (issue 10, part 3): this project against the DeCA authors' code, cell by cell.

Cells: ``ml-100k-paper`` x (GMF, NeuMF, CDAE, LightGCN) and ``modcloth-paper`` x (GMF, NeuMF), x
(normal, DeCA, DeCA(p)), plus the paper's Table 5 ablations (``deca-dp``, ``deca-dn``,
``deca_p-dp``, ``deca_p-dn``) on ``modcloth-paper`` GMF (ours only), seeds 0, 1, 2.

Our side: ``--protocol paper`` and the authors' per-cell settings
(:data:`deca_tune.bench.authors.AUTHORS_CONFIG`, their configs.py) mapped to our spec
(:func:`our_spec`): epochs, early stopping (``early_stop: authors``), lambda -> ``l2``, their
``C_1`` (DP) -> ``C1``, their ``C_2`` (DN) -> ``C0``, ``alpha``, lr 1e-3, batch 2048, one
negative per positive, and the *last* model reported (``restore_best: False``), as they do;
DeCA(p)'s f' pre-training with early stopping on (their ``pretrain_ealry_stop`` is always True).
Everything else is ours (our negative sampler, f' from its own seed, DP on the first batch, our
masked eval-mode evaluation); the ``--variants`` switch single differences to the authors' way
(:data:`VARIANTS`) to show what a gap comes from.

The authors' side: their code (a checkout passed as ``--authors PATH``, never vendored), run by
:func:`deca_tune.bench.authors.run_cell`; results are read from ``--authors-results`` (one JSON
per cell, the format of ``run_cell``) and a missing cell is run there, unless their driver holds
the results folder's lock (then it is left to it).

One JSON per run in ``--ours-results`` (variants in ``variants/<name>/``); a rerun skips what
exists. The report (``--doc``, default ``docs/benchmarks-fidelity.md``) is rewritten between its
marker lines from every JSON found: per cell both sides' mean +- std of clean-test R@20 / N@20,
the distance in pooled std, seconds per epoch and the load average.

    python -m deca_tune.bench fidelity --authors PATH [--data-root DIR] [--seeds 0 1 2] [--only ...]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from deca_tune.bench import authors as A
from deca_tune.bench.formatting import mean_std

REPO = Path(__file__).resolve().parents[2]
#: the authors' data set name -> ours (their split files, read as they are)
DATASETS = {"ml-100k": "ml-100k-paper", "modcloth": "modcloth-paper"}
BACKBONES = {"ml-100k": ("gmf", "neumf", "cdae", "lightgcn"), "modcloth": ("gmf", "neumf")}
METHODS = ("normal", "deca", "deca_p")
#: Table 5 (ablations), ours only: method -> the authors' config it takes (DeCA's or DeCA(p)'s)
TABLE5 = {"deca-dp": "deca", "deca-dn": "deca", "deca_p-dp": "deca_p", "deca_p-dn": "deca_p"}
TABLE5_CELL = ("modcloth", "gmf")
#: the authors' code measured here earlier (issue 10): ML-100K NeuMF, 5 seeds, R@20 / N@20
ANCHORS = {("ml-100k", "neumf", "normal"): (0.1065, 0.0654),
           ("ml-100k", "neumf", "deca"): (0.0938, 0.0559),
           ("ml-100k", "neumf", "deca_p"): (0.1154, 0.0770)}
#: the paper's Table 2 (R@20, N@20) for the same cells, for orientation
PAPER = {("ml-100k", "gmf", "normal"): (0.095, 0.059), ("ml-100k", "gmf", "deca"): (0.109, 0.064),
         ("ml-100k", "gmf", "deca_p"): (0.099, 0.066)}

#: Variants of our side: one difference from the authors' code switched to theirs.
#: ``"{seed}"`` stands for the run's seed.
VARIANTS: dict[str, dict[str, Any]] = {
    # their training negatives are uniform over all items, positives included (their
    # ``(tensor, j) in dok_matrix`` test never matches); CDAE's rows batching has no sampler
    "authors-sampler": {"sampler": "uniform-unrejected"},
    # their DeCA(p) f' is a deepcopy of f before training: same initial weights
    "fprime-init": {"pretrain_seed": "{seed}"},
    # both of the above
    "authors-sampler+fprime-init": {"sampler": "uniform-unrejected", "pretrain_seed": "{seed}"},
    # their DeCA's first mini-batch: the mixed "both" loss, then DP, DN, ...
    "first-batch-both": {"first_batch": "both"},
    # early stopping off (to measure what their rule does)
    "no-early-stop": {"early_stop": None, "pretrain_overrides": {}},
}
#: Variants of the authors' side (keyword arguments of ``prepare_checkout``)
AUTHORS_VARIANTS: dict[str, dict[str, Any]] = {"fix-cdae-eval": {"fix_cdae_eval": True}}
#: tiny stand-ins for ``--quick`` (a test of the bench's plumbing, not a measurement)
QUICK_DATA = {"n_users": 60, "n_items": 40, "dim": 4, "like_rate": 0.2, "seed": 5}
BEGIN, END = "<!-- fidelity:begin (written by python -m deca_tune.bench fidelity) -->", "<!-- fidelity:end -->"


# ------------------------------------------------------------------------------- the cells
def cells(seeds: Iterable[int], only: list[str] | None = None, table5: bool = True) -> list[tuple[str, str, str, int]]:
    """``(dataset, backbone, method, seed)`` in run order (cheap groups first, LightGCN last);
    ``only``: ``DATASET[:BACKBONE[:METHOD]]`` patterns."""
    order = [("ml-100k", "gmf"), ("ml-100k", "neumf"), ("ml-100k", "cdae"), ("modcloth", "gmf"),
             ("modcloth", "neumf"), ("ml-100k", "lightgcn")]
    out = []
    for d, b in order:
        methods = list(METHODS) + (list(TABLE5) if table5 and (d, b) == TABLE5_CELL else [])
        out += [(d, b, m, s) for s in seeds for m in methods]
    if only:
        pats = [p.split(":") for p in only]
        out = [c for c in out if any(list(c[:len(p)]) == p for p in pats)]
    return out


def authors_config(dataset: str, backbone: str, method: str) -> dict[str, Any]:
    return A.AUTHORS_CONFIG[(dataset, backbone, TABLE5.get(method, method))]


def our_spec(dataset: str, backbone: str, method: str, seed: int, *, data_root: str | None,
             pretrain_cache: str, variant: str | None = None, quick: bool = False) -> dict[str, Any]:
    """Our spec for one cell: the authors' settings of the cell mapped to our keys."""
    cfg = authors_config(dataset, backbone, method)
    d = A.AUTHORS_DEFAULTS
    base = TABLE5.get(method, method)
    spec: dict[str, Any] = {
        "dataset": DATASETS[dataset], "protocol": "paper", "backbone": backbone, "method": method,
        "seed": int(seed), "max_epochs": int(cfg["epochs"]), "l2": float(cfg["lambda0"]),
        "lr": d["lr"], "batch_size": d["batch_size"], "neg_ratio": d["NSR"], "patience": 0,
        "restore_best": False, "early_stop": "authors" if cfg["early_stop"] else None,
        "early_stop_every": d["eval_freq"], "device": "cpu", "data_root": data_root,
        "pretrain_cache": pretrain_cache,
        # the final model is the result: per epoch only the selection split (the same training)
        "eval_splits": "selection",
    }
    if base in ("deca", "deca_p"):
        # their C_1 is "used in DP" (our C1 = C_DP), C_2 "used in DN" (our C0 = C_DN)
        spec.update(C1=float(cfg["C_1"]), C0=float(cfg["C_2"]), alpha=float(cfg["alpha"]))
        # their DeCA CDAE branch takes means where their normal CDAE sums (ours: the recipe's sum)
        spec["loss_reduction"] = "authors"
        if not cfg.get("iterative", True):
            raise NotImplementedError(f"{dataset} {backbone} {method}: iterative=False is not mapped")
    if base == "deca_p":
        # f' is pre-trained with the DeCA(p) row's epochs and lambda (inherited) and early stopping on
        spec["pretrain_overrides"] = {"early_stop": "authors"}
    if quick:
        spec.update(dataset="synthetic", dataset_options=QUICK_DATA, protocol="paper", max_epochs=1,
                    batch_size=64, early_stop_every=2, data_root=None)
    for key, value in (VARIANTS[variant] if variant else {}).items():
        spec[key] = int(seed) if value == "{seed}" else value
    return spec


def applies(variant: str | None, cell: tuple[str, str, str, int]) -> bool:
    """Whether ``variant`` changes anything for ``cell`` (else it is not run)."""
    if variant is None:
        return True
    _, backbone, method, _ = cell
    if variant == "fix-cdae-eval":
        return backbone == "cdae"
    if variant == "first-batch-both":
        return TABLE5.get(method, method) == method and method in ("deca", "deca_p")
    if variant == "fprime-init":
        return TABLE5.get(method, method) == "deca_p"
    if "sampler" in variant and backbone == "cdae":
        return "fprime" in variant and TABLE5.get(method, method) == "deca_p"  # CDAE has no sampler
    if variant == "no-early-stop":
        cfg = authors_config(*cell[:3])
        return bool(cfg["early_stop"]) or TABLE5.get(method, method) == "deca_p"
    return True


def cell_name(dataset: str, backbone: str, method: str, seed: int) -> str:
    return f"{dataset}__{backbone}__{method}__seed{seed}"


def our_path(root: Path, cell: tuple[str, str, str, int], variant: str | None) -> Path:
    return (root / "variants" / variant if variant else root) / f"{cell_name(*cell)}.json"


def authors_path(root: Path, cell: tuple[str, str, str, int], variant: str | None) -> Path:
    return (root.parent / "authors-variants" / variant if variant else root) / f"{cell_name(*cell)}.json"


# ------------------------------------------------------------------------------- our side
def run_ours(spec: dict[str, Any], model_path: Path | None = None) -> dict[str, Any]:
    """Train one spec to the end and return the last model's metrics and the costs (and save the
    final f's weights to ``model_path``)."""
    import torch

    from deca_tune.training.rec_trainer import RecTrainer

    torch.set_num_threads(1)
    t0 = time.time()
    load = [os.getloadavg()[0]]
    trainer = RecTrainer(spec)
    epochs = []
    while not trainer.finished:
        m = trainer.train_epoch()
        load.append(os.getloadavg()[0])
        epochs.append({k: m[k] for k in ("epoch", "loss", "train_seconds", "epoch_seconds",
                                         "test_clean/recall@20", "test_clean/ndcg@20") if k in m})
    last = trainer.last
    es = trainer.authors_stop
    info = trainer.pretrain_info
    authors_eval = authors_evaluation(trainer)
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in trainer.method.f.state_dict().items()}, model_path)
    return {
        "authors_eval": authors_eval, "model": str(model_path) if model_path else None,
        "spec": spec, "side": "ours",
        "recall@20": last["test_clean/recall@20"], "ndcg@20": last["test_clean/ndcg@20"],
        "test_clean": {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("test_clean/")},
        "valid_clean": {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("valid_clean/")},
        "epochs_run": trainer.epoch, "steps": trainer.step, "stopped_early": bool(trainer.stopped_early),
        "early_stop_history": list(es.history) if es is not None else None,
        "row_batching": bool(trainer.row_batching),
        "train_seconds_per_epoch": statistics.mean(e["train_seconds"] for e in epochs),
        "epoch_seconds": statistics.mean(e["epoch_seconds"] for e in epochs),
        "pretrain": {k: info.get(k) for k in ("cached", "seconds", "seed", "path")} if info else None,
        "loadavg_mean": statistics.mean(load), "wall_seconds": time.time() - t0,
        "curve": epochs[:: max(1, len(epochs) // 50)] + epochs[-1:],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
    }


def authors_evaluation(trainer: Any) -> dict[str, dict[str, float]]:
    """The final model's clean-test metrics as the authors' evaluation computes them (ours ranks
    logits, masked, eval mode):

    - ``sigmoid32``: ranked by the float32 probability ``sigmoid(logit)``, as their test ranks
      the models' sigmoid outputs (``evaluate.py``); probabilities that round to 1.0 tie, and the
      tie order is ``torch.topk``'s; same mask (train + their ``valid.rating``);
    - ``cdae_test`` (CDAE only): their ``test_CDAE`` as it runs: nothing masked, train mode
      (input dropout on, the item norm over the scored users' rows: all test users in one batch).
    """
    import numpy as np
    import torch

    from deca_tune.metrics.ranking import rank_metrics

    split, method = trainer.split, trainer.method
    relevant, mask = trainer.eval_masks()["test_clean"]
    ks = trainer.ks
    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        method.eval()
        res = rank_metrics(lambda u: torch.sigmoid(method.score_all(u).float()), relevant, mask,
                           split.n_users, split.n_items, ks, batch_users=4096, device=trainer.device)
        out["sigmoid32"] = {k: v for k, v in res.items() if k.endswith("@20")}
        if trainer.spec["backbone"] == "cdae":
            f = method.f
            f.train()
            res = rank_metrics(lambda u: torch.sigmoid(f.score_all(u).float()), relevant,
                               np.zeros((0, 2), dtype=np.int64), split.n_users, split.n_items, ks,
                               batch_users=4096, device=trainer.device)
            f.eval()
            out["cdae_test"] = {k: v for k, v in res.items() if k.endswith("@20")}
    return out


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


# --------------------------------------------------------------------------- authors' side
class AuthorsLock:
    """The authors' results folder's lock (the one their driver ``run_all.py`` holds): a cell of
    their code is run only while we hold it, so there are never two runs of their code at once."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fh = open(folder / ".lock", "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:
            self.held = False

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def run_authors(args: argparse.Namespace, cell: tuple[str, str, str, int], variant: str | None,
                prepared: dict[str | None, Path]) -> dict[str, Any]:
    if variant not in prepared:
        work = Path(args.authors_work) / (variant or "base")
        prepared[variant] = A.prepare_checkout(args.authors, work, **AUTHORS_VARIANTS.get(variant, {}))
    load0 = os.getloadavg()[0]
    res = A.run_cell(prepared[variant], *cell, data_root=Path(args.data_root) / "deca-splits",
                     timeout=args.timeout, python=args.authors_python, threads=1)
    res.update({"variant": variant, "loadavg_mean": (load0 + os.getloadavg()[0]) / 2})
    return res


# ------------------------------------------------------------------------------- the report
def _load_all(folder: Path) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    out = {}
    for p in sorted(folder.glob("*__seed*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        ds, bb, m, s = p.stem.rsplit("__", 3)
        out[(ds, bb, m, int(s[4:]))] = r
    return out


def pooled_distance(a: list[float], b: list[float]) -> float | None:
    """``|mean_a - mean_b| / sqrt((sd_a^2 + sd_b^2) / 2)``: the gap in pooled standard deviations
    (signed: ours minus theirs); None with fewer than 2 runs on a side, inf for a gap at sd 0."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = statistics.mean(a), statistics.mean(b)
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    if sd == 0:
        return 0.0 if ma == mb else math.copysign(math.inf, ma - mb)
    return (ma - mb) / sd


def _d(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}"


def _mean_of(runs: list[dict[str, Any]], key: str) -> str:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return f"{statistics.mean(vals):.2f}" if vals else "-"


def _group(results: dict, dataset: str, backbone: str, method: str) -> list[dict[str, Any]]:
    return [r for (d, b, m, _), r in sorted(results.items()) if (d, b, m) == (dataset, backbone, method)]


def report(ours_dir: Path, authors_dir: Path) -> str:
    """The Markdown tables of everything measured so far."""
    ours = _load_all(ours_dir)
    theirs = _load_all(authors_dir)
    variants = {p.name: _load_all(p) for p in sorted((ours_dir / "variants").glob("*")) if p.is_dir()}
    a_variants = {p.name: _load_all(p) for p in sorted((authors_dir.parent / "authors-variants").glob("*"))
                  if p.is_dir()}
    lines = [BEGIN, "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from `{ours_dir}` (ours) and "
             f"`{authors_dir}` (the authors' code). Clean test, R@20 / N@20 of the final model, mean ± "
             "std over seeds (n = seeds); d = (ours - theirs) / pooled std, flagged **bold** when |d| > 2. "
             "s/epoch: ours = training only (our per-epoch evaluation excluded); theirs = between their "
             "epoch markers (their early-stopping evaluations included, the final test excluded); "
             "DeCA(p) f' pre-training not included on either side. load = mean 1-min load average "
             "during our runs (2 cores; the authors' job and other sessions ran alongside).", "",
             "| data | backbone | method | n ours / theirs | R@20 ours | R@20 theirs | d R | N@20 ours | "
             "N@20 theirs | d N | epochs ours / theirs | s/epoch ours / theirs | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    flagged = []
    for d, bbs in BACKBONES.items():
        for b in bbs:
            for m in METHODS:
                o, t = _group(ours, d, b, m), _group(theirs, d, b, m)
                if not o and not t:
                    continue
                row = _row(d, b, m, o, t)
                lines.append(row[0])
                if row[1]:
                    flagged.append(f"{d} {b} {m}")
    lines += ["", "Known anchors (the authors' code here, 5 seeds, earlier session): " + "; ".join(
        f"{b} {m} {r:.4f} / {n:.4f}" for (_, b, m), (r, n) in ANCHORS.items()) + " (ML-100K).", ""]
    if flagged:
        lines += ["Cells beyond 2 pooled std: " + ", ".join(flagged) + ".", ""]
    # our models under the authors' evaluation
    ev_rows = []
    for d, bbs in BACKBONES.items():
        for b in bbs:
            for m in METHODS:
                o = [r for r in _group(ours, d, b, m) if r.get("authors_eval")]
                t = _group(theirs, d, b, m)
                if not o:
                    continue
                cols = []
                for kind in ("sigmoid32", "cdae_test"):
                    rs = [r["authors_eval"][kind] for r in o if kind in r["authors_eval"]]
                    if not rs:
                        cols.append("- | - | - | -")
                        continue
                    r_o, n_o = [x["recall@20"] for x in rs], [x["ndcg@20"] for x in rs]
                    cols.append(f"{mean_std(r_o)} | {_d(pooled_distance(r_o, [x['recall@20'] for x in t]))} | "
                                f"{mean_std(n_o)} | {_d(pooled_distance(n_o, [x['ndcg@20'] for x in t]))}")
                ev_rows.append(f"| {d} | {b} | {m} | {len(o)} | " + " | ".join(cols) + " |")
    if ev_rows:
        lines += ["### Our final models under the authors' evaluation", "",
                  "Same models as above, evaluated as the authors' test does: ranked by the float32 "
                  "probability sigmoid(logit) (their models output probabilities; values that round to "
                  "1.0 tie and `torch.topk` orders the ties), same mask; for CDAE also their `test_CDAE` "
                  "as it runs (nothing masked, dropout on). d against the authors' runs.", "",
                  "| data | backbone | method | n | R@20 sigmoid32 | d R | N@20 sigmoid32 | d N | "
                  "R@20 their CDAE test | d R | N@20 their CDAE test | d N |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|", *ev_rows, ""]
    # Table 5
    t5 = [(m, _group(ours, *TABLE5_CELL, m)) for m in ["deca", "deca_p", *TABLE5]]
    if any(rs for m, rs in t5 if m in TABLE5):
        lines += ["### Table 5 (ablations), modcloth-paper GMF, ours", "",
                  "| method | n | R@20 | N@20 | epochs | s/epoch |", "|---|---|---|---|---|---|"]
        for m, rs in t5:
            if rs:
                lines.append(f"| {m} | {len(rs)} | {mean_std([r['recall@20'] for r in rs])} | "
                             f"{mean_std([r['ndcg@20'] for r in rs])} | {_mean_of(rs, 'epochs_run')} | "
                             f"{_mean_of(rs, 'train_seconds_per_epoch')} |")
        lines.append("")
    # variants
    if variants or a_variants:
        lines += ["### Investigations: one difference switched", "",
                  "Ours with one setting switched to the authors' way (`variants/<name>`), d against "
                  "the authors' unmodified runs of the cell; or the authors' code with a fix "
                  "(`authors-variants/<name>`), d against our base runs of the cell.", "",
                  "| data | backbone | method | variant | side | n | R@20 | d R | N@20 | d N | against | s/epoch |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for side, table in (("ours", variants), ("authors", a_variants)):
            for name, res in table.items():
                keys = sorted({(d, b, m) for d, b, m, _ in res})
                for d, b, m in keys:
                    rs, t = _group(res, d, b, m), _group(theirs if side == "ours" else ours, d, b, m)
                    r_o, n_o = [r["recall@20"] for r in rs], [r["ndcg@20"] for r in rs]
                    r_t, n_t = [r["recall@20"] for r in t], [r["ndcg@20"] for r in t]
                    spe = "train_seconds_per_epoch" if side == "ours" else "seconds_per_epoch"
                    lines.append(f"| {d} | {b} | {m} | {name} | {side} | {len(rs)} | {mean_std(r_o)} | "
                                 f"{_d(pooled_distance(r_o, r_t))} | {mean_std(n_o)} | "
                                 f"{_d(pooled_distance(n_o, n_t))} | {'theirs' if side == 'ours' else 'ours'} | "
                                 f"{_mean_of(rs, spe)} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _row(d: str, b: str, m: str, o: list[dict], t: list[dict]) -> tuple[str, bool]:
    r_o, n_o = [r["recall@20"] for r in o], [r["ndcg@20"] for r in o]
    r_t, n_t = [r["recall@20"] for r in t], [r["ndcg@20"] for r in t]
    dr, dn = pooled_distance(r_o, r_t), pooled_distance(n_o, n_t)
    flag = any(x is not None and abs(x) > 2 for x in (dr, dn))
    fmt = lambda x: f"**{_d(x)}**" if x is not None and abs(x) > 2 else _d(x)  # noqa: E731
    ep_o = _mean_of(o, "epochs_run")
    ep_t = _mean_of(t, "epochs_run")
    row = (f"| {d} | {b} | {m} | {len(o)} / {len(t)} | {mean_std(r_o)} | {mean_std(r_t)} | {fmt(dr)} | "
           f"{mean_std(n_o)} | {mean_std(n_t)} | {fmt(dn)} | {ep_o} / {ep_t} | "
           f"{_mean_of(o, 'train_seconds_per_epoch')} / {_mean_of(t, 'seconds_per_epoch')} | "
           f"{_mean_of(o, 'loadavg_mean')} |")
    return row, flag


def write_doc(doc: Path, body: str) -> None:
    """Replace the text between the marker lines of ``doc`` (or create it around ``body``)."""
    text = doc.read_text() if doc.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + body + tail
    else:
        text = (text or "# Fidelity to the DeCA authors' code\n\n") + body + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m deca_tune.bench fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--authors", default=None, help="a checkout of github.com/wangyu-ustc/DeCA (to run missing cells)")
    ap.add_argument("--authors-results", default="/work/fidelity/authors", help="their results, one JSON per cell")
    ap.add_argument("--authors-work", default=None, help="scratch folder for their patched code (default: "
                                                         "<authors-results>/../authors-work)")
    ap.add_argument("--authors-python", default=os.environ.get("DECA_AUTHORS_PYTHON", sys.executable),
                    help="interpreter for their code (needs torch, numpy, pandas, scipy)")
    ap.add_argument("--ours-results", default="/work/fidelity/ours", help="our results, one JSON per run")
    ap.add_argument("--data-root", default=None, help="data root holding deca-splits/ (default: $DECA_TUNE_DATA)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", default=None, help="DATASET[:BACKBONE[:METHOD]] patterns")
    ap.add_argument("--variants", nargs="*", default=[], choices=[*VARIANTS, *AUTHORS_VARIANTS],
                    help="run these variants (instead of the base cells) for the selected cells")
    ap.add_argument("--sides", nargs="+", default=["ours", "authors"], choices=["ours", "authors"])
    ap.add_argument("--no-table5", action="store_true", help="leave out the Table 5 ablations")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the report")
    ap.add_argument("--upgrade", action="store_true",
                    help="also rerun our finished runs recorded without the authors' evaluation "
                         "(runs are deterministic: the same numbers plus the missing entries)")
    ap.add_argument("--doc", default=str(REPO / "docs" / "benchmarks-fidelity.md"))
    ap.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds per cell of their code")
    ap.add_argument("--quick", action="store_true",
                    help="plumbing check: tiny synthetic data and 1 epoch for our side (authors' side "
                         "read from --authors-results, never run)")
    args = ap.parse_args(argv)
    if args.data_root is None:
        args.data_root = os.environ.get("DECA_TUNE_DATA") or str(REPO.parent / "shared" / "data")
    if args.authors_work is None:
        args.authors_work = str(Path(args.authors_results).resolve().parent / "authors-work")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ours_dir, authors_dir = Path(args.ours_results), Path(args.authors_results)
    todo = cells(args.seeds, args.only, table5=not args.no_table5)
    failures = 0
    if not args.report_only:
        failures = run_all(args, todo, ours_dir, authors_dir)
    write_doc(Path(args.doc), report(ours_dir, authors_dir))
    print(f"report: {args.doc}", flush=True)
    return 1 if failures else 0


def _log(msg: str) -> None:
    print(f"{time.strftime('%F %T')} {msg}", flush=True)


def run_all(args: argparse.Namespace, todo: list, ours_dir: Path, authors_dir: Path) -> int:
    failures = 0
    cache = str(ours_dir / "pretrained")
    our_variants = [v for v in args.variants if v in VARIANTS] or ([None] if not args.variants else [])
    their_variants = [v for v in args.variants if v in AUTHORS_VARIANTS] or ([None] if not args.variants else [])
    if "ours" in args.sides:
        for variant in our_variants:
            for cell in todo:
                path = our_path(ours_dir, cell, variant)
                if path.exists() and not (args.upgrade and "authors_eval" not in json.loads(path.read_text())):
                    continue
                if not applies(variant, cell):
                    continue
                name = cell_name(*cell) + (f" [{variant}]" if variant else "")
                _log(f"start ours {name}")
                try:
                    spec = our_spec(*cell, data_root=args.data_root, pretrain_cache=cache,
                                    variant=variant, quick=args.quick)
                    res = run_ours(spec, model_path=ours_dir / "models" / (variant or "base") /
                                   f"{cell_name(*cell)}.pt")
                    res["variant"] = variant
                except Exception as exc:  # keep going; retried on the next run
                    failures += 1
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.with_suffix(".error.txt").write_text(traceback.format_exc())
                    _log(f"FAILED ours {name}: {exc}")
                    continue
                _write_json(path, res)
                path.with_suffix(".error.txt").unlink(missing_ok=True)
                _log(f"done ours {name}: R@20 {res['recall@20']:.4f} N@20 {res['ndcg@20']:.4f} epochs "
                     f"{res['epochs_run']} s/epoch {res['train_seconds_per_epoch']:.2f} wall {res['wall_seconds']:.0f}s")
    if "authors" in args.sides and not args.quick:
        failures += _run_authors_side(args, todo, authors_dir, their_variants)
    return failures


def _run_authors_side(args: argparse.Namespace, todo: list, authors_dir: Path, variants: list) -> int:
    missing = [(c, v) for v in variants for c in todo
               if c[2] in METHODS and applies(v, c) and not authors_path(authors_dir, c, v).exists()]
    if not missing:
        return 0
    if args.authors is None:
        _log(f"{len(missing)} runs of the authors' code missing; pass --authors PATH to run them")
        return 0
    # the base cells go to their results folder: only while we hold its lock (their driver holds
    # it while it runs); variants go to their own folders and run in this process, one at a time
    lock = AuthorsLock(authors_dir) if any(v is None for _, v in missing) else None
    if lock is not None and not lock.held:
        n = sum(v is None for _, v in missing)
        _log(f"{authors_dir / '.lock'} is held (their driver is running): {n} base cells left to it")
        missing = [(c, v) for c, v in missing if v is not None]
    failures = 0
    prepared: dict[str | None, Path] = {}
    try:
        for cell, variant in missing:
            path = authors_path(authors_dir, cell, variant)
            name = cell_name(*cell) + (f" [{variant}]" if variant else "")
            _log(f"start authors {name}")
            try:
                res = run_authors(args, cell, variant, prepared)
            except Exception as exc:
                failures += 1
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".error.txt").write_text(traceback.format_exc())
                _log(f"FAILED authors {name}: {exc}")
                continue
            log = Path(res["log"])
            if log.exists():
                (path.parent / "logs").mkdir(parents=True, exist_ok=True)
                keep = path.parent / "logs" / f"{cell_name(*cell)}.log"
                shutil.copy2(log, keep)
                shutil.rmtree(log.parent, ignore_errors=True)  # the cell's data copy and output folder
                res["log"] = str(keep)
            _write_json(path, res)
            path.with_suffix(".error.txt").unlink(missing_ok=True)
            _log(f"done authors {name}: R@20 {res['recall@20']:.4f} N@20 {res['ndcg@20']:.4f} "
                 f"wall {res['wall_seconds']:.0f}s")
    finally:
        if lock is not None:
            lock.release()
    return failures


if __name__ == "__main__":
    sys.exit(main())
