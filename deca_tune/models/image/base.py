"""The interface every image classifier offers: an embedding plus a linear classifier."""
from __future__ import annotations

import torch
from torch import nn


class ImageBackbone(nn.Module):
    """``forward(x) = classifier(embed(x))``; :meth:`embed` is the penultimate layer
    (``[B, embed_dim]``) that DeCA(p)'s noise model ``h`` reads (paper section 4.4)."""

    embed_dim: int

    def __init__(self, embed_dim: int, n_classes: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.n_classes = n_classes
        self.classifier = nn.Linear(embed_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_embedding: bool = False):
        z = self.embed(x)
        logits = self.classifier(z)
        return (logits, z) if return_embedding else logits


def check_image_size(name: str, image_size: int, allowed: tuple[int, ...] | None = None) -> None:
    if image_size < 8 or (allowed is not None and image_size not in allowed):
        raise ValueError(f"{name}: unsupported image size {image_size}"
                         + (f"; choose one of: {', '.join(map(str, allowed))}" if allowed else ""))
