"""IRS (Suter et al. 2019), as ``disentanglement_lib`` computes it, in torch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidValueError
from ._common import _check_pair, _labels


# ---------------------------------------------------------------------------------------- IRS
@dataclass
class IRS:
    """Interventional robustness score (Suter et al. 2019).

    Attributes:
        score: the weighted mean of ``per_latent`` (weights ``max_deviation``).
        per_latent: ``(n,)`` robustness of each active latent to its best factor (NaN inactive).
        matrix: ``(n, F)`` ``1 - EMPIDA / max_deviation`` per latent and factor (NaN inactive).
        parents: ``(n,)`` the factor each latent is most robust for (-1 inactive).
        max_deviation: ``(n,)`` ``max_i |z_ij - mean_i z_ij|``.
        active: ``(n,)`` latents with nonzero variance (the others are dropped, as
            disentanglement_lib does).
    """

    score: float
    per_latent: Tensor
    matrix: Tensor
    parents: Tensor
    max_deviation: Tensor
    active: Tensor


def _group_quantile(values: Tensor, labels: Tensor, groups: int, q: float) -> Tensor:
    """``(groups, n)``: per group and column, the ``q``-quantile of ``values`` ``(N, n)`` (all
    >= 0; linear interpolation, as ``np.percentile`` and ``torch.quantile``)."""
    # one sort on (label, value): labels are spaced further apart than any two values
    span = values.max() + 1.0
    keys = labels[:, None].to(values.dtype) * span + values
    grouped = values.gather(0, keys.argsort(dim=0))
    counts = torch.bincount(labels, minlength=groups)  # (G,)
    starts = torch.cumsum(counts, 0) - counts
    pos = q * (counts - 1).to(values.dtype)  # (G,)
    low = pos.floor()
    frac = (pos - low)[:, None]
    lo_idx = (starts + low.long())[:, None].expand(-1, values.shape[1])
    hi_idx = (starts + torch.minimum(low.long() + 1, counts - 1))[:, None].expand_as(lo_idx)
    lo_v, hi_v = grouped.gather(0, lo_idx), grouped.gather(0, hi_idx)
    return lo_v + frac * (hi_v - lo_v)


def irs(
    codes: Tensor,
    factors: Tensor,
    *,
    diff_quantile: float = 0.99,
    factor_bins: int | None = 20,
) -> IRS:
    r"""Interventional robustness score, as ``disentanglement_lib`` computes it.

    For latent :math:`j` and factor :math:`i`, EMPIDA is the mean over the factor's values
    :math:`k` of the ``diff_quantile``-quantile of :math:`|z_j - \mathbb{E}[z_j \mid g_i = k]|`
    over the samples with :math:`g_i = k`:

    .. math:: \mathrm{IRS}_{ji} = 1 - \frac{\frac{1}{K_i}\sum_k Q_q\big(|z_j -
              \mathbb{E}[z_j\mid g_i=k]|\ \big|\ g_i=k\big)}{\max |z_j - \mathbb{E} z_j|},\qquad
              \mathrm{IRS} = \frac{\sum_j d_j \max_i \mathrm{IRS}_{ji}}{\sum_j d_j}

    with :math:`d_j = \max|z_j - \mathbb{E}z_j|`: ``matrix`` and ``per_latent`` are unchanged by
    rescaling a latent, the average by a common rescaling of all (the weights :math:`d_j` follow
    each latent's scale). Latents with zero variance are dropped first
    (all dropped: score 0). Factors are discretised into ``factor_bins`` equal-width bins, as
    disentanglement_lib does (``None``: each distinct value is a group).

    Args:
        codes: ``(N, n)`` encoder means.
        factors: ``(N, F)`` true factors.
        diff_quantile: ``q`` in ``(0, 1]``.
        factor_bins: bins per factor, or ``None``.

    Example:
        >>> import torch
        >>> g = torch.arange(4.0).repeat_interleave(25)[:, None]  # one factor, 4 values
        >>> z = torch.cat([g, torch.randn(100, 1)], 1)  # latent 0 is the factor, latent 1 noise
        >>> result = irs(z, g)
        >>> round(float(result.matrix[0, 0]), 6), result.parents.tolist()
        (1.0, [0, 0])
    """
    codes_t, factors_t = _check_pair(codes, factors)
    if not 0.0 < float(diff_quantile) <= 1.0:
        raise InvalidValueError(f"diff_quantile must lie in (0, 1]; got {diff_quantile}")
    z = codes_t.detach().to(torch.float64)
    n, f_count = z.shape[1], factors_t.shape[1]
    active = z.std(0, unbiased=False) > 0
    max_dev = (z - z.mean(0)).abs().max(0).values
    matrix = torch.full((n, f_count), float("nan"), dtype=torch.float64, device=z.device)
    per_latent = torch.full((n,), float("nan"), dtype=torch.float64, device=z.device)
    parents = torch.full((n,), -1, dtype=torch.long, device=z.device)
    if not bool(active.any()):
        return IRS(0.0, per_latent, matrix, parents, max_dev, active)
    za = z[:, active]
    cum = torch.zeros(za.shape[1], f_count, dtype=torch.float64, device=z.device)
    for i, labels in enumerate(_labels(factors_t, factor_bins)):
        groups = int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=groups).to(za.dtype)
        means = torch.zeros(groups, za.shape[1], dtype=za.dtype, device=z.device)
        means.index_add_(0, labels, za)
        means = means / counts[:, None]
        diffs = (za - means[labels]).abs()
        cum[:, i] = _group_quantile(diffs, labels, groups, float(diff_quantile)).mean(0)
    irs_a = 1.0 - cum / max_dev[active][:, None]
    best, parent = irs_a.max(dim=1)
    matrix[active] = irs_a
    per_latent[active] = best
    parents[active] = parent
    weights = max_dev[active]
    score = (
        float((best * weights).sum() / weights.sum())
        if float(weights.sum()) > 0
        else float(best.mean())
    )
    return IRS(score, per_latent, matrix, parents, max_dev, active)
