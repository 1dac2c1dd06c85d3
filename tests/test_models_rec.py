import pytest
import torch

from deca_tune.models.rec import REC_BACKBONES, build_backbone
from deca_tune.registry import UnknownNameError
from tests.helpers_rec import tiny_split

BACKBONES = ["mf", "gmf", "neumf", "cdae", "lightgcn"]


def test_registry_lists_all_backbones():
    assert set(BACKBONES) <= set(REC_BACKBONES.names())
    with pytest.raises(UnknownNameError, match="gmf.*lightgcn"):
        build_backbone("nope", tiny_split())


@pytest.mark.parametrize("name", BACKBONES)
def test_shapes_gradients_and_score_all_agree_with_forward(name):
    split = tiny_split()
    torch.manual_seed(0)
    model = build_backbone(name, split)
    users = torch.tensor([0, 1, 1, 5])
    items = torch.tensor([3, 0, 7, 39])
    logits = model(users, items)
    assert logits.shape == (4,)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        all_scores = model.score_all(torch.tensor([0, 1, 5]))
        assert all_scores.shape == (3, split.n_items)
        pair = model(users, items)
    rows = {0: 0, 1: 1, 5: 2}
    expected = torch.stack([all_scores[rows[int(u)], int(i)] for u, i in zip(users, items)])
    torch.testing.assert_close(pair, expected, rtol=1e-5, atol=1e-6)


def test_paper_sizes_by_default():
    split = tiny_split()
    assert build_backbone("gmf", split).user.embedding_dim == 32
    assert build_backbone("neumf", split).user_gmf.embedding_dim == 32
    assert build_backbone("cdae", split).user_node.embedding_dim == 32
    lgn = build_backbone("lightgcn", split)
    assert lgn.user.embedding_dim == 64 and lgn.num_layers == 3


def test_lightgcn_adjacency_is_symmetric_normalised_without_self_loops():
    split = tiny_split()
    adj = build_backbone("lightgcn", split).adjacency.to_dense()
    n = split.n_users + split.n_items
    assert adj.shape == (n, n)
    assert torch.allclose(adj, adj.T)
    assert torch.all(torch.diagonal(adj) == 0)
    u, i = split.train[0]
    deg_u = (split.train[:, 0] == u).sum()
    deg_i = (split.train[:, 1] == i).sum()
    assert adj[u, split.n_users + i] == pytest.approx(1 / (deg_u * deg_i) ** 0.5)
