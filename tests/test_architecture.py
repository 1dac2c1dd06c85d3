"""The layout rules of docs/architecture.md, checked on the source (AST): where Ray may be
imported, that the analysis reads files instead of training models, and that a new method is
one module plus one registration call, usable from the search CLI and the trainer."""
from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("deca_tune", "trainables", "analysis", "search_spaces")
#: only the Tune layer may import Ray
RAY_ALLOWED = ("deca_tune/search/", "trainables/")
#: what the analysis must not import: torch and the code that builds or trains models
ANALYSIS_FORBIDDEN = ("torch", "ray", "trainables", "deca_tune.models", "deca_tune.methods",
                      "deca_tune.training", "deca_tune.losses", "deca_tune.data", "deca_tune.tasks",
                      "deca_tune.exports", "deca_tune.motivation", "deca_tune.search")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
    return out


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _is(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_source_tree_is_what_the_rules_read():
    names = {p.relative_to(REPO).as_posix() for p in sources()}
    assert {"deca_tune/search/run.py", "trainables/trial.py", "analysis/report.py"} <= names
    assert ("ray" in {m for _, m in imported_modules(REPO / "deca_tune/search/run.py")}), \
        "the checker must see the imports it polices"


def test_ray_only_in_the_search_package_and_trainables():
    bad = [f"{p.relative_to(REPO)}:{line}: import {mod}" for p in sources()
           for line, mod in imported_modules(p)
           if _is(mod, "ray") and not p.relative_to(REPO).as_posix().startswith(RAY_ALLOWED)]
    assert not bad, "Ray imported outside deca_tune/search/ and trainables/:\n" + "\n".join(bad)


def test_analysis_reads_files_and_never_imports_model_code():
    bad = [f"{p.relative_to(REPO)}:{line}: import {mod}" for p in sorted((REPO / "analysis").rglob("*.py"))
           for line, mod in imported_modules(p) if any(_is(mod, f) for f in ANALYSIS_FORBIDDEN)]
    assert not bad, "analysis/ imports model or training code:\n" + "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path):
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from ray import tune\n    import torch.nn\n")
    mods = [m for _, m in imported_modules(fake)]
    assert mods == ["ray", "torch.nn"]


TINY = {"n_users": 40, "n_items": 30, "dim": 4, "like_rate": 0.2, "seed": 3}
TOY_METHOD = '''
"""A toy recommendation method registered from outside the package (tests/test_architecture.py)."""
import torch.nn.functional as F

from deca_tune.methods.rec.base import RecMethod
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.methods.registry import REC_METHODS


@REC_METHODS.register("toy_hinge")
class ToyHinge(RecMethod):
    """Hinge loss on the positive and the negative logits."""

    defaults = {"margin": 1.0}

    def batch_loss(self, users, pos, neg, step):
        p, n = pair_logits(self.f, users, pos, neg)
        loss = F.relu(self.spec["margin"] - p).mean() + F.relu(self.spec["margin"] + n).mean()
        return loss, {"hinge": float(loss.detach())}
'''


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin_method.py").write_text(textwrap.dedent(TOY_METHOD))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy_plugin_method"
    sys.modules.pop("toy_plugin_method", None)
    from deca_tune.methods.registry import REC_METHODS

    REC_METHODS._items.pop("toy_hinge", None)  # leave the registry as the other tests know it


def test_a_plugin_method_runs_through_the_search_cli_and_the_trainer(toy_plugin, tmp_path, capsys):
    from deca_tune.search import main
    from deca_tune.training import build_trainer

    code = main(["--plugins", toy_plugin, "--datasets", "synthetic", "--methods", "normal", "toy_hinge",
                 "--set", "dataset_options.n_users=40", "--set", "dataset_options.n_items=30",
                 "--storage-path", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "synthetic__gmf__toy_hinge" in out and "dry run: nothing was run" in out
    trainer = build_trainer({"plugins": [toy_plugin], "dataset": "synthetic", "method": "toy_hinge",
                             "dataset_options": TINY, "margin": 0.5,
                             "max_epochs": 1, "device": "cpu"})
    metrics = trainer.train_epoch()
    assert metrics["loss/hinge"] > 0 and 0 <= metrics["valid/ndcg@20"] <= 1
    assert trainer.method.spec["margin"] == 0.5
    with pytest.raises(ValueError, match="'margn'"):  # its settings are checked like a built-in's
        build_trainer({"plugins": [toy_plugin], "dataset": "synthetic", "method": "toy_hinge",
                       "dataset_options": TINY, "margn": 0.5})
