"""deca_tune.bench.authors: patching, command line and output parsing, on small fake files.

No network and no real checkout of the authors' repository are needed; the one test that checks a
real checkout runs only where ``$DECA_AUTHORS_CHECKOUT`` points at one.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deca_tune.bench import authors as A

# Fake files holding exactly the text the patches target (and no more).
FAKE_MAIN = '''import os, sys

class torch:
    """Stands in for torch: the fake must start fast."""
    @staticmethod
    def set_num_threads(n):
        print("THREADS", n, os.environ.get("OMP_NUM_THREADS"), os.environ.get("DECA_AUTHORS_EPOCHS"))
    @staticmethod
    def load(*a, **k):
        raise AssertionError("not used")
    class cuda:
        @staticmethod
        def is_available():
            return True

def main(param):
    if param.get("pre"):
        torch.load(GMF_folder)
        torch.load(MLP_folder)
    argv = [a for a in sys.argv[1:] if a != "--default"]
    args = dict(zip(argv[0::2], argv[1::2]))
    assert os.path.isfile(os.path.join(args["--datadir"], args["--dataset"], args["--dataset"] + ".train.rating"))
    assert os.path.isdir(args["--folder"])
    print("device", param["device"])
    print("seed:", args["--seed"])
    print("method:", args.get("--method"))
    print("epochs: 3, early_stop: True, early_stop_rounds: 2")
    print("regularization lambda: 0.1")
    print("DECA_AUTHORS_EPOCH main 0 100.0")
    print("DECA_AUTHORS_EPOCH main 1 102.0")
    print("DECA_AUTHORS_TRAIN_END 106.0")
    print("Recall 0.1000-0.2000-0.3000-0.4000")
    print("NDCG 0.0100-0.0200-0.0300-0.0400")
    return [0.5] * 4 + [0.11, 0.22, 0.33, 0.44] + [0.011, 0.022, 0.033, 0.044] + [0.9] * 4

if __name__ == '__main__':
    param = {}
    if "--default" in sys.argv:
        param['device'] = 'cuda' if torch.cuda.is_available() else 'cpu'
        main(param)
'''
FAKE_TRAIN = '''class TrainModel:
    def train(self):
        def RS_train(model):
            for epoch in range(self.param['epochs']):
                pass
        def CDAE_train(model, epochs):
            for epoch in range(epochs):
                pass
        try:
            self.aux_model = torch.load(os.path.join(self.param['folder'], f"{self.param['model']}_{self.param['dataset']}.ckpt")).to(self.device)
        except Exception:
            self.aux_model = torch.load(os.path.join(self.param['folder'], f"{self.param['model']}_{self.param['dataset']}.ckpt")).to(self.device)
        print("############################## Training End. ##############################")
        a = evaluate.test_CDAE(self.model, 2048, user_pos, self.top_k, test_data_pos, self.user_num, self.item_num, train_matrix, device='cuda')
        b = evaluate.test_all_users(self.model, 4096, self.item_num, test_data_pos, user_pos, self.top_k, device='cuda')
        # c = evaluate.test_all_users(self.model, 4096, self.item_num, test_data_noisy, user_pos, top_k, device='cuda')
'''
FAKE_CONFIGS = '''DeCA_configs = {
 ('GMF', "ml-100k"): {'iterative': True, 'C_2': 1000, 'C_1': 1000, 'epochs': 20, 'early_stop': False,
   'lambda0': 0.1, 'alpha': 1}}
DeCAp_configs = {
 ('CDAE', 'ml-100k'): {'iterative': True, 'C_2': 10, 'C_1': 1000, 'epochs': 500, 'early_stop': False,
   'lambda0': 1, 'alpha': 1}}
baseline_configs = {
 ('NeuMF-end', 'ml-100k'): {'epochs': 100, 'early_stop': True}}
lambdas = {
 ('NeuMF-end', 'ml-100k', 'normal'): 0.01,
}
def get_config(model, dataset, method):
 param = {}
 return param
'''

PATCHED_LOG = """data loaded! user_num:944, item_num:1611 train_data_len:79619 test_user_num:707
seed: 3
method: DeCAp
model: GMF, dataset: ml-100k
h_model: MF
alpha: 1
C_1 used in DP: 1000, C_2 used in DN: 1000
epochs: 20, early_stop: False, early_stop_rounds: 2
regularization lambda: 0.1
negative sampling rate: 1
pretrained model not found, train from scratch
pretrain_model...
DECA_AUTHORS_EPOCH aux 0 10.0
DECA_AUTHORS_EPOCH aux 1 11.0
Eval: epoch: 12, iter: 500, Eval loss:3.25
pretrain model done
DECA_AUTHORS_EPOCH main 0 13.0
DECA_AUTHORS_EPOCH main 1 16.0
DECA_AUTHORS_EPOCH main 2 19.0
Eval: epoch: 12, iter: 500, Eval loss:tensor(2.5000)
DECA_AUTHORS_TRAIN_END 22.0
############################## Training End. ##############################
################### CLEAN TEST ######################
Recall 0.0430-0.0575-0.0760-0.1021
NDCG 0.0700-0.0650-0.0620-0.0606
DECA_AUTHORS_RESULT 0.1 0.2 0.3 0.4 0.043 0.0575 0.076 0.10213 0.07 0.065 0.062 0.06061 0.5 0.6 0.7 0.8
"""


def _fake_checkout(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "main.py").write_text(FAKE_MAIN)
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "configs.py").write_text(FAKE_CONFIGS)
    return root


def _fake_data(root: Path, dataset: str = "ml-100k") -> Path:
    d = root / dataset
    d.mkdir(parents=True)
    for s in ("train.rating", "valid.rating", "test.negative", "test.noisy"):
        (d / f"{dataset}.{s}").write_text("1\t0\t5\n")
    return root


def test_prepare_checkout_patches_a_copy_and_leaves_the_source(tmp_path):
    src = _fake_checkout(tmp_path / "src")
    before = {p.name: p.read_text() for p in src.iterdir()}
    prepared = A.prepare_checkout(src, tmp_path / "work")
    assert prepared == (tmp_path / "work" / "DeCA").resolve()
    assert {p.name: p.read_text() for p in src.iterdir()} == before  # source untouched
    main, train, configs = ((prepared / n).read_text() for n in ("main.py", "train.py", "configs.py"))
    assert "torch.set_num_threads(int(os.environ.get('DECA_AUTHORS_THREADS', '1')))" in main
    assert "os.environ.get('DECA_AUTHORS_DEVICE', 'cpu')" in main and "is_available() else" not in main
    assert "torch.load(GMF_folder, weights_only=False)" in main
    assert "DECA_AUTHORS_RESULT" in main
    assert train.count("weights_only=False") == 2
    assert "train_matrix, device=self.device)" in train and "self.top_k, device=self.device)" in train
    assert "top_k, device='cuda')" in train  # the commented-out line is left alone
    assert train.count("DECA_AUTHORS_EPOCH") == 2 and "DECA_AUTHORS_TRAIN_END" in train
    assert "DECA_AUTHORS_EPOCHS" in configs
    for name in ("main.py", "train.py", "configs.py"):
        compile((prepared / name).read_text(), name, "exec")  # still valid Python
    assert (prepared / A.PATCH_RECORD).is_file()
    # preparing again replaces the earlier copy instead of patching it twice
    assert A.prepare_checkout(src, tmp_path / "work") == prepared


def test_missing_patch_target_names_the_file(tmp_path):
    src = _fake_checkout(tmp_path / "src")
    (src / "train.py").write_text(FAKE_TRAIN.replace("Training End.", "Done."))
    with pytest.raises(A.PatchError, match=r"train\.py.*Training End"):
        A.prepare_checkout(src, tmp_path / "work")
    assert "Done." in (src / "train.py").read_text()  # the source is never patched


def test_patch_target_found_too_often_or_file_missing(tmp_path):
    src = _fake_checkout(tmp_path / "src")
    (src / "main.py").write_text(FAKE_MAIN + "\ndef main(param):\n    pass\n")
    with pytest.raises(A.PatchError, match=r"main\.py.*found 2 times, expected 1"):
        A.prepare_checkout(src, tmp_path / "work")
    (src / "main.py").write_text(FAKE_MAIN)
    (src / "configs.py").unlink()
    with pytest.raises(A.PatchError, match=r"configs\.py: file to patch not found"):
        A.prepare_checkout(src, tmp_path / "work2")


def test_not_a_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkout"):
        A.prepare_checkout(tmp_path, tmp_path / "work")


def test_parse_patched_output():
    r = A.parse_output(PATCHED_LOG)
    assert r["metrics_source"] == "DECA_AUTHORS_RESULT"
    assert r["recall@20"] == pytest.approx(0.10213) and r["ndcg@20"] == pytest.approx(0.06061)
    assert r["recall"]["3"] == pytest.approx(0.043) and r["mrr"]["20"] == pytest.approx(0.8)
    assert r["precision"]["10"] == pytest.approx(0.3)
    assert r["epochs_run"] == 3 and r["epochs_configured"] == 20 and r["early_stopped"] is True
    assert r["seconds_per_epoch"] == pytest.approx(3.0)  # 13 -> 16 -> 19 -> end 22
    assert r["aux"]["epochs_run"] == 2 and r["aux"]["seconds_per_epoch"] == pytest.approx(1.5)  # 10, 11, 13
    assert (r["C_1"], r["C_2"], r["alpha"], r["lambda0"]) == (1000.0, 1000.0, 1.0, 0.1)
    assert r["eval_losses"] == [3.25, 2.5]
    assert r["pretrained_fprime"] == "trained"


def test_parse_unpatched_output_uses_the_printed_four_decimals():
    text = "\n".join(line for line in PATCHED_LOG.splitlines() if not line.startswith("DECA_AUTHORS"))
    r = A.parse_output(text)
    assert r["metrics_source"] == "printed (4 decimals)"
    assert r["recall"] == {"3": 0.043, "5": 0.0575, "10": 0.076, "20": 0.1021}
    assert r["ndcg@20"] == 0.0606
    assert r["epochs_run"] == 0 and r["seconds_per_epoch"] is None and r["aux"] is None


def test_parse_output_without_results():
    r = A.parse_output("Traceback (most recent call last):\n")
    assert r["recall@20"] is None and r["ndcg@20"] is None


def test_build_command_names_and_method_flag(tmp_path):
    cmd = A.build_command(tmp_path, "ml-100k", "neumf", "normal", 2, tmp_path / "d", tmp_path / "o", "py")
    assert cmd[:3] == ["py", "-u", "main.py"] and "--method" not in cmd
    assert cmd[cmd.index("--model") + 1] == "NeuMF-end" and cmd[cmd.index("--seed") + 1] == "2"
    assert "--default" in cmd
    cmd = A.build_command(tmp_path, "modcloth", "cdae", "deca_p", 0, tmp_path / "d", tmp_path / "o", "py")
    assert cmd[cmd.index("--method") + 1] == "DeCAp" and cmd[cmd.index("--dataset") + 1] == "modcloth"


def test_authors_config_as_data():
    c = A.AUTHORS_CONFIG
    assert len(c) == 48  # 4 backbones x 4 data sets x 3 methods
    assert c[("ml-100k", "gmf", "deca")] == dict(iterative=True, C_1=1000, C_2=1000, epochs=20,
                                                 early_stop=False, lambda0=0.1, alpha=1)
    assert c[("ml-100k", "cdae", "normal")] == dict(epochs=200, early_stop=False, lambda0=1.0)
    assert c[("ml-100k", "lightgcn", "deca_p")]["C_1"] == 1
    assert c[("adressa", "lightgcn", "deca_p")]["iterative"] is False


def test_read_authors_configs_without_executing(tmp_path):
    (tmp_path / "configs.py").write_text(FAKE_CONFIGS)
    got = A.read_authors_configs(tmp_path)
    assert got[("ml-100k", "gmf", "deca")] == A.AUTHORS_CONFIG[("ml-100k", "gmf", "deca")]
    assert got[("ml-100k", "cdae", "deca_p")] == A.AUTHORS_CONFIG[("ml-100k", "cdae", "deca_p")]
    assert got[("ml-100k", "neumf", "normal")] == A.AUTHORS_CONFIG[("ml-100k", "neumf", "normal")]
    assert len(A.config_mismatches(tmp_path)) == len(A.AUTHORS_CONFIG) - 3


def test_run_cell_on_a_fake_checkout(tmp_path):
    prepared = A.prepare_checkout(_fake_checkout(tmp_path / "src"), tmp_path / "work")
    data = _fake_data(tmp_path / "data")
    r = A.run_cell(prepared, "ml-100k", "gmf", "deca", 4, data, timeout=60, python=sys.executable,
                   max_epochs=5)
    assert r["recall@20"] == pytest.approx(0.44) and r["ndcg@20"] == pytest.approx(0.044)
    assert r["epochs_run"] == 2 and r["seconds_per_epoch"] == pytest.approx(3.0)
    assert r["wall_seconds"] > 0 and r["command"][r["command"].index("--method") + 1] == "DeCA"
    assert r["config"] == A.AUTHORS_CONFIG[("ml-100k", "gmf", "deca")]
    log = Path(r["log"]).read_text()
    assert "THREADS 1 1 5" in log and "device cpu" in log and "seed: 4" in log
    assert (Path(r["log"]).parent / "data" / "ml-100k" / "ml-100k.test.negative").is_file()


def test_run_cell_reports_a_failure(tmp_path):
    src = _fake_checkout(tmp_path / "src")
    (src / "main.py").write_text(FAKE_MAIN.replace("    print(\"device\"", "    raise SystemExit(3)\n    print(\"device\""))
    prepared = A.prepare_checkout(src, tmp_path / "work")
    with pytest.raises(A.AuthorsRunError, match="exit 3"):
        A.run_cell(prepared, "ml-100k", "gmf", "normal", 0, _fake_data(tmp_path / "data"), timeout=60,
                   python=sys.executable)
    with pytest.raises(FileNotFoundError, match="missing"):
        A.run_cell(prepared, "modcloth", "gmf", "normal", 0, tmp_path / "data", python=sys.executable)


def test_real_checkout_matches_and_patches(tmp_path):
    path = os.environ.get("DECA_AUTHORS_CHECKOUT")
    if not path or not Path(path, "main.py").is_file():
        pytest.skip("needs a real checkout of github.com/wangyu-ustc/DeCA: set $DECA_AUTHORS_CHECKOUT")
    assert A.config_mismatches(path) == []
    prepared = A.prepare_checkout(path, tmp_path)
    for name in ("main.py", "train.py", "configs.py"):
        compile((prepared / name).read_text(), name, "exec")
