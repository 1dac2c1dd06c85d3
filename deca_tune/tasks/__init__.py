"""Task families: everything that differs between recommendation and image classification.

A :class:`~deca_tune.tasks.base.Task` owns its family's data sets, backbones, methods, trainer,
spec defaults, selection metric and split loader; code that would otherwise branch on
``task == "rec"`` asks the task instead. ``TASKS`` maps a family name to its task; a new family
is one module (``deca_tune/tasks/<name>.py``, registering a ``Task``) plus one line in
``TASKS``' module list below.
"""
from __future__ import annotations

from typing import Any

from deca_tune.registry import Registry, UnknownNameError, did_you_mean
from deca_tune.tasks.base import COMMON_DEFAULTS, SpecError, Task

TASKS: Registry[Task] = Registry("task family", modules=("deca_tune.tasks.rec", "deca_tune.tasks.image"))


def get_task(task: str | Task) -> Task:
    """The :class:`Task` named ``task`` (a Task is returned as it is)."""
    return task if isinstance(task, Task) else TASKS.get(task)


def task_of_dataset(dataset: str) -> Task:
    """The family whose registry holds ``dataset``; unknown names list every family's data sets."""
    for name in TASKS.names():
        task = TASKS.get(name)
        if dataset in task.datasets:
            return task
    choices = sorted(n for t in TASKS.names() for n in TASKS.get(t).datasets.names())
    raise UnknownNameError(f"unknown data set {dataset!r}{did_you_mean(dataset, choices)}; choose one of: "
                           f"{', '.join(choices)}")


def make_spec(task: str | Task, **overrides: Any) -> dict[str, Any]:
    """The spec of ``task`` with its defaults and ``overrides`` (see :meth:`Task.make_spec`)."""
    return get_task(task).make_spec(**overrides)


__all__ = ["COMMON_DEFAULTS", "TASKS", "SpecError", "Task", "get_task", "make_spec", "task_of_dataset"]
