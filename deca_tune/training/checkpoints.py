"""Trainer checkpoints on disk: one file, ``trainer.pt``, holding ``trainer.state_dict()``
(``spec``, ``method``, ``optimizer``, ``best_state``, RNG states, ...).

The trainable (``trainables/trial.py``) saves one every epoch as
``<trial>/checkpoint_<n>/trainer.pt``; :func:`load_trainer` rebuilds a trainer from one (the
spec saved inside it) for recommendations, score exports and analysis, without Ray.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FILE = "trainer.pt"
_CKPT_RE = re.compile(r"^checkpoint_(\d+)$")


def find_checkpoint(path: str | Path) -> Path:
    """``trainer.pt`` for a file, a ``checkpoint_<n>`` folder or a trial folder (its latest
    checkpoint). Raises FileNotFoundError naming what was looked for."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    found = sorted(((int(m.group(1)), p) for p in path.iterdir()
                    if (m := _CKPT_RE.match(p.name)) and (p / CHECKPOINT_FILE).is_file()))
    if found:
        return found[-1][1] / CHECKPOINT_FILE
    raise FileNotFoundError(f"{path}: no {CHECKPOINT_FILE} and no checkpoint_<n>/{CHECKPOINT_FILE} "
                            "inside (give a trial folder, a checkpoint folder or the file)")


def save_checkpoint(trainer: Any, folder: str | Path) -> Path:
    """Write ``trainer.state_dict()`` to ``folder/trainer.pt``."""
    path = Path(folder) / CHECKPOINT_FILE
    torch.save(trainer.state_dict(), path)
    return path


def load_state(path: str | Path) -> tuple[dict[str, Any], Path]:
    file = find_checkpoint(path)
    state = torch.load(file, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "spec" not in state or "method" not in state:
        raise ValueError(f"{file}: not a trainer checkpoint (expected a state_dict with 'spec' "
                         "and 'method')")
    return state, file


def load_trainer(path: str | Path, data_root: str | None = None, device: str = "cpu",
                 weights: str = "best") -> Any:
    """The trainer of a checkpoint, with the best epoch's weights (``weights="best"``, what
    ``fit`` restores) or those of the checkpoint's last epoch (``"last"``)."""
    from deca_tune.training import build_trainer

    if weights not in ("best", "last"):
        raise ValueError(f"weights must be 'best' or 'last', got {weights!r}")
    state, file = load_state(path)
    spec = {**state["spec"], "device": device}
    if data_root is not None:
        spec["data_root"] = data_root
    trainer = build_trainer(spec)
    trainer.load_state_dict(state)
    if weights == "best" and state.get("best_state") is not None:
        trainer.method.load_state_dict(state["best_state"])
    trainer.checkpoint_file = file
    return trainer
