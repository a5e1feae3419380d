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


def rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if is_distributed() else 0


def rank_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A random generator seeded from one ``seed`` and this process's rank.

    Give it to a loss's ``generator=`` under ``DistributedDataParallel``: every rank then draws
    its own intervention dimensions, values and prior samples (with one global seed and the
    global RNG, all ranks would draw the same ones and waste the extra processes), and a run is
    repeatable from ``seed`` and the world size. Outside a distributed run it is rank 0's.

    Example:
        >>> g = rank_generator(7)
        >>> torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=rank_generator(7)))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(seed * 1_000_003 + rank())
    return g
