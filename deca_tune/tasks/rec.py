"""The recommendation family: binary implicit feedback, full-ranking Recall / NDCG@K."""
from __future__ import annotations

from typing import Any, Mapping

from deca_tune.data.registry import REC_DATASETS
from deca_tune.methods.registry import REC_METHODS
from deca_tune.models.registry import REC_BACKBONES
from deca_tune.tasks import TASKS
from deca_tune.tasks.base import SpecError, Task, check_range

#: the K of the selection metric (NDCG@20, paper 5.1.2)
SELECTION_K = 20
#: values of the spec key ``eval_splits``
EVAL_SPLIT_CHOICES = ("all", "selection")
#: values of the spec key ``recipe`` (docs/training-recipes.md): ``published``: the backbone's
#: published L2 over whole tables and dense Adam (cost per epoch ~ steps x parameters);
#: ``linear``: L2 on the rows a batch looks up and Adam on those rows only (cost ~ rows of the
#: data); ``auto``: ``linear`` for the data sets of :data:`LINEAR_DEFAULT_DATASETS` with at
#: least :data:`LINEAR_RECIPE_MIN_ROWS` training pairs, else ``published``
RECIPES = ("auto", "published", "linear")
#: the data sets (bring-your-own and generated) whose ``auto`` recipe can be ``linear``; the
#: paper's data sets always train with the published recipe unless the spec says otherwise
LINEAR_DEFAULT_DATASETS = ("csv", "synthetic")
#: training pairs from which ``auto`` means ``linear`` on those data sets (docs/benchmarks.md,
#: "Scale": GMF's epochs under both recipes cross near 760k pairs, DeCA's earlier; below, the
#: lazy update's fixed cost per step exceeds the dense update of small tables)
LINEAR_RECIPE_MIN_ROWS = 500_000

DEFAULTS: dict[str, Any] = {
    "dataset": "ml-100k", "backbone": "gmf", "method": "normal", "max_epochs": 20,
    "lr": 1e-3, "batch_size": 2048,
    "l2": 0.1,  # the paper's lambda: the loop adds l2 / (2 n_users) * ||theta||^2 (authors' scaling)
    "neg_ratio": 1,  # sampled negatives per training positive
    "sampler": None,  # negative sampler (deca_tune.data.sampling.SAMPLERS); None = the method's own
    # users scored at once in full-ranking evaluation; on a CPU fewer when a batch's score matrix
    # would pass 30 MiB (metrics.ranking.score_batch_users: larger blocks are page-faulted anew)
    "eval_batch_users": 1024,
    # splits evaluated after every epoch (one scoring pass serves them all): "all" (valid,
    # valid_clean, test, test_clean), or "selection": only the selection metric's split, plus
    # every split in the run's last epoch. The search sets "selection" for its search trials
    # (Optuna, ASHA and the best-config choice read only ``score``) and "all" for the seed
    # reruns, whose per-epoch test curves the report draws.
    "eval_splits": "all",
    # None: every user with validation pairs is ranked; N: the validation splits (valid,
    # valid_clean) rank a fixed random sample of N of them (seeded by VALID_USERS_SEED, the same
    # for every trial, epoch and method), the test splits every user. For large files, where a
    # full ranking of every validation user costs many epochs of training (docs/benchmarks.md).
    "valid_users": None,
    # None: only ``patience`` (selection metric per epoch); "authors": the DeCA authors' rule
    # (every ``early_stop_every`` iterations the BCE of f on their validation positives + one fresh
    # negative each; stop at the 2nd rise over the previous value, rises never reset; mid-epoch)
    "early_stop": None,
    "early_stop_every": 500,
    # training recipe: auto | published | linear (see RECIPES; docs/training-recipes.md)
    "recipe": "auto",
}


def resolve_recipe(spec: Mapping[str, Any], n_train: int) -> str:
    """The recipe a run with ``spec`` trains with on a split of ``n_train`` training pairs:
    the spec's ``recipe``, or for ``auto`` ``linear`` on ``csv``/``synthetic`` data with at least
    :data:`LINEAR_RECIPE_MIN_ROWS` training pairs and ``published`` otherwise."""
    recipe = spec.get("recipe", "auto") or "auto"
    if recipe not in RECIPES:
        raise SpecError("recipe", f"unknown value {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if recipe != "auto":
        return recipe
    if spec.get("dataset") in LINEAR_DEFAULT_DATASETS and int(n_train) >= LINEAR_RECIPE_MIN_ROWS:
        return "linear"
    return "published"


def build_split(spec: Mapping[str, Any]) -> Any:
    """The :class:`~deca_tune.data.interactions.RecSplit` of ``spec`` (a rec loader returns it
    ready to train on; ``deca_tune.data.load_split`` caches it)."""
    from deca_tune.data.loading import load_dataset

    return load_dataset("rec", spec["dataset"], data_root=spec.get("data_root"),
                        download=bool(spec.get("download", True)),
                        verify=bool(spec.get("verify_checksums", True)),
                        **(spec.get("dataset_options") or {}))


def check(spec: Mapping[str, Any]) -> None:
    if spec.get("sampler") is not None:
        from deca_tune.data.sampling import SAMPLERS

        if spec["sampler"] not in SAMPLERS:
            raise SpecError("sampler", f"unknown negative sampler {spec['sampler']!r}; choose one of: "
                                       f"{', '.join(SAMPLERS.names())}")
    check_range(spec, "l2", 0)
    check_range(spec, "neg_ratio", 1, integer=True)
    check_range(spec, "eval_batch_users", 1, integer=True)
    check_range(spec, "valid_users", 1, integer=True)
    if spec.get("eval_splits", "all") not in EVAL_SPLIT_CHOICES:
        raise SpecError("eval_splits", f"unknown value {spec['eval_splits']!r}; choose one of: "
                                       f"{', '.join(EVAL_SPLIT_CHOICES)}")
    if spec.get("early_stop") not in (None, "authors"):
        raise SpecError("early_stop", f"unknown value {spec['early_stop']!r}; choose null or authors")
    check_range(spec, "early_stop_every", 1, integer=True)
    if spec.get("recipe", "auto") not in RECIPES:
        raise SpecError("recipe", f"unknown value {spec['recipe']!r}; choose one of: {', '.join(RECIPES)}")


REC = TASKS.register("rec")(Task(
    name="rec", title="recommendation",
    datasets=REC_DATASETS, backbones=REC_BACKBONES, methods=REC_METHODS,
    defaults=DEFAULTS,
    trainer="deca_tune.training.rec_trainer:RecTrainer",
    split_builder="deca_tune.tasks.rec:build_split", split_keys=(),
    backbone_builder="deca_tune.models.rec:build_backbone",
    metric=f"ndcg@{SELECTION_K}",
    checks=(check,),
    default_backbones=("gmf",), default_methods=("normal", "deca", "deca_p"),
))
