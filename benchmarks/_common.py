"""Shared helpers for the benchmarks: timing and the paper's S-sized conv autoencoder."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from consistency.models import PRESETS, ConvDecoder, ConvEncoder


class PaperAE(nn.Module):
    """The paper's conv autoencoder for a preset (AE S by default: 309,973 parameters)."""

    def __init__(self, preset: str = "S", latent: nn.Module | None = None) -> None:
        super().__init__()
        p = PRESETS[preset]
        kw = dict(
            channels=p.channels,
            image_size=p.image_size,
            filters=p.filters,
            depth=p.depth,
            pools=p.pools,
        )
        self.encoder = ConvEncoder(p.n, **kw)
        self.latent = latent if latent is not None else nn.Identity()
        width = p.n * p.unit_size if latent is not None else p.n
        self.decoder_net = ConvDecoder(width, **kw)

    def decode(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder_net(self.latent(noise))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(x))


def median_time(step: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``step()`` in seconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def interleaved_times(
    steps: dict[str, Callable[[], object]], rounds: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Median time of each step, measured in interleaved rounds so machine noise hits all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            samples[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
