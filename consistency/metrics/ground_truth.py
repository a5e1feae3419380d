"""Ground-truth metrics: what only a data set with a known causal model can tell.

Given encoder means and the true factors: which latent carries which factor (Hungarian
matching on absolute correlation), how well (mean matched correlation), whether an XBlock's
learned graph is the true one (structural Hamming distance, edge precision / recall), and the
data-side mirror of the invariance score: intervene on a true factor, encode, and measure how
much the latents of its non-descendants move.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..encoding import posterior_mean
from ..errors import InvalidValueError

__all__ = [
    "DataInvariance",
    "GraphComparison",
    "Matching",
    "RandomGraphBaseline",
    "compare_graphs",
    "data_invariance",
    "match_latents",
    "random_dag_shd",
    "structural_hamming_distance",
]


@dataclass
class Matching:
    """Latent-to-factor matching.

    Attributes:
        latent_of_factor: ``(F,)`` the latent matched to each factor (-1 when there are more
            factors than latents and the factor is left unmatched).
        correlation: ``(F,)`` absolute correlation of each factor with its latent (0 unmatched).
        abs_correlation: ``(n, F)`` the full absolute correlation matrix.
        mean_correlation: mean of ``correlation`` over the factors.
    """

    latent_of_factor: Tensor
    correlation: Tensor
    abs_correlation: Tensor
    mean_correlation: float


def _assignment(score: Tensor) -> list[tuple[int, int]]:
    """Maximum-score one-to-one assignment of rows to columns (scipy's Hungarian when installed)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        linear_sum_assignment = None
    if linear_sum_assignment is not None:
        rows, cols = linear_sum_assignment(score.numpy(), maximize=True)
        return list(zip(rows.tolist(), cols.tolist()))
    n, f = score.shape
    if min(n, f) > 8:  # exact search only for small problems; greedy beyond
        pairs, used_r, used_c = [], set(), set()
        for idx in score.flatten().argsort(descending=True).tolist():
            r, c = divmod(idx, f)
            if r not in used_r and c not in used_c:
                pairs.append((r, c))
                used_r.add(r)
                used_c.add(c)
        return pairs
    best: tuple[float, list[tuple[int, int]]] = (-1.0, [])
    if n >= f:
        for perm in itertools.permutations(range(n), f):
            total = sum(float(score[r, c]) for c, r in enumerate(perm))
            if total > best[0]:
                best = (total, [(r, c) for c, r in enumerate(perm)])
    else:
        for perm in itertools.permutations(range(f), n):
            total = sum(float(score[r, c]) for r, c in enumerate(perm))
            if total > best[0]:
                best = (total, list(enumerate(perm)))
    return best[1]


def match_latents(latents: Tensor, factors: Tensor) -> Matching:
    """Match latents ``(N, n)`` to true factors ``(N, F)`` by absolute Pearson correlation.

    Example:
        >>> import torch
        >>> f = torch.randn(200, 3)
        >>> m = match_latents(torch.stack([f[:, 2] * -5, f[:, 0] + 1, f[:, 1] * 2], 1), f)
        >>> m.latent_of_factor.tolist(), round(m.mean_correlation, 4)
        ([1, 2, 0], 1.0)
    """
    if latents.ndim != 2 or factors.ndim != 2 or latents.shape[0] != factors.shape[0]:
        raise InvalidValueError(
            f"latents (N, n) and factors (N, F) must share N; got {tuple(latents.shape)} and {tuple(factors.shape)}"
        )
    z = latents.detach().double().cpu()
    f = factors.detach().double().cpu()
    z = (z - z.mean(0)) / z.std(0).clamp_min(1e-12)
    f = (f - f.mean(0)) / f.std(0).clamp_min(1e-12)
    corr = (z.T @ f / (z.shape[0] - 1)).abs()  # (n, F)
    latent_of = torch.full((f.shape[1],), -1, dtype=torch.long)
    matched = torch.zeros(f.shape[1], dtype=torch.float64)
    for r, c in _assignment(corr):
        latent_of[c] = r
        matched[c] = corr[r, c]
    return Matching(latent_of, matched.float(), corr.float(), float(matched.mean()))


@dataclass
class GraphComparison:
    """A learned graph, mapped onto the factors through a matching, against the true graph.

    Attributes:
        mapped: ``(F, F)`` learned edges between factors (1 where ``gate > threshold``).
        shd: structural Hamming distance (missing + extra + reversed edges, a reversal counts once).
        precision, recall: of the directed edges (NaN when undefined: no predicted / no true edge).
        confidence: the XBlock's gate confidence, if given (read the graph only when it is high).
    """

    mapped: Tensor
    shd: int
    precision: float
    recall: float
    confidence: float | None = None


def compare_graphs(
    learned: Tensor,
    true: Tensor,
    matching: Matching | Tensor | None = None,
    *,
    threshold: float = 0.5,
    confidence: float | None = None,
) -> GraphComparison:
    """Compare a learned adjacency ``(n, n)`` (``[parent, child]``) with the true graph ``(F, F)``.

    ``matching`` (a :class:`Matching` or a ``(F,)`` latent index per factor) maps latents to
    factors; ``None`` means latent ``i`` is factor ``i``. Unmatched factors have no learned edges.
    """
    latent_of = (
        matching.latent_of_factor
        if isinstance(matching, Matching)
        else matching
        if matching is not None
        else torch.arange(true.shape[0])
    )
    fcount = true.shape[0]
    edges = (learned.detach().cpu() > threshold).float()
    mapped = torch.zeros(fcount, fcount)
    for a in range(fcount):
        for b in range(fcount):
            la, lb = int(latent_of[a]), int(latent_of[b])
            if a != b and la >= 0 and lb >= 0:
                mapped[a, b] = edges[la, lb]
    t = (true.detach().cpu() > 0.5).float()
    shd = int(structural_hamming_distance(mapped, t))
    tp = float((mapped * t).sum())
    predicted, actual = float(mapped.sum()), float(t.sum())
    return GraphComparison(
        mapped=mapped,
        shd=shd,
        precision=tp / predicted if predicted else float("nan"),
        recall=tp / actual if actual else float("nan"),
        confidence=confidence,
    )


def structural_hamming_distance(graphs: Tensor, true: Tensor) -> Tensor:
    """SHD between 0/1 adjacency matrices ``(..., F, F)`` and ``true`` ``(F, F)``: the number of
    unordered pairs ``{a, b}`` whose edge state differs (missing, extra, or reversed: a reversal
    counts once). Returns a long tensor of the batch shape.

    Example:
        >>> import torch
        >>> true = torch.tensor([[0.0, 1, 0], [0, 0, 1], [0, 0, 0]])
        >>> int(structural_hamming_distance(true.T, true))  # both edges reversed
        2
    """
    g = graphs > 0.5
    t = (true > 0.5).to(g.device)
    differs = (g != t) | (g.transpose(-1, -2) != t.T)
    upper = torch.ones_like(t).triu(1)
    return (differs & upper).sum(dim=(-1, -2))


@dataclass
class RandomGraphBaseline:
    """SHDs of random DAGs with a given number of edges against a true graph: what chance gives.

    Attributes:
        shd: ``(samples,)`` the SHD of each random DAG.
        n_edges: edges per random DAG.
        mean: mean SHD.
    """

    shd: Tensor
    n_edges: int
    mean: float

    def share_at_most(self, value: float) -> float:
        """Share of random DAGs whose SHD is ``<= value``: the chance that a random graph of the
        same size does as well (small: better than chance)."""
        return float((self.shd.double() <= value).double().mean())

    def quantiles(self, q: tuple[float, ...] = (0.05, 0.5, 0.95)) -> list[float]:
        """Quantiles of the random SHDs."""
        return torch.quantile(self.shd.double(), torch.tensor(q, dtype=torch.float64)).tolist()


def random_dag_shd(
    true: Tensor,
    n_edges: int,
    *,
    samples: int = 10_000,
    generator: torch.Generator | None = None,
    keep_order: bool = False,
) -> RandomGraphBaseline:
    """SHD against ``true`` ``(F, F)`` of ``samples`` uniformly random DAGs with ``n_edges`` edges.

    Each random DAG takes a uniformly random order of the ``F`` nodes and ``n_edges`` distinct
    pairs, each directed along that order, so every DAG with ``n_edges`` edges can occur. Compare a
    learned graph's SHD with this distribution (:meth:`RandomGraphBaseline.share_at_most`), not
    with one draw.

    ``keep_order=True`` keeps the order ``0..F-1`` (every edge ``j -> i`` has ``j < i``): the
    fair baseline for a model that was given the order, e.g. an XBlock whose units were matched
    to factors listed in topological order, which can only learn graphs in that order.

    Example:
        >>> import torch
        >>> true = torch.tensor([[0.0, 1, 1], [0, 0, 0], [0, 0, 0]])
        >>> fixed = random_dag_shd(true, 2, samples=500, keep_order=True)
        >>> sorted(set(fixed.shd.tolist()))  # the 3 graphs with 2 edges in the order 0, 1, 2
        [0, 2]
    """
    f = true.shape[0]
    possible = f * (f - 1) // 2
    if not 0 <= n_edges <= possible:
        raise InvalidValueError(f"n_edges must lie in [0, {possible}] for {f} nodes; got {n_edges}")
    if samples < 1:
        raise InvalidValueError(f"samples must be >= 1; got {samples}")
    rows, cols = torch.triu_indices(f, f, offset=1)
    keys = torch.rand(samples, possible, generator=generator)
    chosen = keys.argsort(dim=1)[:, :n_edges]  # n_edges distinct pairs per sample
    upper = torch.zeros(samples, possible)
    upper.scatter_(1, chosen, 1.0)
    graphs = torch.zeros(samples, f, f)
    graphs[:, rows, cols] = upper  # a DAG in the order 0..F-1
    if not keep_order:
        order = torch.rand(samples, f, generator=generator).argsort(dim=1)  # relabel: random order
        index = order[:, :, None].expand(-1, -1, f)
        graphs = graphs.gather(1, index).gather(2, order[:, None, :].expand(-1, f, -1))
    shd = structural_hamming_distance(graphs, true.detach().cpu().float())
    return RandomGraphBaseline(shd, int(n_edges), float(shd.double().mean()))


@dataclass
class DataInvariance:
    """Data-side invariance: ``score[f, g] = 1 - E[Δz_g²] / Var(z_g)`` when factor ``f`` is intervened
    on in the data and ``z_g`` is the latent matched to factor ``g``.

    A consistent encoder keeps the latents of ``f``'s non-descendants still (score near 1).

    Attributes:
        score: ``(F, F)`` (NaN for unmatched factors).
        non_descendant: ``(F, F)`` mask of the pairs ``(f, g)`` with ``g`` neither ``f`` nor its descendant.
        mean_non_descendant: mean score over those pairs.
    """

    score: Tensor
    non_descendant: Tensor
    mean_non_descendant: float


@torch.no_grad()
def data_invariance(
    encoder: Callable[[Tensor], Any],
    scene: Any,
    matching: Matching,
    *,
    n_samples: int = 512,
    device: torch.device | str | None = None,
) -> DataInvariance:
    """Intervene on each true factor of ``scene`` (a :class:`~consistency.data.synthetic.CausalScene`)
    in the data, encode before and after, and measure how much each matched latent moves.

    For each factor ``f``: draw scene noise, render the observational images and the images
    under ``do(f := v)`` with ``v`` drawn from ``f``'s observational marginal (same noise
    otherwise), and compare the encodings.
    """
    fcount = len(scene.names)
    noise = scene.sample_noise(n_samples)
    base = scene.factors_from_noise(noise)
    images = scene.render(base)
    dev = torch.device(device) if device is not None else None

    def encode(x: Tensor) -> Tensor:
        x = x.to(dev) if dev is not None else x
        return posterior_mean(encoder(x)).double().cpu()

    z0 = encode(images)
    var = z0.var(0, unbiased=False)
    score = torch.full((fcount, fcount), float("nan"), dtype=torch.float64)
    mask = torch.zeros(fcount, fcount, dtype=torch.bool)
    perm = scene.rng.permutation(n_samples)
    for f in range(fcount):
        values = base[perm, f]  # from the factor's observational marginal
        moved = encode(scene.render(scene.factors_from_noise(noise, do={f: values})))
        change = (moved - z0).square().mean(0)
        desc = scene.descendants(f)
        for g in range(fcount):
            lg = int(matching.latent_of_factor[g])
            mask[f, g] = g != f and g not in desc
            if lg >= 0 and float(var[lg]) > 0:
                score[f, g] = 1.0 - change[lg] / var[lg]
    vals = score[mask]
    vals = vals[~torch.isnan(vals)]
    return DataInvariance(score.float(), mask, float(vals.mean()) if vals.numel() else float("nan"))
