"""The GPU kit (deca_tune/bench/gpu_kit.py) and the version files it reads: what can be checked offline."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from deca_tune.bench import gpu_kit

ROOT = Path(__file__).resolve().parents[1]


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_constraints_pin_every_dependency_inside_its_declared_range():
    pins = gpu_kit.pinned_versions(ROOT / "constraints.txt")
    for req in _dependencies():
        name = gpu_kit._norm(req.name)
        assert name in pins, f"constraints.txt pins no version of {req.name}"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside {req.specifier}"


def test_dependencies_are_ranges_not_pins_and_python_311_to_313():
    for req in _dependencies():
        assert not any(s.operator == "==" for s in req.specifier), f"{req} is pinned in pyproject.toml"
        assert any(s.operator == ">=" for s in req.specifier), f"{req} has no tested lower bound"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(project["requires-python"])
    assert all(spec.contains(v) for v in ("3.11.7", "3.12.3", "3.13.0")) and not spec.contains("3.10.13")


def test_make_and_ci_install_with_the_constraints():
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_kit_requirements_are_pinned_from_constraints():
    reqs = gpu_kit.requirements("3.12")
    pins = gpu_kit.pinned_versions()
    assert len(reqs) == len(gpu_kit.MISSING_THERE)
    for r in reqs:
        name, version = r.split("==")
        assert pins[gpu_kit._norm(name)] == version
    assert any(r.startswith("ray==") for r in reqs) and any(r.startswith("optuna==") for r in reqs)


def test_run_command_fits_the_device_tool_and_uses_the_kit():
    cmd = gpu_kit.run_command(".kit", 460)
    assert len(cmd) < 2000
    assert "tar -xJf .kit/site.tar.xz" in cmd and "--data-root .kit/data" in cmd
    assert re.search(r"PYTHONPATH=/tmp/site:\$PWD", cmd) and "$OUT/bench-gpu.json" in cmd
    assert "pip install" not in cmd  # the project is not installed there, only put on the path


def test_strip_site_removes_what_tune_does_not_read(tmp_path):
    keep = ["ray/tune/__init__.py", "ray/_private/worker.py", "ray/dashboard/agent.py", "optuna/__init__.py"]
    drop = ["ray/jars/ray_dist.jar", "ray/dashboard/client/build/index.html", "ray/rllib/__init__.py",
            "ray/serve/__init__.py", "ray/dashboard/client/build/static/js/main.js.map", "ray/x/y.js.map"]
    for rel in keep + drop:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * 1000)
    removed = gpu_kit.strip_site(tmp_path)
    assert all((tmp_path / rel).exists() for rel in keep)
    assert not any((tmp_path / rel).exists() for rel in drop)
    assert removed["ray/jars"] == pytest.approx(0.001) and removed["*.map"] == pytest.approx(0.001)


def test_working_tree_bytes_counts_tracked_files():
    n = gpu_kit.working_tree_bytes()
    assert (ROOT / "README.md").stat().st_size < n < 60 * 2 ** 20


def test_kit_folder_is_ignored_by_git():
    text = (ROOT / ".gitignore").read_text().split()
    assert "/.kit/" in text
