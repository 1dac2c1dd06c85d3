"""Stop signals of the search driver: SIGTERM is handled like Ctrl-C (SIGINT).

``timeout``, systemd, ``docker stop`` and job schedulers (SLURM at the end of a job's time) send
SIGTERM. While :data:`STOP` is active, a SIGTERM calls whatever handles SIGINT at that moment:
Ray Tune's (inside ``Tuner.fit``: it saves the experiment state and ends the fit, so the driver
reports the unfinished trials, records the run as ``interrupted`` and prints the ``--resume``
command) or Python's (``KeyboardInterrupt`` elsewhere). ``ray.init`` installs its own SIGTERM
handler (``sys.exit``), so the driver calls :meth:`StopSignals.install` again after connecting.

Exit status: 130 (128 + SIGINT) after Ctrl-C, 143 (128 + SIGTERM) after SIGTERM; both resumable.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class StopSignals:
    """Context manager: while active, SIGTERM acts as SIGINT; :attr:`received` names the last
    stop signal (``"SIGINT"``/``"SIGTERM"``, None before any)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.active = False
        self._old: Any = None

    def install(self) -> None:
        """(Re)install the SIGTERM handler (a no-op outside the main thread or when inactive)."""
        if not self.active or threading.current_thread() is not threading.main_thread():
            return
        old = signal.signal(signal.SIGTERM, self._on_sigterm)
        if self._old is None:
            self._old = old

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.received = "SIGTERM"
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # Tune's (graceful stop) or Python's (KeyboardInterrupt)
        else:
            raise KeyboardInterrupt

    def exit_status(self) -> int:
        """130 after Ctrl-C, 143 after SIGTERM."""
        return EXIT_SIGTERM if self.received == "SIGTERM" else EXIT_SIGINT

    def __enter__(self) -> "StopSignals":
        self.received, self.active, self._old = None, True, None
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.active = False
        if self._old is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old)
        self._old = None


#: the driver's stop signals (``cli.main`` activates it for a real run)
STOP = StopSignals()

__all__ = ["EXIT_SIGINT", "EXIT_SIGTERM", "STOP", "StopSignals"]
