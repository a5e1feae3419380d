"""MIG (Chen et al. 2018), as ``disentanglement_lib`` computes it, in torch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_positive_int
from ..errors import InvalidValueError
from ._common import _check_pair, _entropy, _labels, discretize


# ---------------------------------------------------------------------------------------- MIG
@dataclass
class MIG:
    """Mutual information gap (Chen et al. 2018).

    Attributes:
        score: mean of ``gap`` over the factors.
        gap: ``(F,)`` (largest - second largest MI with a latent) / factor entropy.
        mutual_information: ``(n, F)`` in nats, between binned latents and factors.
        entropy: ``(F,)`` factor entropies in nats.
    """

    score: float
    gap: Tensor
    mutual_information: Tensor
    entropy: Tensor


def _mutual_information(code_labels: Tensor, code_bins: int, labels: Tensor) -> Tensor:
    """``(n,)`` MI in nats between each column of ``code_labels`` ``(N, n)`` and ``labels`` ``(N,)``."""
    n = code_labels.shape[1]
    k = int(labels.max()) + 1
    idx = (torch.arange(n, device=labels.device) * code_bins + code_labels) * k + labels[:, None]
    joint = torch.bincount(idx.flatten(), minlength=n * code_bins * k).reshape(n, code_bins, k)
    joint = joint.to(torch.float64) / code_labels.shape[0]
    pc = joint.sum(2, keepdim=True)
    py = joint.sum(1, keepdim=True)
    ratio = joint / (pc * py).clamp_min(torch.finfo(torch.float64).tiny)
    return torch.xlogy(joint, torch.where(joint > 0, ratio, torch.ones_like(ratio))).sum((1, 2))


def mig(
    codes: Tensor, factors: Tensor, *, num_bins: int = 20, factor_bins: int | None = None
) -> MIG:
    r"""Mutual information gap, as ``disentanglement_lib`` and ``disent`` compute it.

    Each latent is binned into ``num_bins`` equal-width bins (:func:`discretize`); with
    :math:`I_{jk}` the discrete mutual information (nats) of binned latent :math:`j` and factor
    :math:`k`, and :math:`j^{(1)}, j^{(2)}` the latents of largest and second largest MI,

    .. math:: \mathrm{MIG} = \frac{1}{F}\sum_k \frac{I_{j^{(1)}k} - I_{j^{(2)}k}}{H(g_k)}

    Args:
        codes: ``(N, n)`` encoder means, ``n >= 2``.
        factors: ``(N, F)``: class indices or values (``factor_bins=None``, the default, uses
            each distinct value as a class, as both reference implementations do).
        num_bins: bins per latent.
        factor_bins: bins per factor, or ``None``.

    Raises:
        InvalidValueError: fewer than two latents, or a constant factor (entropy 0).

    Example:
        >>> import torch
        >>> g = torch.cartesian_prod(torch.arange(5), torch.arange(5))  # full factorial
        >>> round(mig(g.float(), g).score, 6)  # each latent is one factor: MI gap = entropy
        1.0
    """
    codes_t, factors_t = _check_pair(codes, factors)
    if codes_t.shape[1] < 2:
        raise InvalidValueError(
            f"MIG needs at least 2 latents (axis 1 of codes) to take a gap; got {codes_t.shape[1]}"
        )
    check_positive_int(num_bins, "num_bins")
    binned = discretize(codes_t.detach(), num_bins)
    mis, ents = [], []
    for f, labels in enumerate(_labels(factors_t, factor_bins)):
        counts = torch.bincount(labels).to(torch.float64)
        h = _entropy(counts)
        if float(h) <= 0:
            raise InvalidValueError(
                f"factor {f} is constant over the {labels.shape[0]} samples: its entropy is 0 and "
                "MIG is undefined"
            )
        mis.append(_mutual_information(binned, num_bins, labels))
        ents.append(h)
    mi = torch.stack(mis, 1)  # (n, F)
    entropy = torch.stack(ents)
    top2 = mi.topk(2, dim=0).values
    gap = (top2[0] - top2[1]) / entropy
    return MIG(float(gap.mean()), gap, mi, entropy)
