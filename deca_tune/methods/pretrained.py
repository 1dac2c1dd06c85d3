"""Pre-trained ``normal`` models for methods that need one (DeCA(p)'s f').

The model is trained once through the loop's ``pretrain`` callback (Algorithm 2, lines 1-9) and
cached on disk, keyed by a hash of everything that determines it: the pretrain spec (data set,
backbone, seed, lr, l2, epochs, batch size, protocol, ...) and a fingerprint of the training and
validation interactions. Hyperparameters of the denoising methods (C0, C1, alpha, ...) are not
part of the key, so every trial of a search with the same seed reuses one f'.

Spec keys read here (by ``deca_p`` and its ablations):

- ``pretrain_seed``: seed of the pre-trained model; default ``seed + PRETRAIN_SEED_OFFSET``, so
  it differs from the target model's seed and a model is never shared across seeds unless the
  same ``pretrain_seed`` is given explicitly.
- ``pretrain_overrides``: spec entries that differ for the pre-training run (e.g. ``{"l2": 0.05}``).
- ``pretrain_cache``: cache folder; default ``~/.cache/deca_tune/pretrained``; ``"off"`` disables.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deca_tune.data.interactions import RecSplit

PRETRAIN_SEED_OFFSET = 1000
PRETRAIN_DEFAULTS: dict[str, Any] = {"pretrain_seed": None, "pretrain_overrides": {},
                                     "pretrain_cache": None}
DEFAULT_CACHE = Path.home() / ".cache" / "deca_tune" / "pretrained"
#: spec keys that cannot change the trained weights
_IRRELEVANT = {"device", "data_root", "eval_batch_users", "method", *PRETRAIN_DEFAULTS}


def pretrain_overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """What the pretrain callback must change in the trial's spec (seed + user overrides)."""
    extra = spec.get("pretrain_overrides") or {}
    if not isinstance(extra, dict):
        raise TypeError(f"spec key 'pretrain_overrides' must be a dict, got {type(extra).__name__}")
    seed = spec.get("pretrain_seed")
    seed = int(spec["seed"]) + PRETRAIN_SEED_OFFSET if seed is None else int(seed)
    return {"seed": seed, **extra}


def _method_only_keys() -> set[str]:
    """Hyperparameters of every registered method except ``normal`` (they do not affect it)."""
    from deca_tune.methods import REC_METHODS

    normal = set(getattr(REC_METHODS.get("normal"), "defaults", {}))
    keys: set[str] = set()
    for name in REC_METHODS.names():
        keys |= set(getattr(REC_METHODS.get(name), "defaults", {}) or {})
    return keys - normal


def split_fingerprint(split: RecSplit) -> str:
    """SHA-256 over the interactions a ``normal`` run reads (train, and valid for selection)."""
    h = hashlib.sha256()
    h.update(f"{split.name}|{split.n_users}|{split.n_items}".encode())
    for arr in (split.train, split.valid, split.valid_clean):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def pretrain_key(spec: dict[str, Any], split: RecSplit) -> tuple[dict[str, Any], str]:
    """The spec of the pretraining run restricted to what determines its weights, and its hash."""
    full = {**spec, "method": "normal", **pretrain_overrides(spec)}
    drop = _IRRELEVANT | _method_only_keys()
    relevant = {k: full[k] for k in sorted(full) if k not in drop}
    relevant["data"] = split_fingerprint(split)
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return relevant, hashlib.sha256(blob.encode()).hexdigest()


def cache_dir(spec: dict[str, Any]) -> Path | None:
    value = spec.get("pretrain_cache")
    if value is None:
        return DEFAULT_CACHE
    if str(value).lower() in ("off", "none", "false", ""):
        return None
    return Path(value).expanduser()


def load_or_pretrain(spec: dict[str, Any], split: RecSplit, build: Any, pretrain: Any,
                     ) -> tuple[nn.Module, dict[str, Any]]:
    """A frozen pre-trained model: from the cache if present, else trained and cached.

    ``build(seed)`` makes an untrained model of the right architecture (to load weights into);
    ``pretrain(overrides)`` is the loop's callback. The global torch RNG is restored afterwards,
    so the calling trial continues identically whether the model came from the cache or not.
    Returns the model and ``{"path", "cached", "seconds", "seed"}``.
    """
    overrides = pretrain_overrides(spec)
    relevant, key = pretrain_key(spec, split)
    folder = cache_dir(spec)
    path = None
    if folder is not None:
        name = f"{split.name}__{spec['backbone']}__seed{overrides['seed']}__{key[:16]}.pt"
        path = folder / name
    info = {"path": str(path) if path else None, "cached": False, "seconds": 0.0,
            "seed": overrides["seed"]}
    if path is not None and path.exists():
        model = build(overrides["seed"])
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        info["cached"] = True
    else:
        rng_state = torch.random.get_rng_state()
        start = time.perf_counter()
        try:
            model = pretrain(overrides)
        finally:
            torch.random.set_rng_state(rng_state)
        info["seconds"] = time.perf_counter() - start
        model = model.cpu()
        if path is not None:
            _atomic_save({"state_dict": model.state_dict(), "key": key,
                          "spec": json.dumps(relevant, sort_keys=True, default=str)}, path)
    model.requires_grad_(False)
    model.eval()
    return model, info


def _atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write then rename, so parallel trials never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
