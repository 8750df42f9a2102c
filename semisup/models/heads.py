"""Heads: small MLPs on top of trailer or frame features."""

from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """Linear -> ReLU -> Dropout -> Linear.

    Args:
        in_dim: input feature size ``D``.
        hidden: hidden width.
        out_dim: number of outputs (classes).
        dropout: dropout probability between the two layers.

    Example:
        >>> import torch
        >>> head = MLPHead(2048, 512, 10, dropout=0.2)
        >>> head(torch.zeros(4, 2048)).shape
        torch.Size([4, 10])
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        if min(in_dim, hidden, out_dim) < 1:
            raise ValueError(f"MLPHead sizes must be positive, got {in_dim}, {hidden}, {out_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )
