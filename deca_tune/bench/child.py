"""Child commands of a benchmark (a search it starts) stop with their parent.

:func:`run_child` starts the command in its own process group (so the local Ray cluster a
search starts belongs to it too) and, while it runs, turns the parent's SIGINT and SIGTERM into
a SIGTERM to the child (the search driver handles it like Ctrl-C: its trials checkpoint, Ray is
shut down, the experiment stays resumable); a child still running ``grace`` seconds later, and
whatever is left in its group, is killed. The parent then stops as it would have: the signal is
re-raised (KeyboardInterrupt for SIGINT, exit status 143 for SIGTERM). Any other way out of the
parent's wait (an exception) ends the group as well.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any, Mapping, Sequence


def stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the child, wait up to ``grace`` s, then SIGKILL its whole process group."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what the child left behind (Ray's processes)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_child(cmd: Sequence[str], env: Mapping[str, str] | None = None, grace: float = 30.0,
              **popen: Any) -> int:
    """Run ``cmd`` to the end and return its exit status; it stops when this process is stopped."""
    received: list[tuple[int, float]] = []
    proc = subprocess.Popen(list(cmd), env=None if env is None else dict(env), start_new_session=True, **popen)
    main_thread = threading.current_thread() is threading.main_thread()

    def forward(signum: int, frame: Any) -> None:
        received.append((signum, time.monotonic()))
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    old = {}
    if main_thread:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, forward)
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if received and time.monotonic() - received[0][1] > grace:  # did not stop in time
                stop_group(proc, grace=0)
        code = proc.returncode
    except BaseException:
        stop_group(proc, grace)
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    stop_group(proc, grace=0)  # the child is gone: end anything left in its group (Ray's processes)
    if received:
        if received[0][0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signal.SIGTERM)
    return code


__all__ = ["run_child", "stop_group"]
