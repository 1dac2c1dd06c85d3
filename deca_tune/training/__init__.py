"""Training loops, one per task family, on one epoch skeleton (:class:`~deca_tune.training.base.
EpochTrainer`), behind one entry point: :func:`build_trainer`."""
from __future__ import annotations

from typing import Any


def build_trainer(spec: dict[str, Any], split: Any = None) -> Any:
    """The trainer of ``spec["task"]`` (default ``rec``) for ``spec``; see docs/architecture.md."""
    from deca_tune.registry import import_plugins
    from deca_tune.tasks import get_task

    import_plugins(spec.get("plugins"))
    return get_task(spec.get("task", "rec")).build_trainer(spec, split=split)
