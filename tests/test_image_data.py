"""Image data: splits, meta set, augmentation, the shared IDX files and a tiny CIFAR-10 file."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from deca_tune.data import IMAGE_DATASETS, clear_cache, load_dataset
from deca_tune.data.download import DataUnavailableError
from deca_tune.data.image.raw import load_cifar10
from deca_tune.data.image.split import build_image_split
from deca_tune.data.image.transforms import augment_batch, normalise

TINY = {"n_train": 400, "n_test": 60}


def _tiny_split(**kw):
    args = dict(seed=0, noise_rate=0.4, valid_size=80, meta_per_class=5, dataset_options=TINY)
    args.update(kw)
    return build_image_split("synthetic-images", **args)


def test_registry_names():
    for name in ("fashion-mnist", "mnist", "cifar10", "synthetic-images"):
        assert name in IMAGE_DATASETS


def test_split_partition_meta_set_and_noise():
    raw = load_dataset("image", "synthetic-images", **TINY)
    sp = _tiny_split()
    assert len(sp.meta_y) == 50 and torch.equal(torch.bincount(sp.meta_y, minlength=10), torch.full((10,), 5))
    assert len(sp.valid_y) == 80 and len(sp.train_y_noisy) == 400 - 50 - 80
    all_rows = torch.cat([sp.train_index, sp.valid_index, sp.meta_index])
    assert torch.equal(torch.sort(all_rows).values, torch.arange(400))  # disjoint, complete
    # the meta set is clean: its labels are the published ones
    assert torch.equal(sp.meta_y, raw.train_y[sp.meta_index])
    assert torch.equal(sp.train_y_true, raw.train_y[sp.train_index])
    assert torch.equal(sp.valid_y_clean, raw.train_y[sp.valid_index])
    assert torch.equal(sp.noisy_mask, sp.train_y_noisy != sp.train_y_true)
    assert 0.25 < sp.realised_noise_rate < 0.55
    assert (sp.valid_y != sp.valid_y_clean).any()
    assert torch.equal(sp.test_y, raw.test_y)  # test labels stay clean
    st = sp.stats()
    assert (st["n_train"], st["n_valid"], st["n_meta"], st["n_test"]) == (270, 80, 50, 60)
    assert st["realised_noise_rate"] == sp.realised_noise_rate and st["n_classes"] == 10


def test_same_seed_same_split_other_seed_differs():
    a = _tiny_split()
    clear_cache()
    b = _tiny_split()
    assert a is not b
    for key in ("train_index", "valid_index", "meta_index", "train_y_noisy", "valid_y"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    c = _tiny_split(seed=1)
    assert not torch.equal(a.train_index, c.train_index)


def test_split_arguments_are_checked():
    with pytest.raises(ValueError, match="valid_size"):
        _tiny_split(valid_size=400)
    with pytest.raises(ValueError, match="train_size"):
        _tiny_split(train_size=10_000)


def test_augment_batch_is_a_padded_crop_with_optional_flip():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).reshape(2, 3, 6, 6)
    out = augment_batch(x, torch.Generator().manual_seed(5), pad=2)
    # replay the same draws and build each image by hand
    g = torch.Generator().manual_seed(5)
    oy = torch.randint(0, 5, (2,), generator=g)
    ox = torch.randint(0, 5, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        want = padded[i, :, oy[i]:oy[i] + 6, ox[i]:ox[i] + 6]
        if flip[i]:
            want = want.flip(-1)
        assert torch.equal(out[i], want)
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_normalise():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    out = normalise(x, (0.5,), (0.5,))
    assert torch.allclose(out, torch.tensor([[[[-1.0, 1.0]]]]))


def _write_tiny_cifar(root, n_per_batch=4, seed=0):
    """Files in torchvision's CIFAR-10 python format: pickled dicts of uint8 rows [n, 3072]."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{j}.png" for j in range(n_per_batch)]}, fh, protocol=2)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"], "num_vis": 3072}, fh, protocol=2)
    return batches


def test_cifar10_loader_on_a_tiny_file_in_the_real_format(tmp_path):
    batches = _write_tiny_cifar(tmp_path)
    raw = load_cifar10(tmp_path, download=False, verify=False, cache_dir=str(tmp_path / "cache"))
    assert raw.train_x.shape == (20, 3, 32, 32) and raw.test_x.shape == (4, 3, 32, 32)
    assert raw.train_x.dtype == torch.uint8 and raw.augment
    data, labels = batches["data_batch_2"]
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    img = raw.train_x[4 + 1]
    assert torch.equal(img[1, 3, 7], torch.tensor(data[1, 1024 + 3 * 32 + 7]))
    assert torch.equal(img[2, 31, 0], torch.tensor(data[1, 2048 + 31 * 32]))
    assert raw.train_y[4:8].tolist() == labels
    assert raw.classes[0] == "airplane"
    # the same files fail torchvision's md5 check when verification is on
    with pytest.raises(DataUnavailableError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path, download=False, verify=True, cache_dir=str(tmp_path / "cache"))


def test_cifar10_split_through_the_registry(tmp_path):
    _write_tiny_cifar(tmp_path / "cifar10", n_per_batch=60)
    sp = build_image_split("cifar10", data_root=tmp_path, seed=0, valid_size=50, meta_per_class=2,
                           verify_checksums=False, download=False)
    assert sp.in_channels == 3 and sp.image_size == 32 and sp.augment
    assert len(sp.train_y_noisy) == 300 - 20 - 50 and len(sp.test_y) == 60


def test_missing_files_give_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="fashion-mnist"):
        IMAGE_DATASETS.get("fashion-mnist")(tmp_path, download=False, cache_dir=str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("image-cache")


@pytest.mark.parametrize("name,slug,first_labels", [
    ("fashion-mnist", "fashion-mnist", [9, 0, 0, 3, 0]),
    ("mnist", "mnist", [5, 0, 4, 1, 9]),
])
def test_real_idx_files_from_the_shared_layout(shared_data, image_cache, name, slug, first_labels):
    if not (shared_data / slug / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{shared_data / slug} has no IDX files")
    raw = IMAGE_DATASETS.get(name)(shared_data, download=False, cache_dir=str(image_cache))
    assert raw.train_x.shape == (60_000, 1, 28, 28) and raw.test_x.shape == (10_000, 1, 28, 28)
    assert raw.train_x.dtype == torch.uint8 and len(raw.classes) == 10
    assert raw.train_y[:5].tolist() == first_labels
    assert raw.source["layout"] == "shared" and len(raw.source["sha256"]) == 4
    # decompressed into the cache in torchvision's layout; a second load uses it directly
    cls_dir = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
    assert (image_cache / "torchvision" / cls_dir / "raw" / "train-images-idx3-ubyte").is_file()
    again = IMAGE_DATASETS.get(name)(image_cache / "torchvision", download=False, cache_dir=str(image_cache))
    assert again.source["layout"] == "torchvision" and torch.equal(again.train_y, raw.train_y)


def test_channel_stats_match_a_float_computation():
    from deca_tune.data.image.split import _channel_stats

    x = torch.randint(0, 256, (30, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = _channel_stats(x)
    xf = x.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), xf.mean(dim=(0, 2, 3)))
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), xf.std(dim=(0, 2, 3), correction=0))
