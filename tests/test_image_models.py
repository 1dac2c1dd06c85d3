"""Vision backbones: shapes at 28x28 grey and 32x32 colour, the embedding, ResNet-32's layout."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deca_tune.models.image import build_image_backbone
from deca_tune.models.registry import IMAGE_BACKBONES
from deca_tune.models.image.resnet import BasicBlock


@pytest.mark.parametrize("name", ["resnet32", "convnet", "mlp", "inception"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_forward_and_embedding(name, channels, size):
    torch.manual_seed(0)
    net = build_image_backbone(name, n_classes=7, in_channels=channels, image_size=size).eval()
    x = torch.randn(3, channels, size, size)
    logits, z = net(x, return_embedding=True)
    assert logits.shape == (3, 7) and z.shape == (3, net.embed_dim)
    assert torch.allclose(net.classifier(net.embed(x)), logits)
    assert torch.allclose(net(x), logits)


def test_registry_lists_all_backbones():
    assert set(IMAGE_BACKBONES.names()) >= {"resnet32", "convnet", "mlp", "inception"}


def test_resnet32_layout():
    net = build_image_backbone("resnet32", 10, 3, 32)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15
    assert [b.conv2.out_channels for b in blocks] == [16] * 5 + [32] * 5 + [64] * 5
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 32  # 6n + 2 weighted layers with n = 5
    # option-A shortcuts have no parameters: ~0.46M parameters as in He et al. (2016)
    n_params = sum(p.numel() for p in net.parameters())
    assert 0.45e6 < n_params < 0.475e6
    assert net.embed_dim == 64


def test_mlp_has_four_linear_layers_and_convnet_two_convs():
    mlp = build_image_backbone("mlp", 10, 1, 28)
    assert sum(isinstance(m, nn.Linear) for m in mlp.modules()) == 4
    conv = build_image_backbone("convnet", 10, 1, 28)
    assert sum(isinstance(m, nn.Conv2d) for m in conv.modules()) == 2


def test_bad_image_size():
    with pytest.raises(ValueError, match="image size"):
        build_image_backbone("resnet32", 10, 1, 4)


@pytest.mark.parametrize("name", ["resnet32", "convnet", "inception"])
def test_channels_last_gives_the_same_numbers_forward_and_backward(name):
    from deca_tune.models.image import apply_memory_format, is_channels_last

    torch.manual_seed(0)
    ref = build_image_backbone(name, 10, 1, 28)
    fast = apply_memory_format(build_image_backbone(name, 10, 1, 28), "auto")
    fast.load_state_dict(ref.state_dict())
    assert is_channels_last(fast) and not is_channels_last(ref)
    x = torch.randn(6, 1, 28, 28)
    y = torch.randint(0, 10, (6,))
    out_ref = ref(x)
    out_fast = fast(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out_ref, out_fast, atol=1e-5, rtol=1e-4)
    nn.functional.cross_entropy(out_ref, y).backward()
    nn.functional.cross_entropy(out_fast, y).backward()
    for (n, p), (_, q) in zip(ref.named_parameters(), fast.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-3), n


def test_memory_format_choices():
    from deca_tune.models.image import apply_memory_format, count_flops, is_channels_last

    assert not is_channels_last(apply_memory_format(build_image_backbone("convnet", 10, 1, 28), "contiguous"))
    assert not is_channels_last(apply_memory_format(build_image_backbone("mlp", 10, 1, 28), "auto"))
    with pytest.raises(ValueError, match="memory_format"):
        apply_memory_format(build_image_backbone("mlp", 10, 1, 28), "nhwc")
    # ResNet-32 on 28x28: ~0.105 GFLOP forward, ~0.315 GFLOP forward + backward per image
    net = build_image_backbone("resnet32", 10, 1, 28)
    assert count_flops(net, (1, 28, 28), backward=False) == pytest.approx(0.105e9, rel=0.02)
    assert count_flops(net, (1, 28, 28)) == pytest.approx(0.315e9, rel=0.02)
