r"""The pendulum data set of CausalVAE (Yang et al. 2021), rendered by the library.

Four factors, in CausalVAE's order, the two roots causing the two shadow factors:

.. code-block:: text

    pendulum_angle   θ = ε_θ,                   ε_θ ~ U(-40°, 44°)
    light_angle      φ = ε_φ,                   ε_φ ~ U(60°, 120°)     (elevation of the light)
    shadow_length    ℓ = |s(b) - s(p)| + ε_ℓ,    ε_ℓ ~ N(0, σ²)
    shadow_position  c = (s(b) + s(p))/2 + ε_c,  ε_c ~ N(0, σ²)

Graph: θ→ℓ, φ→ℓ, θ→c, φ→c (two colliders). Geometry, in fractions of the image side (y down):
the pivot :math:`p = (0.5, 0.32)`, a rod of length 0.28 to the bob
:math:`b = (0.5 + 0.28\sin θ,\ 0.32 + 0.28\cos θ)`; parallel light from elevation :math:`φ`
(measured from the +x axis, so 90° is straight overhead) throws a point :math:`q` onto the ground
:math:`y = 0.92` at :math:`s(q) = q_x - (0.92 - q_y)\cot φ`. The light is drawn as a small sun on
an arc above the pivot, the shadow as a dark-grey bar on the ground. ``shadow_noise`` = σ
(default 0.01) makes the shadow factors more than functions of the roots, so do() on them
is a distinct intervention; CausalVAE's data (its ``pendulum.py``) has no such noise:
``shadow_noise=0`` gives it.

The CausalVAE pendulum is a grid over the two roots; :meth:`Pendulum.grid` gives that full
factorial (the roots on a grid, the shadows solved), which the ground-truth metrics assume.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidValueError
from .synthetic import StructuralData

__all__ = ["PENDULUM_FACTOR_NAMES", "Pendulum"]

PENDULUM_FACTOR_NAMES: tuple[str, ...] = (
    "pendulum_angle",
    "light_angle",
    "shadow_length",
    "shadow_position",
)
_PIVOT = (0.5, 0.32)
_ROD = 0.28
_GROUND = 0.92
_ANGLE = (-40.0, 44.0)
_LIGHT = (60.0, 120.0)


class Pendulum(StructuralData):
    """CausalVAE's pendulum: images with their four true factors, sampled or under do().

    Args:
        size: image side (default 28; CausalVAE renders 96; any side >= 16 works).
        seed: seed of the random generator (same seed, same calls: same data).
        shadow_noise: standard deviation σ of the shadow factors' structural noise.

    Example:
        >>> data = Pendulum(seed=0)
        >>> images, factors = data.sample(3)
        >>> images.shape, factors.shape, sorted(data.descendants("light_angle"))
        (torch.Size([3, 1, 28, 28]), torch.Size([3, 4]), [2, 3])
    """

    names: tuple[str, ...] = PENDULUM_FACTOR_NAMES
    edges = ((0, 2), (1, 2), (0, 3), (1, 3))

    def __init__(self, size: int = 28, seed: int = 0, shadow_noise: float = 0.01) -> None:
        if size < 16:
            raise InvalidValueError(f"size must be >= 16 pixels; got {size}")
        if not shadow_noise >= 0:
            raise InvalidValueError(f"shadow_noise must be >= 0; got {shadow_noise}")
        self.size = int(size)
        self.shadow_noise = float(shadow_noise)
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def shadow(angle: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free shadow length and centre for pendulum angles and light elevations (degrees)."""
        rad, cot = np.deg2rad(angle), 1.0 / np.tan(np.deg2rad(light))
        bx, by = _PIVOT[0] + _ROD * np.sin(rad), _PIVOT[1] + _ROD * np.cos(rad)
        s_pivot = _PIVOT[0] - (_GROUND - _PIVOT[1]) * cot
        s_bob = bx - (_GROUND - by) * cot
        return np.abs(s_bob - s_pivot), (s_bob + s_pivot) / 2

    def sample_noise(self, k: int) -> np.ndarray:
        """Exogenous noise ``(k, 4)`` (the first two columns are the roots themselves)."""
        eps = np.empty((k, 4))
        eps[:, 0] = self.rng.uniform(*_ANGLE, k)
        eps[:, 1] = self.rng.uniform(*_LIGHT, k)
        eps[:, 2:] = self.rng.normal(0.0, 1.0, (k, 2)) * self.shadow_noise
        return eps

    def factors_from_noise(
        self, noise: np.ndarray, do: Mapping[int | str, float | np.ndarray] | None = None
    ) -> np.ndarray:
        """Solve the structural equations: factors ``(k, 4)`` from noise ``(k, 4)``; ``do``
        sets factors (their own equation ignored) and recomputes their descendants."""
        k = noise.shape[0]
        fixed = self._assign_do(do, k)
        f = np.empty((k, 4))
        f[:, 0] = fixed.get(0, noise[:, 0])
        f[:, 1] = fixed.get(1, noise[:, 1])
        length, centre = self.shadow(f[:, 0], f[:, 1])
        f[:, 2] = fixed.get(2, np.maximum(length + noise[:, 2], 0.0))
        f[:, 3] = fixed.get(3, centre + noise[:, 3])
        return f

    def grid(self, angles: int = 21, lights: int = 15) -> tuple[Tensor, Tensor]:
        """The full factorial over the roots (``angles`` × ``lights`` evenly spaced values, the
        shadows solved without noise), as CausalVAE's generator lays it out: images, factors."""
        a = np.linspace(*_ANGLE, angles)
        b = np.linspace(*_LIGHT, lights)
        roots = np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
        noise = np.zeros((roots.shape[0], 4))
        noise[:, :2] = roots
        factors = self.factors_from_noise(noise)
        return self.render(factors), torch.from_numpy(factors).float()

    def _render(self, f: np.ndarray) -> np.ndarray:
        n = self.size
        aa = 1.0 / n
        coords = (np.arange(n) + 0.5) / n
        y, x = np.meshgrid(coords, coords, indexing="ij")
        x, y = x[None], y[None]
        col = lambda v: v[:, None, None]  # noqa: E731
        rad = np.deg2rad(f[:, 0])
        px, py = _PIVOT
        bx, by = col(px + _ROD * np.sin(rad)), col(py + _ROD * np.cos(rad))
        dx, dy = bx - px, by - py
        t = np.clip(((x - px) * dx + (y - py) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        rod = np.clip(1.0 - (np.hypot(x - px - t * dx, y - py - t * dy) - 0.6 * aa) / aa, 0, 1)
        bob = np.clip(1.0 - (np.hypot(x - bx, y - by) - 0.07) / aa, 0.0, 1.0)
        light = np.deg2rad(f[:, 1])
        sx, sy = col(0.5 + 0.26 * np.cos(light)), col(0.34 - 0.26 * np.sin(light))
        sun = np.clip(1.0 - (np.hypot(x - sx, y - sy) - 0.055) / aa, 0.0, 1.0)
        half = np.maximum(col(f[:, 2]) / 2, 0.5 * aa)
        inside_x = np.clip(1.0 - (np.abs(x - col(f[:, 3])) - half) / aa, 0.0, 1.0)
        inside_y = np.clip(1.0 - (np.abs(y - _GROUND) - 0.035) / aa, 0.0, 1.0)
        shade = inside_x * inside_y * 0.5
        return np.maximum.reduce([rod * 0.8, bob, sun * 0.9, shade]).astype(np.float32)
