"""Your own images with the labels they have (issue 18): ``image-folder``, ``image-csv``, the
``noisy_labels`` option, the decoded-image cache, errors naming the file, the trainer's metrics
on given labels, and (slow) a search from a folder of PNGs to a report."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deca_tune.data import clear_cache, load_dataset, load_split
from deca_tune.data.__main__ import main as data_main
from deca_tune.data.download import DataUnavailableError
from deca_tune.data.image import decode as decode_mod
from deca_tune.data.image.decode import ImageFileError, decode_file
from deca_tune.data.image.labels import LabelFileError
from deca_tune.data.readers import MalformedFileError


def write_folder(root: Path, n: int = 90, n_classes: int = 3, flip: float = 0.3, size: int = 12,
                 seed: int = 0, mode: str = "L") -> tuple[list[int], list[int]]:
    """PNGs under ``root/train/c<noisy>/img<i>.png`` (class = a bright band at a class-specific
    row, plus pixel noise) and ``root/clean.csv`` naming each file's clean class."""
    rng = np.random.default_rng(seed)
    clean, noisy, rows = [], [], ["file,label"]
    for i in range(n):
        c = i % n_classes
        y = int((c + rng.integers(1, n_classes)) % n_classes) if rng.random() < flip else c
        arr = (rng.random((size, size)) * 60).astype(np.uint8)
        band = slice(c * size // n_classes, (c + 1) * size // n_classes)
        arr[band] += 150
        folder = root / "train" / f"c{y}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(arr)
        img.convert(mode).save(folder / f"img{i}.png")
        clean.append(c)
        noisy.append(y)
        rows.append(f"img{i}.png,c{c}")
    (root / "clean.csv").write_text("\n".join(rows) + "\n")
    return clean, noisy


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def folder(tmp_path) -> tuple[Path, list[int], list[int]]:
    clean, noisy = write_folder(tmp_path)
    return tmp_path, clean, noisy


def test_folder_labels_are_the_noisy_labels_and_clean_labels_are_matched(folder):
    root, clean, noisy = folder
    raw = load_dataset("image", "image-folder", path=str(root / "train"), clean=str(root / "clean.csv"),
                       test_fraction=0.2)
    assert raw.labels_given and raw.classes == ["c0", "c1", "c2"]
    assert raw.train_x.dtype == torch.uint8 and raw.train_x.shape[1:] == (1, 12, 12)  # auto: grey
    assert len(raw.train_y) + len(raw.test_y) == 90 and len(raw.test_y) == 18
    by_file = {f"img{i}.png": (noisy[i], clean[i]) for i in range(90)}
    for files, given, cl in ((raw.train_files, raw.train_y, raw.train_y_clean),
                             (raw.test_files, raw.test_y, raw.test_y_clean)):
        expect = [by_file[Path(f).name] for f in files]
        assert given.tolist() == [e[0] for e in expect]
        assert cl.tolist() == [e[1] for e in expect]


def test_given_labels_split_injects_nothing_and_describe_reports_agreement(folder, capsys):
    root, clean, noisy = folder
    argv = ["describe", "image-folder", "--option", f"path={root / 'train'}",
            "--option", f"clean={root / 'clean.csv'}", "--option", "image_size=8", "--set", "valid_size=10"]
    assert data_main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["labels"] == "given" and stats["injected_noise_rate"] == 0.0 and stats["image_size"] == 8
    assert {c: stats["train_per_class"][c] + stats["test_per_class"][c] for c in stats["classes"]} == \
        {f"c{k}": noisy.count(k) for k in range(3)}
    agree = np.mean([a == b for a, b in zip(clean, noisy)])
    n_tr, n_te = sum(stats["train_per_class"].values()), sum(stats["test_per_class"].values())
    overall = (stats["train_agreement_with_clean"] * n_tr + stats["test_agreement_with_clean"] * n_te) / 90
    assert overall == pytest.approx(agree)
    split = load_split("image", {"dataset": "image-folder", "valid_size": 10, "dataset_options": {
        "path": str(root / "train"), "clean": str(root / "clean.csv"), "image_size": 8}})
    assert split.labels == "given" and split.noise_rate == 0.0 and len(split.meta_y) == 0
    # the noisy mask is exactly "given label != clean label"
    assert torch.equal(split.noisy_mask, split.train_y_noisy != split.train_y_true)
    assert split.test_y_noisy is not None  # held-out labels are given (noisy) labels


def test_without_clean_labels_clean_parts_are_unknown(folder):
    root, _, _ = folder
    split = load_split("image", {"dataset": "image-folder", "valid_size": 10,
                                 "dataset_options": {"path": str(root / "train")}})
    assert split.clean_known() == {"train": 0, "valid": 0, "test": 0}
    assert not bool(split.noisy_mask.any())
    with pytest.raises(ValueError, match="needs clean labels"):
        load_split("image", {"dataset": "image-folder", "valid_size": 10, "meta_per_class": 2,
                             "dataset_options": {"path": str(root / "train")}})


def test_trainer_reports_clean_metrics_only_where_clean_labels_exist(folder, one_torch_thread):
    from deca_tune.training import build_trainer

    root, _, _ = folder
    base = {"task": "image", "dataset": "image-folder", "backbone": "mlp", "method": "normal", "max_epochs": 1,
            "valid_size": 10, "batch_size": 32, "device": "cpu", "lr": 0.1}
    no_clean = build_trainer({**base, "dataset_options": {"path": str(root / "train")}})
    m = no_clean.train_epoch()
    assert {"valid/accuracy", "test/accuracy", "train/accuracy"} <= set(m)
    assert not {k for k in m if "clean" in k or "memorised" in k}
    with pytest.raises(ValueError, match="no.*clean validation|has none"):
        build_trainer({**base, "protocol": "paper", "dataset_options": {"path": str(root / "train")}})
    with_clean = build_trainer({**base, "dataset_options": {"path": str(root / "train"),
                                                            "clean": str(root / "clean.csv")}})
    m = with_clean.train_epoch()
    assert {"valid/accuracy", "valid_clean/accuracy", "test/accuracy", "test_clean/accuracy"} <= set(m)


def test_decoded_images_are_cached_on_disk_by_content(folder, monkeypatch, private_cache):
    root, _, _ = folder
    opts = {"path": str(root / "train"), "image_size": 8}
    first = load_dataset("image", "image-folder", **opts)
    assert list((private_cache / "images").glob("*.npz"))
    clear_cache()

    def no_decoding(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr("deca_tune.data.image.folder.decode_files", no_decoding)
    again = load_dataset("image", "image-folder", **opts)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    assert list(again.train_files) == list(first.train_files)
    # one changed file (same name) is a new entry: decoded again
    png = root / "train" / "c0" / "img0.png"
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(png)
    clear_cache()
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("image", "image-folder", **opts)


def test_formats_modes_and_sizes_decode_to_the_asked_form(tmp_path):
    rgb = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp")):
        path = tmp_path / f"a.{ext}"
        im.save(path, fmt)
        for channels in (1, 3):
            x = decode_file(path, channels, size=16)
            assert x.dtype == torch.uint8 and x.shape == (channels, 16, 16), (fmt, channels)
    im.convert("RGBA").save(tmp_path / "rgba.png")
    assert torch.equal(decode_file(tmp_path / "rgba.png", 3), decode_file(tmp_path / "a.png", 3))
    # a palette image and a 16-bit grey image
    im.convert("P").save(tmp_path / "p.png")
    assert decode_file(tmp_path / "p.png", 3).shape == (3, 20, 30)
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    assert torch.equal(decode_file(tmp_path / "g16.png", 1)[0], torch.from_numpy(rgb[..., 0]))


def test_errors_name_the_file(tmp_path, folder):
    root, _, _ = folder
    bad = root / "train" / "c1" / "img1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    with pytest.raises(ImageFileError, match=r"img1\.png.*(truncated|corrupt)"):
        load_dataset("image", "image-folder", path=str(root / "train"), cache=False)
    bad.unlink()
    (root / "train" / "c9").mkdir()
    (root / "train" / "c9" / "notes.txt").write_text("x")
    with pytest.raises(ImageFileError, match=r"c9: class folder has no image files"):
        load_dataset("image", "image-folder", path=str(root / "train"))
    (root / "train" / "c9" / "notes.txt").unlink()
    (root / "train" / "c9").rmdir()
    test = tmp_path / "test" / "dog"
    test.mkdir(parents=True)
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(test / "d.png")
    with pytest.raises(ImageFileError, match=r"test.dog: class 'dog' of the test folder is not a training class"):
        load_dataset("image", "image-folder", path=str(root / "train"), test=str(tmp_path / "test"))
    (root / "bad_clean.csv").write_text("file,label\nimg0.png,c0\nimg2.png,zebra\n")
    with pytest.raises(LabelFileError, match=r"bad_clean\.csv, line 3: clean class 'zebra'"):
        load_dataset("image", "image-folder", path=str(root / "train"), clean=str(root / "bad_clean.csv"))
    Image.fromarray(np.zeros((10, 14), dtype=np.uint8)).save(root / "train" / "c2" / "zz_odd.png")
    with pytest.raises(ImageFileError, match=r"zz_odd\.png is 10x14 but .* is 12x12; set option image_size"):
        load_dataset("image", "image-folder", path=str(root / "train"))
    assert load_dataset("image", "image-folder", path=str(root / "train"), image_size=8).train_x.shape[-1] == 8
    with pytest.raises(DataUnavailableError, match="nowhere"):
        load_dataset("image", "image-folder", path=str(tmp_path / "nowhere"))


def write_csv_set(root: Path) -> Path:
    rng = np.random.default_rng(3)
    (root / "imgs").mkdir()
    lines = ["path,label,verified,part"]
    for i in range(40):
        arr = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "imgs" / f"{i}.png")
        label, verified = str(i % 2), (str(i % 2) if i % 3 else "")
        lines.append(f"imgs/{i}.png,{label},{verified},{'test' if i >= 30 else 'train'}")
    csv = root / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_image_csv_columns_split_and_clean_labels(tmp_path):
    csv = write_csv_set(tmp_path)
    raw = load_dataset("image", "image-csv", path=str(csv), file_col="path", clean_col="verified",
                       split_col="part")
    assert raw.train_x.shape == (30, 3, 8, 8) and raw.test_x.shape == (10, 3, 8, 8)
    assert raw.classes == ["0", "1"] and raw.train_y.tolist() == [i % 2 for i in range(30)]
    assert raw.train_y_clean.tolist() == [(i % 2 if i % 3 else -1) for i in range(30)]
    lines = csv.read_text().splitlines()
    lines[5] = lines[5].replace("imgs/4.png", "imgs/missing.png")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataUnavailableError, match=r"labels\.csv, line 6: image file 'imgs/missing\.png' not found"):
        load_dataset("image", "image-csv", path=str(csv), file_col="path")
    lines[5] = lines[5].replace("missing", "4")
    lines[35] = lines[35].replace(",1,", ",7,").replace(",0,", ",7,")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedFileError, match=r"line 36: test label '7' is not a class"):
        load_dataset("image", "image-csv", path=str(csv), file_col="path", split_col="part")
    lines[35] = lines[35].replace(",7,", ",1,")
    fields = lines[8].split(",")  # imgs/7.png: clean label 1 -> 9
    fields[2] = "9"
    lines[8] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedFileError, match=r"line 9: clean label '9' is not a class"):
        load_dataset("image", "image-csv", path=str(csv), file_col="path", clean_col="verified")
    fields = lines[9].split(",")
    fields[1] = ""
    lines[9] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedFileError, match=r"line 10: empty label"):
        load_dataset("image", "image-csv", path=str(csv), file_col="path", split_col="part")


# ------------------------------------------------------------------ MNIST: PNG == IDX, noisy_labels

def _mnist_images(shared_data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST not in the shared data")
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as fh:
        x = np.frombuffer(fh.read(), dtype=np.uint8, offset=16)[: n * 784].reshape(n, 28, 28)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz") as fh:
        y = np.frombuffer(fh.read(), dtype=np.uint8, offset=8)[:n]
    return x, y


def test_mnist_digits_written_as_png_decode_to_the_idx_tensors(shared_data, tmp_path):
    x, y = _mnist_images(shared_data, 30)
    for i, (img, label) in enumerate(zip(x, y)):
        (tmp_path / "train" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "train" / str(label) / f"{i:05d}.png")
    raw = load_dataset("image", "image-folder", path=str(tmp_path / "train"), test_fraction=0.1, cache=False)
    mnist = load_dataset("image", "mnist", data_root=str(shared_data))
    for files, xs, ys in ((raw.train_files, raw.train_x, raw.train_y), (raw.test_files, raw.test_x, raw.test_y)):
        rows = [int(Path(f).stem) for f in files]
        assert torch.equal(xs, mnist.train_x[rows])  # bit-identical pixels
        assert [int(raw.classes[k]) for k in ys.tolist()] == mnist.train_y[rows].tolist()


def test_noisy_labels_file_replaces_the_training_labels(shared_data, tmp_path):
    mnist = load_dataset("image", "mnist", data_root=str(shared_data))
    n = len(mnist.train_y)
    noisy = (mnist.train_y + (torch.arange(n) % 5 == 0).long()) % 10
    torch.save({"clean_label": mnist.train_y.numpy(), "worse_label": noisy.numpy()}, tmp_path / "human.pt")
    raw = load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / "human.pt"),
                       noisy_labels_key="worse_label")
    assert raw.labels_given and torch.equal(raw.train_y, noisy) and torch.equal(raw.train_y_clean, mnist.train_y)
    np.save(tmp_path / "labels.npy", noisy.numpy())
    pd.DataFrame({"label": noisy.numpy()}).to_csv(tmp_path / "labels.csv", index=False)
    for name in ("labels.npy", "labels.csv"):
        other = load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / name))
        assert torch.equal(other.train_y, noisy)
    split = load_split("image", {"dataset": "mnist", "data_root": str(shared_data), "meta_per_class": 10,
                                 "valid_size": 1000,
                                 "dataset_options": {"noisy_labels": str(tmp_path / "labels.npy")}})
    assert split.noise_rate == 0.0 and split.test_y_noisy is None  # nothing injected, clean test
    assert split.realised_noise_rate == pytest.approx(0.2, abs=0.01)
    assert torch.equal(split.meta_y, mnist.train_y[split.meta_index])  # the meta set is clean
    # errors: out of range (the CSV line), wrong length, unknown key, wrong row order
    bad = noisy.numpy().copy()
    bad[7] = 10
    pd.DataFrame({"label": bad}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(LabelFileError, match=r"bad\.csv, line 9: label 10 is out of range"):
        load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / "bad.csv"))
    np.save(tmp_path / "short.npy", noisy.numpy()[:100])
    with pytest.raises(LabelFileError, match=r"short\.npy: 100 labels, but the training set has 60000"):
        load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / "short.npy"))
    with pytest.raises(LabelFileError, match=r"no entry 'aggre_label'.*clean_label, worse_label"):
        load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / "human.pt"),
                     noisy_labels_key="aggre_label")
    torch.save({"clean_label": noisy.numpy(), "worse_label": noisy.numpy()}, tmp_path / "order.pt")
    with pytest.raises(LabelFileError, match="not in the data set's row order"):
        load_dataset("image", "mnist", data_root=str(shared_data), noisy_labels=str(tmp_path / "order.pt"),
                     noisy_labels_key="worse_label")


# ------------------------------------------------------------------ a search to a report (done-when a)

@pytest.mark.slow
def test_search_from_a_folder_of_pngs_to_a_report(ray_session, tmp_path, capsys):
    """A folder of PNGs with noisy labels and known clean classes -> normal and deca_p searched
    on the noisy validation split -> the report shows noisy- and clean-label accuracy."""
    from deca_tune.report import main as report_main
    from deca_tune.search import main as search_main

    write_folder(tmp_path, n=150, flip=0.3)
    argv = ["--datasets", "image-folder", "--option", f"path={tmp_path / 'train'}",
            "--option", f"clean={tmp_path / 'clean.csv'}", "--backbones", "mlp", "--methods", "normal", "deca_p",
            "--search", "grid", "--set", "lr=0.1", "--set", "valid_size=20", "--set", "batch_size=32",
            "--set", "C1=1", "--set", "C2=1", "--set", "T1=1", "--max-epochs", "2", "--seeds", "0",
            "--storage-path", str(tmp_path / "exp"), "--name", "own", "--verbose", "0"]
    assert search_main(argv) == 0, capsys.readouterr()
    exp = tmp_path / "exp" / "own"
    trials = pd.read_csv(exp / "summary" / "search_trials.csv")
    assert set(trials["selection_metric"]) == {"valid/accuracy"}
    runs = pd.read_csv(exp / "summary" / "seed_runs.csv")
    assert set(runs["method"]) == {"normal", "deca_p"}
    assert runs["test/accuracy"].between(0, 1).all() and runs["test_clean/accuracy"].between(0, 1).all()
    assert (runs["config/noise_rate"] == 0).all()
    assert report_main([str(exp), "--formats", "md,csv"]) == 0
    md = (exp / "report" / "report.md").read_text()
    assert "## Labels given as noisy" in md and "clean labels known for test 30/30, valid 20/20, train 100/100" in md
    clean = pd.read_csv(exp / "report" / "tables" / "table4_image-folder.csv")
    noisy = pd.read_csv(exp / "report" / "tables" / "table4_image-folder_given_labels.csv")
    for table, metric in ((clean, "test_clean/accuracy"), (noisy, "test/accuracy")):
        assert set(table["column"]) == {"given labels"}
        for method, row in (("normal", "Normal"), ("deca_p", "DeCA(p)")):
            cell = table[table["row"] == row].iloc[0]
            assert cell["mean"] == pytest.approx(runs.loc[runs["method"] == method, metric].iloc[0])


def test_spec_defaults_and_absolute_paths_for_the_search(folder, monkeypatch):
    from deca_tune.search.plan import absolute_options
    from deca_tune.tasks import get_task

    image = get_task("image")
    assert image.make_spec(dataset="image-folder")["noise_rate"] == 0.0
    assert image.make_spec(dataset="image-folder")["meta_per_class"] == 0
    assert image.make_spec(dataset="image-folder", noise_rate=0.2)["noise_rate"] == 0.2  # asked: injected
    assert image.make_spec(dataset="mnist")["noise_rate"] == 0.4  # published sets unchanged
    assert image.make_spec(dataset="mnist", dataset_options={"noisy_labels": "x.npy"})["noise_rate"] == 0.0
    root, _, _ = folder
    monkeypatch.chdir(root)
    opts = absolute_options("image-folder", {"path": "train", "clean": "clean.csv"}, "/nonexistent")
    assert opts == {"path": str(root / "train"), "clean": str(root / "clean.csv")}


def test_report_without_clean_labels_says_what_it_skipped(tmp_path):
    """Analysis only (a fabricated folder): given labels, no clean labels at all."""
    from analysis.report import build_report
    from tests.helpers_analysis import write_experiment

    runs = [{"dataset": "image-folder", "backbone": "convnet", "method": m, "seed": s, "task": "image",
             "status": "TERMINATED", "config/noise_rate": 0.0, "valid/accuracy": 0.6 + 0.01 * s,
             "test/accuracy": acc + 0.01 * s}
            for m, acc in (("normal", 0.5), ("deca_p", 0.55)) for s in (0, 1)]
    stats = {"name": "image-folder", "labels": "given", "n_train": 80, "n_valid": 10, "n_test": 20,
             "clean_train": 0, "clean_valid": 0, "clean_test": 0, "test_labels": "given"}
    exp = write_experiment(tmp_path / "exp", runs=runs,
                           manifest={"seeds": [0, 1], "data": {"image-folder": {"stats": stats}}})
    report = build_report(exp, formats=("md", "csv"))
    names = {t.name for t in report.tables}
    assert "table4_image-folder_given_labels" in names and "table4_image-folder" not in names
    md = report.markdown.read_text()
    assert "Skipped (they need clean labels): clean test accuracy" in md
    assert "noise-detection AUC" in md.split("## Labels given as noisy")[1].split("## Tables")[0]
    cells = pd.read_csv(report.out_dir / "tables" / "table4_image-folder_given_labels.csv")
    cell = cells[cells["row"] == "DeCA(p)"].iloc[0]
    assert cell["column"] == "given labels" and cell["mean"] == pytest.approx(0.555)
