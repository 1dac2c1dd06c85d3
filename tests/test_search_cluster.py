"""A search on a real Ray cluster started with ``ray start``: a head node and a worker node on
127.0.0.1, joined through ``--address``.

The worker node declares one (logical) GPU, so ``--gpus-per-trial 0.5`` is scheduled for real:
two trials share GPU 0 on that node. There is no CUDA device behind it here, so the trainable
warns and trains on the CPU. Both nodes get their own ``--temp-dir``: the cluster never
becomes the default that a plain ``ray.init()`` elsewhere on the machine would join. Each
``ray start --block`` process is stopped with SIGTERM to its own process group, which takes
its node down (no ``ray stop``, which would stop every Ray on the machine).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: token authentication (Ray's default for ``ray start``): a process joining through an
#: explicit address must opt in with RAY_AUTH_MODE=token (the token is in ~/.ray/auth_token)
ENV = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = ENV
    return subprocess.Popen([str(RAY), "start", "--block", "--node-ip-address=127.0.0.1", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, cwd=REPO)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_for_nodes(address: str, n: int, timeout: float = 120) -> None:
    code = (f"import ray, time\nray.init(address={address!r}, log_to_driver=False)\n"
            f"end = time.time() + {timeout}\n"
            f"while sum(x['Alive'] for x in ray.nodes()) < {n} and time.time() < end: time.sleep(0.5)\n"
            f"assert sum(x['Alive'] for x in ray.nodes()) >= {n}, ray.nodes()\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=timeout + 60, cwd=REPO,
                          capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(not RAY.exists(), reason=f"no ray command next to {sys.executable}")
def test_search_through_address_on_a_two_node_cluster(tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    head_tmp = tempfile.mkdtemp(prefix="dth", dir="/tmp")  # short: Unix socket paths are limited
    worker_tmp = tempfile.mkdtemp(prefix="dtw", dir="/tmp")
    head = start(["--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
                  "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={head_tmp}"],
                 tmp_path / "head.log")
    worker = None
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            assert head.poll() is None, (tmp_path / "head.log").read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        worker = start([f"--address={address}", "--num-cpus=2", "--num-gpus=1",
                        f"--temp-dir={worker_tmp}"], tmp_path / "worker.log")
        wait_for_nodes(address, 2)

        storage = tmp_path / "results"
        cmd = [sys.executable, "-m", "deca_tune.search", "--address", address,
               "--datasets", "synthetic", "--methods", "normal", "--num-samples", "2",
               "--max-epochs", "2", "--scheduler", "fifo", "--seeds", "0", "--gpus-per-trial", "0.5",
               "--set", "trainer_factory=tests.search_fakes:FakeTrainer", "--set", "sleep=1",
               "--storage-path", str(storage), "--name", "cluster", "--verbose", "0"]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "2 node(s)" in done.stdout

        exp = storage / "cluster"
        manifest = json.loads((exp / "manifest.json").read_text())
        res = manifest["resources"]
        assert res["cluster"] == {"CPU": 3.0, "GPU": 1.0, "nodes": 2.0}
        assert res["gpus_per_trial"] == 0.5 and res["concurrency"] == 2
        trials = pd.read_csv(exp / "summary/search_trials.csv")
        assert len(trials) == 2 and set(trials["status"]) == {"completed"}
        assert (trials["device"] == "cpu").all()  # a logical GPU only: no CUDA behind it
        ids = [json.loads((exp / p / "result.json").read_text().splitlines()[-1])["gpu_ids"]
               for p in trials["path"]]
        assert ids == ["0", "0"], "0.5 GPU per trial: both trials on the one GPU"
        runs = pd.read_csv(exp / "summary/seed_runs.csv")
        assert list(runs["status"]) == ["completed"]
    finally:
        for proc in (worker, head):
            if proc is not None:
                stop(proc)
        for folder in (head_tmp, worker_tmp):
            shutil.rmtree(folder, ignore_errors=True)
