"""Shared helpers for the benchmarks: timing and the paper's S-sized conv autoencoder."""

from __future__ import annotations

import time
from collections.abc import Callable

from consistency.models import PaperModel, build_model


def paper_ae(preset: str = "S", variant: str = "plain") -> PaperModel:
    """The paper's conv autoencoder (AE S by default: 309,973 parameters)."""
    return build_model("AE", preset, variant)


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


def peak_rss_kb() -> int:
    """This process's peak resident set size (``VmHWM``, Linux), in KiB. ``VmHWM`` belongs to the
    process image; ``ru_maxrss`` would be inherited from the parent across ``exec``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")
