import pytest
import torch

from deca_tune.models.rec import REC_BACKBONES, build_backbone
from deca_tune.registry import UnknownNameError
from tests.helpers_rec import tiny_split

BACKBONES = ["mf", "gmf", "neumf", "cdae", "cdae-pairwise", "lightgcn"]


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
    assert build_backbone("cdae", split).corruption == 0.5  # the DeCA authors' CDAE
    assert build_backbone("cdae-pairwise", split).corruption == 0.2  # this project's earlier CDAE
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


def test_cdae_scores_do_not_depend_on_the_evaluation_batch():
    """In eval mode the authors' CDAE normalises with fixed reference counts, so a user's scores
    are the same whichever users share the evaluation batch (training normalises per batch)."""
    split = tiny_split()
    torch.manual_seed(0)
    model = build_backbone("cdae", split)
    model.eval()
    with torch.no_grad():
        alone = model.score_all(torch.tensor([4]))
        together = model.score_all(torch.tensor([1, 4, 9]))[1:2]
    torch.testing.assert_close(alone, together)
    model.train()
    model.corruption = 0.0
    with torch.no_grad():
        assert not torch.allclose(model.score_all(torch.tensor([4])), model.score_all(torch.tensor([1, 4, 9]))[1:2])


# ------------------------------------------------------------------ issue 13: faster kernels
def test_lookup_matches_embedding_values_and_gradients():
    from deca_tune.models.rec.base import init_embedding, lookup

    torch.manual_seed(0)
    emb = init_embedding(20, 4)
    idx = torch.tensor([[3, 3, 7], [0, 19, 3]])
    a = emb(idx)
    a.pow(2).sum().backward()
    ga = emb.weight.grad.clone()
    emb.weight.grad = None
    b = lookup(emb, idx)
    b.pow(2).sum().backward()
    assert torch.equal(a, b) and torch.equal(ga, emb.weight.grad)


def _full_lightgcn(model):
    """LightGCN by the book: dense adjacency, autograd through every product."""
    adj = model.adjacency.to_dense()
    x = torch.cat([model.user.weight, model.item.weight])
    total, h = x, x
    for _ in range(model.num_layers):
        h = adj @ h
        total = total + h
    out = total / (model.num_layers + 1)
    return out[: model.n_users], out[model.n_users:]


def test_lightgcn_propagation_matches_the_full_propagation_values_and_gradients():
    split = tiny_split()
    torch.manual_seed(0)
    model = build_backbone("lightgcn", split)
    users, items = torch.tensor([0, 1, 1, 5, 29]), torch.tensor([3, 0, 7, 39, 11])
    u, i = _full_lightgcn(model)
    ref = (u[users] * i[items]).sum(-1)
    (ref * torch.arange(1.0, 6.0)).sum().backward()
    ref_grads = [p.grad.clone() for p in (model.user.weight, model.item.weight)]
    model.zero_grad()
    got = model(users, items)
    (got * torch.arange(1.0, 6.0)).sum().backward()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    for g, r in zip((model.user.weight.grad, model.item.weight.grad), ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7)


def test_symmetric_spmm_on_csr_is_autograd_bit_for_bit():
    from deca_tune.models.rec.graph import normalized_adjacency, symmetric_spmm

    split = tiny_split()
    adj = normalized_adjacency(split.train, split.n_users, split.n_items)
    x = torch.randn(adj.shape[0], 8, requires_grad=True)
    w = torch.randn(adj.shape[0], 8)
    ((adj @ x) * w).sum().backward()
    ref = x.grad.clone()
    x.grad = None
    y = symmetric_spmm(adj, x)
    (y * w).sum().backward()
    assert torch.equal(y, adj @ x.detach()) and torch.equal(x.grad, ref)


def test_lightgcn_evaluation_cache_follows_the_weights():
    split = tiny_split()
    torch.manual_seed(0)
    model = build_backbone("lightgcn", split)
    users = torch.tensor([0, 2])
    model.eval()
    with torch.no_grad():
        before = model.score_all(users)
        assert torch.equal(model.score_all(users), before)  # cached
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    model(users, torch.tensor([1, 2])).sum().backward()
    opt.step()  # in-place update: the cache must not serve the old weights
    model.eval()
    with torch.no_grad():
        after = model.score_all(users)
        u, i = _full_lightgcn(model)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, u[users] @ i.T, rtol=1e-5, atol=1e-6)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = build_backbone("lightgcn", split)
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh.score_all(users), after)


def test_neumf_factorised_first_layer_matches_the_per_pair_tower():
    split = tiny_split(n_users=30, n_items=40)
    torch.manual_seed(0)
    model = build_backbone("neumf", split)
    users = torch.randint(0, 30, (200,))
    items = torch.randint(0, 40, (200,))
    grads = []
    outs = []
    for factorised in (True, False):
        model.factorised_forward = factorised
        model.zero_grad()
        out = model(users, items)
        out.sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-7)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_neumf_blocked_ranking_matches_pairwise_scores_for_any_block_size():
    split = tiny_split(n_users=30, n_items=40)
    torch.manual_seed(0)
    model = build_backbone("neumf", split).eval()
    users = torch.tensor([0, 3, 4, 17, 29])
    with torch.no_grad():
        pairs = model(users.repeat_interleave(40), torch.arange(40).repeat(5)).view(5, 40)
        for pairs_per_block, item_block in ((2048, 512), (7, 3), (1, 1), (100, 40)):
            model.score_block_pairs, model.score_item_block = pairs_per_block, item_block
            torch.testing.assert_close(model.score_all(users), pairs, rtol=1e-5, atol=1e-6)
