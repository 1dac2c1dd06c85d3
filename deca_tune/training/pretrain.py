"""Pre-trained ``normal`` models for methods that need one (DeCA(p)'s prior f'), in both families.

The loop trains the model with itself (``EpochTrainer.pretrain``: Algorithm 2 lines 1-9,
Algorithm 3 lines 1-7) and caches it on disk, keyed by a hash of everything that determines its
weights: the pre-training spec (data set, backbone, seed, lr, l2, epochs, batch size, protocol,
noise settings, ...) and the split's fingerprint (``split.fingerprint()``: the training and
validation data). Hyperparameters of the other methods (C0, C1, alpha, ...) are not part of the
key, so every trial of a search with the same seed reuses one f'; different seeds never share one.

Spec key ``pretrain_cache``: the cache folder; default ``pretrained/`` in the writable cache
(``$DECA_TUNE_CACHE``, else ``~/.cache/deca_tune``); ``"off"`` disables the cache. A resumed trial never pre-trains again: its checkpoint holds f'.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from deca_tune.paths import cache_dir as cache_root

#: sub-folder of the writable cache (``$DECA_TUNE_CACHE``, else ``~/.cache/deca_tune``)
CACHE_FOLDER = "pretrained"
#: spec keys that cannot change the trained weights
_IRRELEVANT = {"device", "data_root", "eval_batch_users", "eval_batch_size", "eval_splits", "method", "pretrain_seed",
               "pretrain_overrides", "pretrain_cache", "plugins", "trainer_factory", "cache_dir"}


def _method_only_keys(task: Any) -> set[str]:
    """Hyperparameters of every method of the family except ``normal`` (they do not affect it)."""
    normal = set(getattr(task.methods.get("normal"), "defaults", {}))
    keys: set[str] = set()
    for name in task.methods.names():
        keys |= set(getattr(task.methods.get(name), "defaults", {}) or {})
    return keys - normal


def pretrain_spec(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The spec of the ``normal`` run that pre-trains a prior for the trial ``spec``: the trial's
    settings that ``normal`` reads (the calling method's own hyperparameters dropped), then the
    method's ``overrides`` (its seed, ``pretrain_overrides``)."""
    from deca_tune.tasks import get_task

    normal = get_task(spec["task"]).known_keys("normal")
    return {**{k: v for k, v in spec.items() if k in normal}, "method": "normal", **overrides}


def pretrain_key(spec: dict[str, Any], split: Any) -> tuple[dict[str, Any], str]:
    """The pre-training run's spec restricted to what determines its weights, and its hash.

    ``spec`` is the spec of the pre-training run itself (``method: normal``, its seed).
    """
    from deca_tune.tasks import get_task

    drop = _IRRELEVANT | _method_only_keys(get_task(spec["task"]))
    relevant = {k: spec[k] for k in sorted(spec) if k not in drop}
    relevant["data"] = split.fingerprint()
    blob = json.dumps(relevant, sort_keys=True, default=str)
    return relevant, hashlib.sha256(blob.encode()).hexdigest()


def cache_dir(spec: dict[str, Any]) -> Path | None:
    value = spec.get("pretrain_cache")
    if value is None:
        return cache_root() / CACHE_FOLDER
    if str(value).lower() in ("off", "none", "false", ""):
        return None
    return Path(value).expanduser()


def load_or_pretrain(spec: dict[str, Any], split: Any, build: Callable[[int], nn.Module],
                     train: Callable[[dict[str, Any]], nn.Module]) -> tuple[nn.Module, dict[str, Any]]:
    """The target model of the ``normal`` run ``spec``: from the cache if present, else trained
    with ``train(spec)`` and cached.

    ``build(seed)`` makes an untrained model of the right architecture (to load weights into).
    The global torch RNG is restored afterwards, so the calling trial continues identically
    whether the model came from the cache or not. Returns the model (frozen, eval mode) and
    ``{"path", "cached", "seconds", "seed"}``.
    """
    relevant, key = pretrain_key(spec, split)
    folder = cache_dir(spec)
    path = None
    if folder is not None:
        path = folder / f"{split.name}__{spec['backbone']}__seed{spec['seed']}__{key[:16]}.pt"
    info = {"path": str(path) if path else None, "cached": False, "seconds": 0.0, "seed": int(spec["seed"])}
    if path is not None and path.exists():
        model = build(int(spec["seed"]))
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        info["cached"] = True
    else:
        rng_state = torch.random.get_rng_state()
        start = time.perf_counter()
        try:
            model = train(spec)
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
