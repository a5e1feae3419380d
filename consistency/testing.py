"""Assertion helpers: each mathematical law of SPEC.md written once.

The library's own property tests drive these with hypothesis; users can call them on their own
modules. Each raises ``AssertionError`` with a message naming the violated law.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .xblock import XBlock

__all__ = ["assert_xblock_causal_order"]


def assert_xblock_causal_order(block: XBlock, noise: Tensor, seed: int = 0) -> None:
    """Assert that cause ``Z_i`` never depends on noise ``N_j`` for ``j > i`` (exact zeros).

    Checked on the autograd Jacobian at ``noise`` ``(B, n)``; in training mode the Gumbel noise
    is frozen by reseeding before each call, so the Jacobian is that of one fixed gate draw.
    Also checks that rows of the batch do not mix.
    """
    n, u = block.n, block.unit_size
    batch = noise.shape[0]
    dtype = noise.dtype
    original = next(block.parameters()).dtype

    def causes(x: Tensor) -> Tensor:
        torch.manual_seed(seed)
        return block.causes(x)

    block.to(dtype)
    try:
        jac = torch.autograd.functional.jacobian(causes, noise)  # (B, n, u, B, n)
    finally:
        block.to(original)
    jac = jac.reshape(batch, n, u, batch, n)
    for i in range(n):
        later = jac[:, i, :, :, i + 1 :]
        if later.numel() and float(later.abs().max()) != 0.0:
            raise AssertionError(f"cause Z_{i} depends on later noise N_{i + 1}..N_{n - 1}")
    eye = torch.eye(batch, dtype=torch.bool)
    cross = jac.permute(0, 3, 1, 2, 4)[~eye]
    if cross.numel() and float(cross.abs().max()) != 0.0:
        raise AssertionError("XBlock mixes rows of the batch")
