"""The image family: multi-class classification with injected label noise, accuracy."""
from __future__ import annotations

from typing import Any, Mapping

from deca_tune.data.registry import IMAGE_DATASETS
from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.models.image import MEMORY_FORMATS
from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.tasks import TASKS
from deca_tune.tasks.base import Task, check_choice, check_range

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "step60", "none")  # step60: x0.2 at 60% (ITLM's official code)
NOISE_TYPES = ("symmetric", "pair")  # deca_tune/data/image/noise.py
PRECISIONS = ("fp32", "bf16")

DEFAULTS: dict[str, Any] = {
    "dataset": "fashion-mnist", "backbone": "convnet", "method": "normal", "max_epochs": 20,
    "lr": 0.01, "batch_size": 100, "noise_rate": 0.4, "noise_type": "symmetric",
    "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4, "momentum": 0.9,
    "data_seed": None,  # seed of the partition and the noise; None = seed
    "valid_size": None,  # None = the data set's (10,000)
    "meta_per_class": 100,  # clean meta images per class (MW-Net), removed from training for all
    "train_size": None,  # None = every remaining training image
    "augment": "auto",  # "auto" = the data set's (crop + flip for CIFAR)
    "eval_batch_size": 250,  # CPU: 250 beats 1000 by 1.4-2x for the conv nets (cache); a GPU wants more
    "precision": "fp32",  # "bf16": bfloat16 autocast of the forward passes (opt-in, faster on AVX-512 BF16 / GPUs)
    "memory_format": "auto",  # "auto" = channels-last for convolutional backbones (deca_tune.models.image)
    "eval_train_rows": 1000,  # training images scored each epoch (train/accuracy, memorisation); 0 = off
    "cache_dir": None,  # writable cache for decompressed files (None: $DECA_TUNE_CACHE)
}


def check(spec: Mapping[str, Any]) -> None:
    check_choice(spec, "optimizer", OPTIMIZERS)
    check_choice(spec, "schedule", SCHEDULES)
    check_choice(spec, "noise_type", NOISE_TYPES)
    check_choice(spec, "memory_format", MEMORY_FORMATS)
    check_choice(spec, "precision", PRECISIONS)
    check_range(spec, "noise_rate", 0, 1, high_open=True)
    check_range(spec, "weight_decay", 0)
    check_range(spec, "momentum", 0, 1)
    check_range(spec, "meta_per_class", 0, integer=True)
    check_range(spec, "valid_size", 1, integer=True)
    check_range(spec, "train_size", 1, integer=True)
    check_range(spec, "eval_batch_size", 1, integer=True)
    check_range(spec, "eval_train_rows", 0, integer=True)


IMAGE = TASKS.register("image")(Task(
    name="image", title="image classification",
    datasets=IMAGE_DATASETS, backbones=IMAGE_BACKBONES, methods=IMAGE_METHODS,
    defaults=DEFAULTS,
    trainer="deca_tune.training.image_trainer:ImageTrainer",
    split_builder="deca_tune.data.image.split:split_from_spec",
    split_keys=(("data_seed", "seed"), "noise_rate", "noise_type", "valid_size", "meta_per_class",
                "train_size", "cache_dir"),
    backbone_builder="deca_tune.models.image:build_backbone",
    metric="accuracy",
    checks=(check,),
    # the paper's image setting (section 5.1): ResNet-32 with the methods of its Table 4
    default_backbones=("resnet32",), default_methods=("normal", "itlm", "mwnet", "deca_p"),
))
