r"""An embedded causal data set with known ground truth: a pendulum, a light and its shadow.

In the spirit of the "pendulum" of CausalVAE (Yang et al. 2021), with a chain added to the
colliders. Five factors, in topological order, with structural noise :math:`\varepsilon`:

.. code-block:: text

    angle            θ = ε_θ,                 ε_θ ~ U(-40°, 40°)
    light            L = ε_L,                 ε_L ~ U(0.2, 0.8)        (x-position of the lamp)
    shadow_position  P = c(θ, L) + ε_P,        ε_P ~ N(0, 0.02²)        (centre of the rod's shadow)
    shadow_length    ℓ = max(w(θ, L) + ε_ℓ, 0), ε_ℓ ~ N(0, 0.01²)     (width of the rod's shadow)
    shadow_darkness  D = 0.9 − 1.2·ℓ + ε_D,    ε_D ~ N(0, 0.03²)        (longer shadows are fainter)

Graph (parent -> child): θ→P, L→P, θ→ℓ, L→ℓ, ℓ→D: colliders at P and ℓ, chains θ→ℓ→D and
L→ℓ→D. Geometry: the pivot hangs at (0.5, 0.1), the rod has length 0.35 (bob at
:math:`b = (0.5 + 0.35\sin θ,\ 0.1 + 0.35\cos θ)`), the lamp sits at :math:`(L, -1.5)` and casts
the shadow on the ground :math:`y = 0.92`: a point :math:`p` projects to
:math:`x(p) = L + (p_x - L)\,\frac{0.92 + 1.5}{p_y + 1.5}`; :math:`c` is the midpoint and :math:`w`
the distance of the projections of pivot and bob. Coordinates are fractions of the image side.

Rendered in numpy (anti-aliased by distance fields) at 28×28 (default) or 64×64, grayscale
in [0, 1]: the rod and bob, the lamp as a small disc on the top edge, and the shadow as a bar on
the ground whose brightness is the darkness factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import InvalidValueError

__all__ = [
    "FACTOR_NAMES",
    "CausalScene",
    "InterventionPairs",
    "PairsDataset",
    "SceneDataset",
    "StructuralData",
    "StructuralDataset",
]

FACTOR_NAMES: tuple[str, ...] = (
    "angle",
    "light",
    "shadow_position",
    "shadow_length",
    "shadow_darkness",
)
_EDGES = ((0, 2), (1, 2), (0, 3), (1, 3), (3, 4))
_PIVOT = (0.5, 0.1)
_ROD = 0.35
_LAMP_Y = -1.5
_GROUND = 0.92
_NOISE_STD = {2: 0.02, 3: 0.01, 4: 0.03}


@dataclass(frozen=True)
class InterventionPairs:
    """Images of the same scenes before and after one hard intervention each
    (:meth:`StructuralData.pairs`).

    Attributes:
        before: ``(k, C, S, S)`` observational images.
        after: ``(k, C, S, S)`` the same scenes (the same exogenous noise) after
            ``do(factor targets[b] := value)``.
        factors_before, factors_after: ``(k, F)`` their true factors.
        targets: ``(k,)`` int64, the intervened factor of each pair.
    """

    before: Tensor
    after: Tensor
    factors_before: Tensor
    factors_after: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])


class StructuralData:
    """Base of the library's data sets with a known causal model (:class:`CausalScene`,
    :class:`~consistency.data.Pendulum`, :class:`~consistency.data.Shapes`).

    A subclass sets ``names`` (factors in topological order) and ``edges`` (parent, child) and
    implements ``sample_noise(k)``, ``factors_from_noise(noise, do=None)`` and ``render(factors)``;
    this class gives the graph, descendants, and sampling with or without ``do()``. The
    random generator ``rng`` is seeded once: the same seed and the same calls give the same data.
    """

    names: tuple[str, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()
    rng: np.random.Generator
    size: int

    @property
    def graph(self) -> Tensor:
        """True adjacency ``(F, F)``: ``graph[j, i] = 1`` for the edge factor ``j`` -> factor ``i``."""
        g = torch.zeros(len(self.names), len(self.names))
        for j, i in self.edges:
            g[j, i] = 1.0
        return g

    def descendants(self, factor: int | str) -> set[int]:
        """Indices of the factors downstream of ``factor`` (not including itself)."""
        f = self.index(factor)
        out: set[int] = set()
        frontier = [f]
        while frontier:
            j = frontier.pop()
            for a, b in self.edges:
                if a == j and b not in out:
                    out.add(b)
                    frontier.append(b)
        return out

    def index(self, factor: int | str) -> int:
        """A factor's index from its name or index."""
        if isinstance(factor, str):
            if factor not in self.names:
                raise InvalidValueError(f"unknown factor {factor!r}; expected one of {self.names}")
            return self.names.index(factor)
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
            raise InvalidValueError(f"a factor is a name or an index; got {factor!r}")
        if not 0 <= factor < len(self.names):
            raise InvalidValueError(
                f"factor index must lie in [0, {len(self.names)}); got {factor}"
            )
        return int(factor)

    def sample_noise(self, k: int) -> np.ndarray:
        raise NotImplementedError

    def factors_from_noise(
        self, noise: np.ndarray, do: Mapping[int | str, float | np.ndarray] | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    render_chunk: int = 4096

    def render(self, factors: np.ndarray | Tensor, chunk: int | None = None) -> Tensor:
        """Images ``(k, 1, size, size)`` in [0, 1] (float32) of factor values ``(k, F)``,
        rendered ``chunk`` rows at a time (default ``render_chunk``) by the subclass's ``_render``.

        Raises:
            InvalidValueError: ``factors`` is not ``(k, F)`` or holds values the source cannot draw.
        """
        f = np.asarray(
            factors.detach().cpu().numpy() if isinstance(factors, Tensor) else factors,
            dtype=np.float64,
        )
        if f.ndim != 2 or f.shape[1] != len(self.names):
            raise InvalidValueError(
                f"factors must have shape (k, {len(self.names)}); got {f.shape}"
            )
        self._check_factors(f)
        step = chunk or self.render_chunk
        out = np.empty((f.shape[0], 1, self.size, self.size), dtype=np.float32)
        for s in range(0, f.shape[0], step):
            out[s : s + step, 0] = self._render(f[s : s + step])
        return torch.from_numpy(out)

    def _check_factors(self, f: np.ndarray) -> None:
        """Raise :class:`InvalidValueError` for factor values this source cannot render."""

    def _render(self, f: np.ndarray) -> np.ndarray:
        """``(k, size, size)`` float32 images of factor values ``(k, F)``."""
        raise NotImplementedError

    def sample(
        self, k: int, do: Mapping[int | str, float | np.ndarray] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``k`` samples, observational or under ``do`` (factor -> value(s)): images
        ``(k, C, S, S)`` and factors ``(k, F)`` (float32)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidValueError(f"k must be a positive int; got {k!r}")
        factors = self.factors_from_noise(self.sample_noise(k), do=do)
        return self.render(factors), torch.from_numpy(factors).float()

    def intervene(
        self, k: int, factor: int | str, value: float | np.ndarray
    ) -> tuple[Tensor, Tensor]:
        """``k`` samples under ``do(factor := value)``: descendants recomputed, the rest unchanged
        in distribution (drawn from the same noise)."""
        return self.sample(k, do={factor: value})

    def pairs(
        self, k: int, targets: int | str | Sequence[int | str] | None = None
    ) -> InterventionPairs:
        """``k`` scenes, each rendered before and after a hard intervention on one factor.

        Both images of a pair share the exogenous noise: the intervened factor is set, its
        descendants are recomputed, every other factor keeps its value. The value of each
        intervention is the factor's value in an independent observational draw (the factor's
        marginal, so it is always renderable). This is the weak supervision of paired
        interventions (Brehmer et al. 2022; Locatello et al. 2020 for independent factors).

        Args:
            k: number of pairs.
            targets: the factors intervened on, drawn uniformly per pair among these (names or
                indices); ``None``: every factor.

        Raises:
            InvalidValueError: ``k`` is not a positive int, or a target is unknown.

        Example:
            >>> scene = CausalScene(seed=0)
            >>> pairs = scene.pairs(6, targets=["shadow_length"])
            >>> pairs.after.shape, pairs.targets.tolist()
            (torch.Size([6, 1, 28, 28]), [3, 3, 3, 3, 3, 3])
            >>> bool((pairs.factors_before[:, :3] == pairs.factors_after[:, :3]).all())
            True
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidValueError(f"k must be a positive int; got {k!r}")
        if targets is None:
            choices = list(range(len(self.names)))
        else:
            listed = [targets] if isinstance(targets, (int, str)) else list(targets)
            if not listed:
                raise InvalidValueError("targets must name at least one factor")
            choices = sorted({self.index(t) for t in listed})
        noise = self.sample_noise(k)
        before = self.factors_from_noise(noise)
        marginal = self.factors_from_noise(self.sample_noise(k))
        target = np.asarray(choices)[self.rng.integers(0, len(choices), k)]
        after = np.empty_like(before)
        for t in choices:
            rows = np.flatnonzero(target == t)
            if rows.size:
                after[rows] = self.factors_from_noise(noise[rows], do={t: marginal[rows, t]})
        return InterventionPairs(
            self.render(before),
            self.render(after),
            torch.from_numpy(before).float(),
            torch.from_numpy(after).float(),
            torch.from_numpy(target.astype(np.int64)),
        )

    def _assign_do(
        self, do: Mapping[int | str, float | np.ndarray] | None, k: int
    ) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for f, v in (do or {}).items():
            value = np.asarray(v, dtype=float)
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != k):
                raise InvalidValueError(
                    f"do({self.names[self.index(f)]}) takes a scalar or ({k},) values; got shape "
                    f"{value.shape}"
                )
            if not np.isfinite(value).all():
                raise InvalidValueError(f"do({self.names[self.index(f)]}) got non-finite values")
            out[self.index(f)] = np.broadcast_to(value, (k,))
        return out


class CausalScene(StructuralData):
    """The pendulum scene: sample images with their true factors, or under do() on a factor.

    Args:
        size: image side, 28 (default) or 64 (any side >= 16 works).
        seed: seed of the scene's random generator (same seed, same calls: same data).

    Example:
        >>> scene = CausalScene(seed=0)
        >>> images, factors = scene.sample(4)
        >>> images.shape, factors.shape, scene.names[3]
        (torch.Size([4, 1, 28, 28]), torch.Size([4, 5]), 'shadow_length')
    """

    names: tuple[str, ...] = FACTOR_NAMES
    edges = _EDGES

    def __init__(self, size: int = 28, seed: int = 0) -> None:
        if size < 16:
            raise InvalidValueError(f"size must be >= 16 pixels; got {size}")
        self.size = int(size)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ SCM
    def sample_noise(self, k: int) -> np.ndarray:
        """Exogenous noise ``(k, F)`` (the first two columns are the root factors themselves)."""
        eps = np.empty((k, len(FACTOR_NAMES)))
        eps[:, 0] = self.rng.uniform(-40.0, 40.0, k)
        eps[:, 1] = self.rng.uniform(0.2, 0.8, k)
        for j, std in _NOISE_STD.items():
            eps[:, j] = self.rng.normal(0.0, std, k)
        return eps

    @staticmethod
    def _project(px: np.ndarray | float, py: np.ndarray | float, light: np.ndarray) -> np.ndarray:
        return light + (px - light) * (_GROUND - _LAMP_Y) / (py - _LAMP_Y)

    @classmethod
    def shadow(cls, angle: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free shadow centre ``c(θ, L)`` and width ``w(θ, L)`` (the structural equations' means)."""
        rad = np.deg2rad(angle)
        bx, by = _PIVOT[0] + _ROD * np.sin(rad), _PIVOT[1] + _ROD * np.cos(rad)
        p0 = cls._project(_PIVOT[0], _PIVOT[1], light)
        p1 = cls._project(bx, by, light)
        return (p0 + p1) / 2, np.abs(p1 - p0)

    def factors_from_noise(
        self, noise: np.ndarray, do: Mapping[int | str, float | np.ndarray] | None = None
    ) -> np.ndarray:
        """Solve the SCM in topological order: factors ``(k, F)`` from noise ``(k, F)``.

        ``do`` maps factors to values: each is set (its own equation and noise ignored) and its
        descendants are computed from the new value.
        """
        k = noise.shape[0]
        do_idx = self._assign_do(do, k)
        f = np.empty((k, len(FACTOR_NAMES)))

        def assign(i: int, value: np.ndarray) -> None:
            f[:, i] = do_idx[i] if i in do_idx else value

        assign(0, noise[:, 0])
        assign(1, noise[:, 1])
        centre, width = self.shadow(f[:, 0], f[:, 1])
        assign(2, centre + noise[:, 2])
        assign(3, np.maximum(width + noise[:, 3], 0.0))
        assign(4, 0.9 - 1.2 * f[:, 3] + noise[:, 4])
        return f

    # ------------------------------------------------------------ rendering
    def _render(self, f: np.ndarray) -> np.ndarray:
        n = self.size
        aa = 1.0 / n  # one pixel of anti-aliasing
        coords = (np.arange(n) + 0.5) / n
        y, x = np.meshgrid(coords, coords, indexing="ij")
        x, y = x[None], y[None]
        col = lambda v: v[:, None, None]  # noqa: E731
        rad = np.deg2rad(f[:, 0])
        bx, by = col(_PIVOT[0] + _ROD * np.sin(rad)), col(_PIVOT[1] + _ROD * np.cos(rad))
        # rod: distance to the segment pivot -> bob
        px, py = _PIVOT
        dx, dy = bx - px, by - py
        t = np.clip(((x - px) * dx + (y - py) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        d_rod = np.hypot(x - px - t * dx, y - py - t * dy)
        rod = np.clip(1.0 - (d_rod - 0.6 * aa) / aa, 0.0, 1.0) * 0.8
        bob = np.clip(1.0 - (np.hypot(x - bx, y - by) - 0.08) / aa, 0.0, 1.0)
        lamp = np.clip(1.0 - (np.hypot(x - col(f[:, 1]), y - 0.06) - 0.06) / aa, 0.0, 1.0) * 0.7
        half = np.maximum(col(f[:, 3]) / 2, 0.5 * aa)
        inside_x = np.clip(1.0 - (np.abs(x - col(f[:, 2])) - half) / aa, 0.0, 1.0)
        inside_y = np.clip(1.0 - (np.abs(y - _GROUND) - 0.04) / aa, 0.0, 1.0)
        shade = inside_x * inside_y * np.clip(col(f[:, 4]), 0.05, 1.0)
        return np.maximum.reduce([rod, bob, lamp, shade]).astype(np.float32)


class StructuralDataset(Dataset[tuple[Tensor, Tensor]]):
    """A fixed-size sample of a :class:`StructuralData` held in memory: items are ``(image, factors)``.

    Attributes:
        images: ``(N, C, S, S)``; factors: ``(N, F)``; scene: the generating data source.
    """

    def __init__(self, source: StructuralData, n: int) -> None:
        self.scene = source
        self.images, self.factors = source.sample(n)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.factors[index]

    def subset(self, size: int) -> StructuralDataset:
        """The first ``size`` items (same source)."""
        out = object.__new__(type(self))
        out.scene, out.images, out.factors = self.scene, self.images[:size], self.factors[:size]
        return out


class PairsDataset(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """A fixed-size sample of :meth:`StructuralData.pairs` held in memory: items are
    ``(before, after, target)``, for a training loop on paired interventions
    (:class:`~consistency.PairedInterventionLoss`).

    Attributes:
        pairs: the :class:`InterventionPairs`; scene: the generating data source.
    """

    def __init__(
        self,
        source: StructuralData,
        n: int,
        targets: int | str | Sequence[int | str] | None = None,
    ) -> None:
        self.scene = source
        self.pairs = source.pairs(n, targets)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        p = self.pairs
        return p.before[index], p.after[index], p.targets[index]


class SceneDataset(StructuralDataset):
    """A fixed-size, seeded :class:`CausalScene` data set held in memory: items are ``(image, factors)``."""

    def __init__(self, n: int = 60_000, size: int = 28, seed: int = 0) -> None:
        super().__init__(CausalScene(size, seed), n)
