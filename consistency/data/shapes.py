r"""A dSprites-like data set (Matthey et al. 2017), rendered by the library: no download.

Five independent factors, each on a grid of levels, every combination present once in
:meth:`Shapes.grid` (a full factorial, as IRS, MIG and DCI assume):

.. code-block:: text

    shape     0 square, 1 ellipse (2:1), 2 heart
    scale     ``scales`` levels in [0.5, 1]
    rotation  ``rotations`` levels in [0, 2π) (radians; a square repeats every π/2 and an
              ellipse every π, as in dSprites, so those rotations are not all distinguishable)
    x, y      ``positions`` levels each, the sprite's centre in [0.25, 0.75] of the image

No edges: the factors are independent (a do() on one changes nothing else). Sprites are white on
black, anti-aliased by 4×4 supersampling. dSprites itself is 64×64 with 3 × 6 × 40 × 32 × 32
levels; the defaults here (28×28, 3 × 4 × 8 × 8 × 8 = 6,144 images) fit a CPU budget.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidValueError
from .synthetic import StructuralData

__all__ = ["SHAPES_FACTOR_NAMES", "Shapes"]

SHAPES_FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "rotation", "x", "y")
_HALF = 0.16  # sprite half-size at scale 1, in image fractions
_SUPER = 4


class Shapes(StructuralData):
    """dSprites-like sprites with five independent, gridded factors.

    :meth:`sample_noise` draws level indices uniformly (with replacement) from the factorial;
    :meth:`factors_from_noise` maps them to values; ``do`` sets a factor's value (a level, or any
    value: off-grid values render too).

    Args:
        size: image side (default 28; any side >= 16 works).
        seed: seed of the random generator.
        scales, rotations, positions: levels per factor (shape always has 3).

    Example:
        >>> data = Shapes(seed=0)
        >>> images, factors = data.grid()
        >>> images.shape, len(data), data.levels[0].tolist()
        (torch.Size([6144, 1, 28, 28]), 6144, [0.0, 1.0, 2.0])
    """

    names: tuple[str, ...] = SHAPES_FACTOR_NAMES
    edges = ()

    def __init__(
        self,
        size: int = 28,
        seed: int = 0,
        *,
        scales: int = 4,
        rotations: int = 8,
        positions: int = 8,
    ) -> None:
        if size < 16:
            raise InvalidValueError(f"size must be >= 16 pixels; got {size}")
        for name, v in (("scales", scales), ("rotations", rotations), ("positions", positions)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidValueError(f"{name} must be a positive int; got {v!r}")
        self.size = int(size)
        self.rng = np.random.default_rng(seed)
        self.levels: tuple[np.ndarray, ...] = (
            np.arange(3.0),
            np.linspace(0.5, 1.0, scales),
            np.arange(rotations) * (2 * np.pi / rotations),
            np.linspace(0.25, 0.75, positions),
            np.linspace(0.25, 0.75, positions),
        )

    def __len__(self) -> int:
        """Size of the full factorial."""
        return int(np.prod([len(v) for v in self.levels]))

    def sample_noise(self, k: int) -> np.ndarray:
        """Level indices ``(k, 5)`` drawn uniformly from the factorial (floats holding ints)."""
        return np.stack([self.rng.integers(0, len(v), k) for v in self.levels], 1).astype(float)

    def factors_from_noise(
        self, noise: np.ndarray, do: Mapping[int | str, float | np.ndarray] | None = None
    ) -> np.ndarray:
        """Factor values ``(k, 5)`` from level indices ``(k, 5)``; ``do`` overrides values."""
        k = noise.shape[0]
        fixed = self._assign_do(do, k)
        idx = noise.astype(np.int64)
        f = np.stack([self.levels[i][idx[:, i]] for i in range(5)], 1)
        for i, v in fixed.items():
            f[:, i] = v
        return f

    def grid(self) -> tuple[Tensor, Tensor]:
        """Every combination of levels once (row-major over shape, scale, rotation, x, y)."""
        idx = np.stack(
            np.meshgrid(*[np.arange(len(v)) for v in self.levels], indexing="ij"), -1
        ).reshape(-1, 5)
        factors = self.factors_from_noise(idx.astype(float))
        return self.render(factors), torch.from_numpy(factors).float()

    render_chunk = 1024

    def _check_factors(self, f: np.ndarray) -> None:
        if not np.isin(np.rint(f[:, 0]), (0, 1, 2)).all():
            raise InvalidValueError("the shape factor takes the values 0, 1 or 2")

    def _render(self, f: np.ndarray) -> np.ndarray:
        n, m = self.size, self.size * _SUPER
        coords = ((np.arange(m) + 0.5) / m).astype(np.float32)
        y, x = np.meshgrid(coords, coords, indexing="ij")
        out = np.zeros((f.shape[0], n, n), dtype=np.float32)
        shape = np.rint(f[:, 0])
        for kind in (0, 1, 2):  # each shape's test only on its own sprites
            rows = np.flatnonzero(shape == kind)
            if rows.size == 0:
                continue
            g = f[rows].astype(np.float32)
            col = lambda v: v[:, None, None]  # noqa: E731
            half = col(np.float32(_HALF) * g[:, 1])
            cos, sin = col(np.cos(g[:, 2])), col(np.sin(g[:, 2]))
            dx, dy = x[None] - col(g[:, 3]), y[None] - col(g[:, 4])
            u = (cos * dx + sin * dy) / half  # sprite coordinates, rotated by -rotation
            v = (cos * dy - sin * dx) / half
            if kind == 0:
                inside = np.maximum(np.abs(u), np.abs(v)) <= 0.8
            elif kind == 1:
                inside = u * u + 4.0 * v * v <= 1.0
            else:  # heart: (x² + y² - 1)³ - x² y³ <= 0, pointing down
                hx, hy = u * 1.1, 0.25 - v * 1.1
                inside = (hx * hx + hy * hy - 1.0) ** 3 - hx * hx * hy**3 <= 0.0
            out[rows] = inside.reshape(rows.size, n, _SUPER, n, _SUPER).mean((2, 4))
        return out
