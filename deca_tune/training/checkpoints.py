"""Trainer checkpoints on disk: one file, ``trainer.pt``, holding ``trainer.state_dict()``
(``spec``, ``method``, ``optimizer``, ``best_state``, RNG states, ...).

Experiment folders are shared (a cluster's storage, a paper's artefacts), and a pickle runs
whatever it holds when it is opened. So a checkpoint holds only tensors, numbers, strings,
``None``, lists, tuples and dicts (RNG states included: torch's are tensors, numpy's are dicts of
ints and strings); :func:`save_checkpoint` refuses anything else, and every reader goes through
:func:`read_checkpoint`, i.e. ``torch.load(..., weights_only=True)``, which refuses a file that
would need more (:class:`UnsafeCheckpointError`) without running any of it.

The trainable (``trainables/trial.py``) saves one every epoch as
``<trial>/checkpoint_<n>/trainer.pt``; :func:`load_trainer` rebuilds a trainer from one (the
spec saved inside it) for recommendations, score exports and analysis, without Ray. The search
shrinks a finished seed run's checkpoint to the weights those read (:func:`shrink_state`,
``deca_tune/search/disk.py``); :func:`load_trainer` reads both forms.
"""
from __future__ import annotations

import pickle
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


class UnsafeCheckpointError(ValueError):
    """A checkpoint that holds more than tensors and plain data: refused, never unpickled."""


#: what a checkpoint may hold (containers are checked element by element)
PLAIN = (torch.Tensor, str, bytes, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def check_plain(value: Any, where: str = "state") -> None:
    """Raise :class:`TypeError` naming the entry of ``value`` that is not plain data."""
    if isinstance(value, PLAIN):
        return
    if isinstance(value, dict):  # OrderedDict (module state_dicts) included
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}")
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint "
                    "holds only tensors, numbers, strings, lists and dicts")


def save_checkpoint(trainer: Any, folder: str | Path) -> Path:
    """Write ``trainer.state_dict()`` to ``folder/trainer.pt`` (plain data only, see above)."""
    path = Path(folder) / CHECKPOINT_FILE
    state = trainer.state_dict()
    check_plain(state)
    torch.save(state, path)
    return path


def read_checkpoint(file: str | Path) -> Any:
    """``torch.load(file, weights_only=True)``: tensors and plain data, nothing executed.

    Raises :class:`UnsafeCheckpointError` naming the file when it holds anything else (a
    crafted pickle, or a file written by other code)."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines()
                      if "GLOBAL" in ln or "Unsupported" in ln), "")
        raise UnsafeCheckpointError(
            f"{file}: refused: it holds objects beyond tensors, numbers, strings, lists and dicts, "
            f"and opening it could run code ({first or 'not loadable with weights_only=True'}); "
            "deca_tune never writes such checkpoints, so it was made by other code") from None


#: marker of a checkpoint shrunk to the weights the report and recommend read
SHRUNK = "shrunk"
#: what a shrunk checkpoint keeps besides the weights: the spec and the tracked metrics
_SHRUNK_KEYS = ("spec", "epoch", "step", "best", "last", "bad_epochs", "stopped_early", "prepared",
                "pretrain_info")


def shrink_state(state: Any) -> dict[str, Any] | None:
    """A trainer checkpoint without what only a resume needs (optimiser and RNG states, the
    family's extra state) and without the last epoch's weights unless the spec keeps the last
    (``restore_best: false``): the spec, the tracked metrics and ``best_state``. None when
    ``state`` is already shrunk or is not a trainer checkpoint (``search/disk.py``)."""
    if not isinstance(state, dict) or state.get(SHRUNK) or "spec" not in state or "method" not in state:
        return None
    small = {k: state[k] for k in _SHRUNK_KEYS if k in state}
    small["best_state"] = state.get("best_state") if state.get("best_state") is not None else state["method"]
    if not state["spec"].get("restore_best", True):
        small["method"] = state["method"]
    small[SHRUNK] = True
    return small


def load_state(path: str | Path) -> tuple[dict[str, Any], Path]:
    file = find_checkpoint(path)
    state = read_checkpoint(file)
    if not isinstance(state, dict) or "spec" not in state or not ("method" in state or state.get(SHRUNK)):
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
    if state.get(SHRUNK):  # --keep-checkpoints best: the weights and the metrics, nothing to resume
        if weights == "last" and "method" not in state:
            raise ValueError(f"{file}: keeps only the best epoch's weights (the search's "
                             "--keep-checkpoints best); rerun with --keep-checkpoints all for the last's")
        trainer.method.load_state_dict(state["method"] if weights == "last" else state["best_state"])
        for key in _SHRUNK_KEYS[1:]:
            if key in state:
                setattr(trainer, key, state[key])
        trainer.best_state = state["best_state"]
        trainer.checkpoint_file = file
        return trainer
    trainer.load_state_dict(state)
    if weights == "best" and state.get("best_state") is not None:
        trainer.method.load_state_dict(state["best_state"])
    trainer.checkpoint_file = file
    return trainer
