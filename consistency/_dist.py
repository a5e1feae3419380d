"""Helpers for ``torch.distributed`` (no-ops when it is not initialised)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def all_gather_rows(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``(B_r, ...)`` from every rank along axis 0, in rank order.

    Ranks may hold different batch sizes: sizes are exchanged first, rows are padded to the
    largest, and the padding is dropped after the gather. Returns ``x`` unchanged outside a
    distributed run.
    """
    if not is_distributed():
        return x
    world = dist.get_world_size()
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:c] for g, c in zip(gathered, counts)], dim=0)
