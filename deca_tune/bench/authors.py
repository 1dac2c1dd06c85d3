"""Run the DeCA authors' public code (github.com/wangyu-ustc/DeCA, commit 8b04aa8) on CPU, one cell
at a time, and parse what it prints: the reference side of the fidelity benchmark.

Nothing of their code lives in this project. Given the PATH of a checkout of their repository,
:func:`prepare_checkout` copies it into a scratch work dir (PATH is never modified) and applies a
few small, documented text substitutions (:data:`PATCHES`): CPU device, ``torch.load(...,
weights_only=False)``, one torch thread, an optional epoch cap, and timestamped marker lines for
the parser. Every substitution checks that its target text occurs exactly as expected and fails
with :class:`PatchError` naming the file otherwise. :func:`run_cell` then runs one
``(dataset, backbone, method, seed)`` cell of their ``main.py --default`` as a subprocess and
:func:`parse_output` turns its stdout into a dict.

Their code needs ``scipy`` (not a dependency of this project): pass ``python=`` an interpreter
that has torch, numpy, pandas and scipy.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: our backbone name -> the ``--model`` name their code (and their configs.py keys) use.
#: NB: their README says ``NeuMF`` but configs.py only has ``NeuMF-end`` keys (``--default`` would
#: raise KeyError for ``NeuMF``); NCF(model="NeuMF-end") is NeuMF without GMF/MLP pre-training.
MODEL_NAMES: dict[str, str] = {"gmf": "GMF", "neumf": "NeuMF-end", "cdae": "CDAE", "lightgcn": "LightGCN"}
#: our method name -> their ``--method`` value (None: the flag is left out = normal training)
METHOD_FLAGS: dict[str, str | None] = {"normal": None, "deca": "DeCA", "deca_p": "DeCAp"}
DATASETS: tuple[str, ...] = ("ml-100k", "modcloth")
#: the K values of their metrics (utils.py:get_top_k; electronics uses 5, 10, 20, 50)
TOP_K: dict[str, tuple[int, ...]] = {"ml-100k": (3, 5, 10, 20), "modcloth": (3, 5, 10, 20),
                                     "adressa": (3, 5, 10, 20), "electronics": (5, 10, 20, 50)}

#: Settings their ``--default`` path uses for every cell (main.py:133-145 builds ``param`` from
#: configs.py only, so everything else falls back to the ``param.get(..., default)`` values in
#: main.py / train.py, NOT to the argparse defaults of main.py:97-127).
AUTHORS_DEFAULTS: dict[str, Any] = {
    "lr": 0.001,             # train.py:46, Adam for f, h, h', g (train.py:60-63), no weight decay
    "batch_size": 2048,      # main.py:46/49 (pairs), train.py:122 (CDAE: users per batch)
    "NSR": 1,                # negatives per positive, main.py:43 / train.py:37
    "eval_freq": 500,        # train.py:39 (argparse's 100 is not used with --default)
    "early_stop_rounds": 2,  # train.py:43: stop at the 2nd (not necessarily consecutive) rise
    "emb_dim": 32,           # h-models (MF) and DeCA's g (MF), train.py:44-58
    "factor_num": 32,        # GMF / NeuMF embedding size, main.py:81
    "num_layers": 3,         # NeuMF tower, main.py:81
    "dropout": 0.0,          # NeuMF tower, main.py:81
    "pretrain_early_stop": True,  # DeCA(p)'s f' pre-training, train.py:42 (key typo: always True)
    "denoise_type": "both",  # first batch of DeCA / DeCA(p), then DP, DN, DP, ... (train.py:149-150)
    "h_model": "MF",
    "cdae_hidden": 32, "cdae_corruption": 0.5, "cdae_act": "tanh",  # CDAE.py:28-29 (main.py:77 uses defaults)
    "lightgcn_dim": 64, "lightgcn_layers": 3, "lightgcn_init_std": 0.1,  # LightGCN.py:39-48, 73-74
}

# Their configs.py (commit 8b04aa8), as data: DeCA_configs (configs.py:1-113),
# DeCAp_configs (configs.py:115-227), baseline_configs (configs.py:230-246), lambdas (configs.py:249-266).
# Keys: (their model name, dataset). 'iterative' is True everywhere except DeCAp LightGCN adressa.
_DECA = {
    ("GMF", "ml-100k"): dict(C_1=1000, C_2=1000, epochs=20, early_stop=False, lambda0=0.1, alpha=1),
    ("NeuMF-end", "ml-100k"): dict(C_1=1000, C_2=10, epochs=100, early_stop=False, lambda0=0.01, alpha=1),
    ("CDAE", "ml-100k"): dict(C_1=1000, C_2=100, epochs=400, early_stop=False, lambda0=1.0, alpha=0.5),
    ("LightGCN", "ml-100k"): dict(C_1=100, C_2=100, epochs=150, early_stop=True, lambda0=0.1, alpha=0.0),
    ("GMF", "modcloth"): dict(C_1=100, C_2=10, epochs=40, early_stop=False, lambda0=0.1, alpha=0),
    ("NeuMF-end", "modcloth"): dict(C_1=1000, C_2=10, epochs=40, early_stop=False, lambda0=10, alpha=0.5),
    ("CDAE", "modcloth"): dict(C_1=1000, C_2=100, epochs=40, early_stop=True, lambda0=1, alpha=0),
    ("LightGCN", "modcloth"): dict(C_1=1000, C_2=10, epochs=60, early_stop=False, lambda0=0.1, alpha=0),
    ("GMF", "adressa"): dict(C_1=100, C_2=10, epochs=15, early_stop=False, lambda0=0.0, alpha=1),
    ("NeuMF-end", "adressa"): dict(C_1=1000, C_2=10, epochs=30, early_stop=True, lambda0=1, alpha=0),
    ("CDAE", "adressa"): dict(C_1=1000, C_2=10, epochs=50, early_stop=False, lambda0=0, alpha=0),
    ("LightGCN", "adressa"): dict(C_1=10, C_2=1000, epochs=15, early_stop=True, lambda0=10, alpha=0),
    ("GMF", "electronics"): dict(C_1=1000, C_2=10, epochs=15, early_stop=False, lambda0=0.01, alpha=1),
    ("NeuMF-end", "electronics"): dict(C_1=100, C_2=10, epochs=15, early_stop=False, lambda0=1000, alpha=0.5),
    ("CDAE", "electronics"): dict(C_1=100, C_2=10, epochs=15, early_stop=True, lambda0=0.1, alpha=0),
    ("LightGCN", "electronics"): dict(C_1=1000, C_2=10, epochs=10, early_stop=False, lambda0=0.01, alpha=1),
}
_DECAP = {
    ("GMF", "ml-100k"): dict(C_1=1000, C_2=1000, epochs=20, early_stop=False, lambda0=0.1, alpha=1),
    ("NeuMF-end", "ml-100k"): dict(C_1=100, C_2=10, epochs=100, early_stop=True, lambda0=0.0, alpha=1),
    ("CDAE", "ml-100k"): dict(C_1=1000, C_2=10, epochs=500, early_stop=False, lambda0=1, alpha=1),
    ("LightGCN", "ml-100k"): dict(C_1=1, C_2=1, epochs=150, early_stop=True, lambda0=0.0, alpha=1.0),
    ("GMF", "modcloth"): dict(C_1=100, C_2=10, epochs=40, early_stop=False, lambda0=0.1, alpha=1),
    ("NeuMF-end", "modcloth"): dict(C_1=1000, C_2=10, epochs=40, early_stop=True, lambda0=10, alpha=1),
    ("CDAE", "modcloth"): dict(C_1=1000, C_2=100, epochs=40, early_stop=True, lambda0=1, alpha=1),
    ("LightGCN", "modcloth"): dict(C_1=10, C_2=10, epochs=60, early_stop=True, lambda0=0.1, alpha=0.5),
    ("GMF", "adressa"): dict(C_1=1000, C_2=10, epochs=10, early_stop=False, lambda0=0.01, alpha=1),
    ("NeuMF-end", "adressa"): dict(C_1=100, C_2=10, epochs=30, early_stop=True, lambda0=1, alpha=1),
    ("CDAE", "adressa"): dict(C_1=100, C_2=10, epochs=50, early_stop=False, lambda0=0, alpha=1),
    ("LightGCN", "adressa"): dict(C_1=1000, C_2=10, epochs=15, early_stop=True, lambda0=0.01, alpha=0.5,
                                  iterative=False),
    ("GMF", "electronics"): dict(C_1=1000, C_2=10, epochs=10, early_stop=False, lambda0=0.01, alpha=1),
    ("NeuMF-end", "electronics"): dict(C_1=100, C_2=10, epochs=10, early_stop=True, lambda0=1000, alpha=0),
    ("CDAE", "electronics"): dict(C_1=100, C_2=10, epochs=15, early_stop=True, lambda0=0.1, alpha=0),
    ("LightGCN", "electronics"): dict(C_1=1000, C_2=10, epochs=10, early_stop=False, lambda0=0.01, alpha=1),
}
_NORMAL = {  # baseline_configs + lambdas[(model, dataset, 'normal')]
    ("GMF", "ml-100k"): dict(epochs=20, early_stop=True, lambda0=0.1),
    ("NeuMF-end", "ml-100k"): dict(epochs=100, early_stop=True, lambda0=0.01),
    ("CDAE", "ml-100k"): dict(epochs=200, early_stop=False, lambda0=1.0),
    ("LightGCN", "ml-100k"): dict(epochs=200, early_stop=True, lambda0=0.01),
    ("GMF", "modcloth"): dict(epochs=40, early_stop=True, lambda0=0.1),
    ("NeuMF-end", "modcloth"): dict(epochs=40, early_stop=True, lambda0=10),
    ("CDAE", "modcloth"): dict(epochs=40, early_stop=False, lambda0=1),
    ("LightGCN", "modcloth"): dict(epochs=40, early_stop=False, lambda0=0.1),
    ("GMF", "adressa"): dict(epochs=10, early_stop=True, lambda0=0.01),
    ("NeuMF-end", "adressa"): dict(epochs=10, early_stop=True, lambda0=1),
    ("CDAE", "adressa"): dict(epochs=50, early_stop=True, lambda0=1),
    ("LightGCN", "adressa"): dict(epochs=15, early_stop=False, lambda0=0.01),
    ("GMF", "electronics"): dict(epochs=10, early_stop=True, lambda0=0.01),
    ("NeuMF-end", "electronics"): dict(epochs=10, early_stop=False, lambda0=100),
    ("CDAE", "electronics"): dict(epochs=15, early_stop=False, lambda0=0.1),
    ("LightGCN", "electronics"): dict(epochs=10, early_stop=False, lambda0=0.01),
}
_OURS = {v: k for k, v in MODEL_NAMES.items()}


def _build_config() -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for method, table in (("normal", _NORMAL), ("deca", _DECA), ("deca_p", _DECAP)):
        for (model, dataset), cfg in table.items():
            entry = {"iterative": True, **cfg} if method != "normal" else dict(cfg)
            out[(dataset, _OURS[model], method)] = entry
    return out


#: (dataset, backbone, method) -> the settings their ``--default`` run uses for that cell
#: (cited from their configs.py, commit 8b04aa8; see the tables above). The L2 term is
#: ``lambda0 * 1/2 * sum ||p||^2 / n_users`` over all of f's parameters for GMF/NeuMF/LightGCN
#: (train.py:173-178, 184-188) but ``lambda0 * sum ||p||_2`` (unsquared, not divided) for CDAE
#: (train.py:255-256, 293-294). Global settings are in :data:`AUTHORS_DEFAULTS`.
AUTHORS_CONFIG: dict[tuple[str, str, str], dict[str, Any]] = _build_config()


class PatchError(RuntimeError):
    """A patch target was not found (or not found the expected number of times) in a file."""


class AuthorsRunError(RuntimeError):
    """Their program failed, timed out, or printed no result."""


@dataclass(frozen=True)
class Patch:
    """Replace ``old`` by ``new`` in ``file``; ``old`` must occur exactly ``count`` times."""
    file: str
    old: str
    new: str
    why: str
    count: int = 1


#: The CPU patches, applied in order. Markers printed by the patched code start with ``DECA_AUTHORS_``.
PATCHES: tuple[Patch, ...] = (
    Patch("main.py",
          "def main(param):\n",
          "def main(param):\n"
          "    torch.set_num_threads(int(os.environ.get('DECA_AUTHORS_THREADS', '1')))  # deca_tune patch\n",
          "torch thread count (env DECA_AUTHORS_THREADS, default 1)"),
    Patch("main.py",
          "param['device'] = 'cuda' if torch.cuda.is_available() else 'cpu'",
          "param['device'] = os.environ.get('DECA_AUTHORS_DEVICE', 'cpu')  # deca_tune patch",
          "device -> cpu (env DECA_AUTHORS_DEVICE) even where CUDA is visible"),
    Patch("main.py", "torch.load(GMF_folder)", "torch.load(GMF_folder, weights_only=False)",
          "torch>=2.6 loads only weights by default (NeuMF-pre only; unused)"),
    Patch("main.py", "torch.load(MLP_folder)", "torch.load(MLP_folder, weights_only=False)",
          "torch>=2.6 loads only weights by default (NeuMF-pre only; unused)"),
    Patch("main.py",
          "        main(param)\n",
          "        _deca_res = main(param)  # deca_tune patch: print full-precision results\n"
          "        print('DECA_AUTHORS_RESULT', ' '.join(repr(float(x)) for x in _deca_res), flush=True)\n",
          "print precision/recall/NDCG/MRR at every K unrounded (their own print keeps 4 decimals)"),
    Patch("train.py", "train_matrix, device='cuda')", "train_matrix, device=self.device)",
          "evaluate.test_CDAE was called with a hard-coded device='cuda'"),
    Patch("train.py", "user_pos, self.top_k, device='cuda')", "user_pos, self.top_k, device=self.device)",
          "evaluate.test_all_users was called with a hard-coded device='cuda'"),
    Patch("train.py",
          ".ckpt\")).to(self.device)",
          ".ckpt\"), weights_only=False).to(self.device)",
          "DeCA(p)'s cached f' is a whole pickled module: torch>=2.6 would fail (silently, inside "
          "their try/except) and re-pretrain every time", count=2),
    Patch("train.py",
          "            for epoch in range(self.param['epochs']):\n",
          "            for epoch in range(self.param['epochs']):\n"
          "                print('DECA_AUTHORS_EPOCH', 'aux' if model is self.aux_model else 'main', epoch,"
          " __import__('time').time(), flush=True)  # deca_tune patch\n",
          "timestamped epoch marker in RS_train (GMF / NeuMF / LightGCN)"),
    Patch("train.py",
          "            for epoch in range(epochs):\n",
          "            for epoch in range(epochs):\n"
          "                print('DECA_AUTHORS_EPOCH', 'aux' if model is self.aux_model else 'main', epoch,"
          " __import__('time').time(), flush=True)  # deca_tune patch\n",
          "timestamped epoch marker in CDAE_train"),
    Patch("train.py",
          "        print(\"############################## Training End. ##############################\")\n",
          "        print('DECA_AUTHORS_TRAIN_END', __import__('time').time(), flush=True)  # deca_tune patch\n"
          "        print(\"############################## Training End. ##############################\")\n",
          "timestamp at the end of training (before the test evaluation)"),
    Patch("configs.py",
          "\n return param",
          "\n if __import__('os').environ.get('DECA_AUTHORS_EPOCHS'):  # deca_tune patch: epoch cap\n"
          "  param['epochs'] = min(param['epochs'], int(__import__('os').environ['DECA_AUTHORS_EPOCHS']))\n"
          " return param",
          "optional epoch cap (env DECA_AUTHORS_EPOCHS) for cost measurements; unset = their epochs"),
)

#: Optional fix of their CDAE test, for the measurement of its effect only (``prepare_checkout(...,
#: fix_cdae_eval=True)``, applied after :data:`PATCHES`): their ``test_CDAE`` discards its mask
#: (``masked_fill`` is not in place, evaluate.py:71) and the CDAE module is never put in eval mode
#: (dropout 0.5 on the test input). Fixed: train + ``valid.rating`` items masked (their ``user_pos``,
#: what ``test_all_users`` masks for every other backbone) and ``model.eval()`` before the test.
FIX_CDAE_EVAL: tuple[Patch, ...] = (
    Patch("evaluate.py",
          "        batch_pred_matrix.masked_fill(input_matrix.to(device).bool(), float('-inf'))\n",
          "        batch_pred_matrix = batch_pred_matrix.detach().clone()  # deca_tune fix_cdae_eval\n"
          "        for _r, _u in enumerate(user_idx.tolist()):  # mask train + valid.rating (user_pos)\n"
          "            batch_pred_matrix[_r, user_pos.get(_u, [])] = float('-inf')\n",
          "fix_cdae_eval: mask train + valid.rating items in the CDAE test (their mask is discarded)"),
    Patch("train.py",
          "        if isinstance(self.model, CDAE):\n            clean_precision, clean_recall, clean_NDCG, clean_MRR \\\n",
          "        if isinstance(self.model, CDAE):\n            self.model.eval()  # deca_tune fix_cdae_eval\n"
          "            clean_precision, clean_recall, clean_NDCG, clean_MRR \\\n",
          "fix_cdae_eval: CDAE in eval mode (no input dropout) for the test"),
)

PATCH_RECORD = "DECA_TUNE_PATCHES.json"
_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "output", "*.pyc")


def apply_patches(root: Path, patches: tuple[Patch, ...] = PATCHES) -> list[dict[str, str]]:
    """Apply ``patches`` to the files under ``root`` in place; raise :class:`PatchError` naming
    the file if a target is missing or occurs a different number of times than expected."""
    texts: dict[str, str] = {}
    done: list[dict[str, str]] = []
    for p in patches:
        path = root / p.file
        if p.file not in texts:
            if not path.is_file():
                raise PatchError(f"{path}: file to patch not found ({p.why})")
            texts[p.file] = path.read_text()
        found = texts[p.file].count(p.old)
        if found != p.count:
            raise PatchError(f"{path}: patch target {p.old!r} found {found} times, expected {p.count} "
                             f"({p.why}); is this the authors' commit 8b04aa8?")
        texts[p.file] = texts[p.file].replace(p.old, p.new)
        done.append({"file": p.file, "why": p.why})
    for name, text in texts.items():
        (root / name).write_text(text)
    return done


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_checkout(path: str | Path, workdir: str | Path, *, fix_cdae_eval: bool = False) -> Path:
    """Copy the authors' checkout at ``path`` to ``workdir/DeCA`` (replacing an earlier copy),
    patch the copy for CPU and return its path; ``path`` itself is never modified.
    ``fix_cdae_eval``: also apply :data:`FIX_CDAE_EVAL` (a variant for measurements; use its own
    ``workdir``)."""
    src = Path(path).resolve()
    if not (src / "main.py").is_file() or not (src / "train.py").is_file():
        raise FileNotFoundError(f"{src}: not a checkout of the DeCA authors' repository (no main.py/train.py)")
    dest = Path(workdir).resolve() / "DeCA"
    if dest == src or src in dest.parents:
        raise ValueError(f"workdir {workdir} must be outside the checkout {src}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest, ignore=_IGNORE, symlinks=False)
    patches = PATCHES + (FIX_CDAE_EVAL if fix_cdae_eval else ())
    done = apply_patches(dest, patches)
    originals = {f: _sha256(src / f) for f in sorted({p.file for p in patches})}
    (dest / PATCH_RECORD).write_text(json.dumps({"source": str(src), "source_sha256": originals,
                                                 "patches": done}, indent=1))
    return dest


def _literal_dicts(source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def read_authors_configs(path: str | Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Read their configs.py (a file or a checkout dir) without executing it and return it in
    the form of :data:`AUTHORS_CONFIG`, so the two can be compared."""
    p = Path(path)
    p = p / "configs.py" if p.is_dir() else p
    d = _literal_dicts(p.read_text())
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for method, name in (("deca", "DeCA_configs"), ("deca_p", "DeCAp_configs")):
        for (model, dataset), cfg in d[name].items():
            out[(dataset, _OURS.get(model, model), method)] = dict(cfg)
    for (model, dataset), cfg in d["baseline_configs"].items():
        lam = d["lambdas"].get((model, dataset, "normal"))
        if lam is not None:
            out[(dataset, _OURS.get(model, model), "normal")] = {**cfg, "lambda0": lam}
    return out


def config_mismatches(path: str | Path) -> list[str]:
    """Differences between their configs.py at ``path`` and :data:`AUTHORS_CONFIG` (empty: same)."""
    theirs = read_authors_configs(path)
    msgs = [f"{k}: ours {AUTHORS_CONFIG.get(k)} theirs {theirs.get(k)}"
            for k in sorted(set(theirs) | set(AUTHORS_CONFIG)) if theirs.get(k) != AUTHORS_CONFIG.get(k)]
    return msgs


def build_command(prepared: Path, dataset: str, backbone: str, method: str, seed: int,
                  datadir: Path, folder: Path, python: str) -> list[str]:
    """The command line of one cell (run with cwd = ``prepared``)."""
    cmd = [python, "-u", "main.py", "--default", "--model", MODEL_NAMES[backbone], "--dataset", dataset,
           "--seed", str(int(seed)), "--datadir", str(datadir), "--folder", str(folder)]
    flag = METHOD_FLAGS[method]
    if flag is not None:
        cmd += ["--method", flag]
    return cmd


_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf"
_UFLOAT = r"\d+\.\d+|nan"


def _epoch_stats(marks: list[tuple[int, float]], end: float | None) -> dict[str, Any]:
    times = [t for _, t in marks] + ([end] if end is not None else [])
    durations = [b - a for a, b in zip(times, times[1:])]
    return {"epochs_run": len(marks),
            "seconds_per_epoch": (sum(durations) / len(durations)) if durations else None,
            "seconds": (times[-1] - times[0]) if len(times) > 1 else None}


def parse_output(text: str, top_k: tuple[int, ...] = (3, 5, 10, 20)) -> dict[str, Any]:
    """Parse the stdout of one (patched or unpatched) run of their ``main.py``.

    Metrics come from the ``DECA_AUTHORS_RESULT`` line (full precision: precision, recall, NDCG,
    MRR at each K) when present, else from their ``Recall a-b-c-d`` / ``NDCG a-b-c-d`` lines (4
    decimals). Epoch counts and seconds per epoch come from the ``DECA_AUTHORS_EPOCH`` markers
    (``aux`` = DeCA(p)'s f' pre-training, ``main`` = the reported model)."""
    out: dict[str, Any] = {"top_k": list(top_k)}
    m = re.search(r"^DECA_AUTHORS_RESULT (.+)$", text, re.M)
    if m:
        vals = [float(x) for x in m.group(1).split()]
        n = len(top_k)
        if len(vals) != 4 * n:
            raise ValueError(f"DECA_AUTHORS_RESULT has {len(vals)} numbers, expected {4 * n}")
        for j, name in enumerate(("precision", "recall", "ndcg", "mrr")):
            out[name] = {str(k): vals[j * n + i] for i, k in enumerate(top_k)}
        out["metrics_source"] = "DECA_AUTHORS_RESULT"
    else:
        for name, label in (("recall", "Recall"), ("ndcg", "NDCG")):
            mm = re.findall(rf"^{label} ((?:{_UFLOAT})(?:-(?:{_UFLOAT}))*)\s*$", text, re.M)
            if mm:
                vals = [float(x) for x in mm[-1].split("-")]  # unsigned: '-' separates K values
                out[name] = {str(k): v for k, v in zip(top_k, vals)}
        if "recall" in out:
            out["metrics_source"] = "printed (4 decimals)"
    k_main = str(20 if 20 in top_k else top_k[-1])
    out["recall@20"] = out.get("recall", {}).get(k_main)
    out["ndcg@20"] = out.get("ndcg", {}).get(k_main)
    marks: dict[str, list[tuple[int, float]]] = {"aux": [], "main": []}
    for phase, ep, t in re.findall(r"^DECA_AUTHORS_EPOCH (aux|main) (\d+) (\S+)$", text, re.M):
        marks[phase].append((int(ep), float(t)))
    m = re.search(r"^DECA_AUTHORS_TRAIN_END (\S+)$", text, re.M)
    train_end = float(m.group(1)) if m else None
    main_start = marks["main"][0][1] if marks["main"] else train_end
    out["main"] = _epoch_stats(marks["main"], train_end)
    out["aux"] = _epoch_stats(marks["aux"], main_start) if marks["aux"] else None
    out["epochs_run"] = out["main"]["epochs_run"]
    out["seconds_per_epoch"] = out["main"]["seconds_per_epoch"]
    m = re.search(r"^epochs: (\d+), early_stop: (\w+), early_stop_rounds: (\d+)$", text, re.M)
    if m:
        out["epochs_configured"] = int(m.group(1))
        out["early_stop"] = m.group(2) in ("True", "1")
    m = re.search(r"^regularization lambda: (\S+)$", text, re.M)
    if m:
        out["lambda0"] = float(m.group(1))
    m = re.search(r"^C_1 used in DP: (\S+), C_2 used in DN: (\S+)$", text, re.M)
    if m:
        out["C_1"], out["C_2"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"^alpha: (\S+)$", text, re.M)
    if m:
        out["alpha"] = float(m.group(1))
    out["eval_losses"] = [float(x) for x in re.findall(
        rf"Eval loss:(?:tensor\()?({_FLOAT})", text)]
    out["pretrained_fprime"] = ("loaded" if "load pretrained model successfully" in text else
                                "trained" if "pretrain model done" in text else None)
    if "epochs_configured" in out and out["epochs_run"]:
        out["early_stopped"] = out["epochs_run"] < out["epochs_configured"]
    return out


def place_data(data_root: str | Path, dataset: str, datadir: Path, prepared: Path | None = None) -> Path:
    """Copy ``data_root/<dataset>/<dataset>.*`` to ``datadir/<dataset>/`` where their
    ``data_utils.load_all`` reads it; the LightGCN adjacency their repository ships
    (``<dataset>_s_pre_adj_mat.npz``) is taken from ``prepared/data`` if the data root lacks it."""
    src = Path(data_root) / dataset
    need = [f"{dataset}.{s}" for s in ("train.rating", "valid.rating", "test.negative", "test.noisy")]
    missing = [n for n in need if not (src / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{src}: missing {', '.join(missing)}")
    dest = datadir / dataset
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob(f"{dataset}*")):
        shutil.copy2(f, dest / f.name)
    adj = f"{dataset}_s_pre_adj_mat.npz"
    if prepared is not None and not (dest / adj).exists() and (prepared / "data" / dataset / adj).is_file():
        shutil.copy2(prepared / "data" / dataset / adj, dest / adj)
    return dest


def run_cell(prepared: str | Path, dataset: str, backbone: str, method: str, seed: int,
             data_root: str | Path = "/work/shared/data/deca-splits", timeout: float | None = None, *,
             python: str = "python", threads: int = 1, max_epochs: int | None = None,
             cell_dir: str | Path | None = None, folder: str | Path | None = None) -> dict[str, Any]:
    """Run one cell of their code (patched checkout ``prepared``) and return the parsed result.

    ``cell_dir`` (default ``prepared/../cells/<cell>``) receives the data copy, their output
    folder and ``stdout.log``. ``folder`` overrides their ``--folder``: their DeCA(p) caches f' there
    as ``<model>_<dataset>.ckpt`` with no seed in the name, so sharing one folder across seeds (as
    running their code by hand does) reuses the first seed's f'; the default, a fresh folder per
    cell, pre-trains f' in every cell. ``max_epochs`` caps the epochs (cost measurements only).
    Raises :class:`AuthorsRunError` on failure or timeout."""
    prepared = Path(prepared).resolve()
    if backbone not in MODEL_NAMES or method not in METHOD_FLAGS:
        raise ValueError(f"unknown backbone {backbone!r} or method {method!r}")
    name = f"{dataset}__{backbone}__{method}__seed{seed}"
    cell = Path(cell_dir) if cell_dir is not None else prepared.parent / "cells" / name
    if cell.exists():
        shutil.rmtree(cell)
    cell.mkdir(parents=True)
    datadir = cell / "data"
    place_data(data_root, dataset, datadir, prepared)
    out_folder = Path(folder) if folder is not None else cell / "output"
    out_folder.mkdir(parents=True, exist_ok=True)  # their LightGCN saves its adjacency there before mkdir
    cmd = build_command(prepared, dataset, backbone, method, seed, datadir.resolve(), out_folder.resolve(), python)
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads), "DECA_AUTHORS_THREADS": str(threads),
                "DECA_AUTHORS_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"})
    env.pop("DECA_AUTHORS_EPOCHS", None)
    if max_epochs is not None:
        env["DECA_AUTHORS_EPOCHS"] = str(int(max_epochs))
    log = cell / "stdout.log"
    t0 = time.time()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=prepared, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AuthorsRunError(f"{name}: timed out after {timeout}s; log {log}") from exc
    wall = time.time() - t0
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise AuthorsRunError(f"{name}: exit {proc.returncode}; log {log}; tail:\n{text[-2000:]}")
    result = parse_output(text, TOP_K.get(dataset, (3, 5, 10, 20)))
    if result.get("recall@20") is None:
        raise AuthorsRunError(f"{name}: no result printed; log {log}; tail:\n{text[-2000:]}")
    result.update({"dataset": dataset, "backbone": backbone, "method": method, "seed": int(seed),
                   "model_name": MODEL_NAMES[backbone], "method_flag": METHOD_FLAGS[method],
                   "config": AUTHORS_CONFIG.get((dataset, backbone, method)), "max_epochs": max_epochs,
                   "threads": threads, "command": cmd, "command_str": shlex.join(cmd), "cwd": str(prepared),
                   "wall_seconds": wall, "log": str(log), "returncode": proc.returncode,
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return result
