"""A stand-in for a data source with known discrete factors, shared by the metric tests and
``benchmarks/bench_metrics.py``: the FactorVAE and BetaVAE scores and the disent cross-checks
ask a source for factors and for observations of them, and these tests and timings measure
the metric, not a renderer or an encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class MixedFactors:
    """Independent factors, factor ``f`` uniform on ``levels[f]`` values, "rendered" as
    ``squash(factors @ weights) + noise * N(0, 1)``: with the identity as encoder the code is
    informative but not perfect.

    Args:
        levels: how many values each factor takes.
        weights: ``(F, d)`` the mixing of the factors into the ``d`` observed features.
        noise: standard deviation of the Gaussian noise added to every feature.
        seed: seeds the source's own generator (factors and noise).
        squash: applied to the mixed factors before the noise (``None``: nothing).
        names: the factors' names.
    """

    def __init__(
        self,
        levels: Sequence[int],
        weights: np.ndarray,
        *,
        noise: float,
        seed: int = 0,
        squash: Callable[[np.ndarray], np.ndarray] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.levels = np.asarray(levels)
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.shape[0] != len(self.levels):
            raise ValueError(
                f"weights must have one row per factor: {len(self.levels)}; got "
                f"{self.weights.shape[0]}"
            )
        self.noise = noise
        self.squash = squash
        self.num_factors = len(self.levels)
        self.names = (
            tuple(names) if names is not None else tuple(f"f{i}" for i in range(self.num_factors))
        )

    def sample_factors(self, k: int, random_state: object = None) -> np.ndarray:
        return self.rng.integers(0, self.levels, (k, self.num_factors)).astype(np.float64)

    def render(self, factors: np.ndarray) -> torch.Tensor:
        x = np.asarray(factors) @ self.weights
        if self.squash is not None:
            x = self.squash(x)
        return torch.from_numpy(x + self.noise * self.rng.standard_normal(x.shape))

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state: object
    ) -> np.ndarray:
        return self.render(factors).numpy()
