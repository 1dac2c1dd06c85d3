"""Issue 20: stopping ``python -m deca_tune.bench images`` left its child search and the child's
Ray running. ``deca_tune.bench.child.run_child`` (what the benchmark starts its search with) ends
the child and everything in its process group when the parent gets SIGTERM or SIGINT."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: the child: starts a "Ray" (a grandchild in its process group), writes both pids, waits
CHILD = textwrap.dedent("""
    import os, subprocess, sys, time
    grand = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[1], "w").write(f"{os.getpid()} {grand.pid}")
    time.sleep(600)
""")
PARENT = textwrap.dedent("""
    import sys
    from deca_tune.bench.child import run_child
    sys.exit(run_child([sys.executable, "-c", sys.argv[1], sys.argv[2]], grace=5))
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie is dead


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, None)])
def test_child_and_its_group_stop_with_the_parent(sig, code, tmp_path):
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(pids)], env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child, grand = map(int, pids.read_text().split())
        assert alive(child) and alive(grand)
        parent.send_signal(sig)
        rc = parent.wait(timeout=30)
    finally:
        parent.kill()
    if code is not None:
        assert rc == code
    else:  # SIGINT: KeyboardInterrupt in the parent
        assert rc != 0 and "KeyboardInterrupt" in parent.stderr.read()
    deadline = time.monotonic() + 10
    while (alive(child) or alive(grand)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the child search outlived its parent"
    assert not alive(grand), "the child's Ray (its process group) outlived the parent"


def test_a_child_that_ends_normally_returns_its_status(tmp_path):
    from deca_tune.bench.child import run_child

    assert run_child([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
