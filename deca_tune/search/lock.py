"""The experiment lock: ``<experiment>/.lock``, so that one driver at a time writes an experiment.

The driver takes it before ``ray.init`` and releases it when it exits (normally, on an error or
on Ctrl-C). The file is JSON: ``host``, ``pid``, ``pid_start`` (the process's start time, so a
reused pid is not mistaken for the holder), ``started`` and ``command``. A second driver, or a
``--resume``, while a live driver holds it gets :class:`LockError` naming the holder (exit
status 2). A lock left by a driver that is gone (killed: its pid no longer runs on this host)
is stale: it is taken over, and :attr:`ExperimentLock.note` says so. A lock held from another
host cannot be checked and is never taken over; the message says how to remove it.

Taking the lock is atomic (``O_CREAT | O_EXCL``); a stale lock is replaced under an ``flock``
on ``.lock.guard`` so that two drivers cannot both take it over.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

LOCK_FILE = ".lock"


class LockError(RuntimeError):
    """The experiment is in use by another driver; the message names it."""


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: field 22 of ``/proc/<pid>/stat``), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _guard(folder: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: O_EXCL alone
        yield
        return
    with open(folder / f"{LOCK_FILE}.guard", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ExperimentLock:
    """``with ExperimentLock(folder, command): ...`` or :meth:`acquire` / :meth:`release`."""

    def __init__(self, folder: str | Path, command: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command
        self.held = False
        self.note: str | None = None

    def record(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start(pid),
                "started": datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": self.command}

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record (None: no lock, or unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def is_stale(holder: dict[str, Any]) -> bool:
        """True when the holder ran on this host and is gone (or its pid now names another process)."""
        if holder.get("host") != socket.gethostname():
            return False
        try:
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return True
        if not pid_alive(pid):
            return True
        start = holder.get("pid_start")
        return start is not None and process_start(pid) not in (None, start)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(self.record(), handle)
        return True

    def describe_holder(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            return "an unreadable lock file"
        return (f"the driver pid {holder.get('pid')} on host {holder.get('host')} (since "
                f"{holder.get('started')}: {holder.get('command') or 'unknown command'})")

    def acquire(self) -> "ExperimentLock":
        """Take the lock (creates the experiment folder); raises :class:`LockError` if held."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _guard(self.folder):
            if not self._create():
                holder = self.holder()
                fresh = holder is None and time.time() - self._mtime() < 10  # being written now
                if fresh or (holder is not None and not self.is_stale(holder)):
                    where = "" if holder is None or holder.get("host") == socket.gethostname() else (
                        " (on another host: if that driver is gone, delete the lock file)")
                    raise LockError(f"experiment {self.folder} is in use by "
                                    f"{self.describe_holder(holder)}{where}; wait for it to finish "
                                    f"(lock file {self.path})")
                self.path.unlink(missing_ok=True)
                if not self._create():
                    raise LockError(f"experiment {self.folder}: another driver took the lock "
                                    f"{self.path} just now")
                self.note = (f"note: took over the stale lock of {self.describe_holder(holder)}: "
                             "that process no longer runs")
        self.held = True
        return self

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        """Remove the lock file if this process holds it (idempotent)."""
        if not self.held:
            return
        self.held = False
        holder = self.holder()
        if holder is None or (holder.get("pid") == os.getpid()
                              and holder.get("host") == socket.gethostname()):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "ExperimentLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


__all__ = ["ExperimentLock", "LOCK_FILE", "LockError", "pid_alive", "process_start"]
