"""The unsupervised scores of ``disentanglement_lib`` (``unsupervised_metrics.py``) and disent
(``_unsupervised.py``): Gaussian total correlation, Gaussian Wasserstein correlation and the mean
mutual information between latents, in torch. They need no factors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_latents, check_positive_int
from ..errors import InvalidValueError
from ._common import discretize


@dataclass
class UnsupervisedScores:
    """Scores of a code's statistical dependence between its own latents (lower: more
    independent latents).

    Attributes:
        gaussian_total_correlation: KL divergence between the Gaussian with the codes'
            covariance and the product of its marginals.
        gaussian_wasserstein_correlation: the squared 2-Wasserstein distance between the same two
            Gaussians.
        gaussian_wasserstein_correlation_norm: the same over the trace of the covariance.
        mutual_information: mean pairwise MI (nats) between binned latents, off the diagonal.
        mutual_information_matrix: ``(n, n)`` the pairwise MI, diagonal zeroed.
    """

    gaussian_total_correlation: float
    gaussian_wasserstein_correlation: float
    gaussian_wasserstein_correlation_norm: float
    mutual_information: float
    mutual_information_matrix: Tensor


def unsupervised_scores(codes: Tensor, *, num_bins: int = 20) -> UnsupervisedScores:
    r"""Gaussian total correlation, Gaussian Wasserstein correlation and mean MI of the codes.

    With :math:`\Sigma` the codes' covariance (ddof 1) and :math:`D = \mathrm{diag}(\Sigma)`:

    .. math:: \mathrm{TC} = \tfrac12\Big(\sum_j \log \Sigma_{jj} - \log\det\Sigma\Big),\qquad
              W = 2\,\mathrm{tr}\,\Sigma - 2\,\mathrm{tr}\sqrt{D\Sigma}

    (:math:`\mathrm{tr}\sqrt{D\Sigma}` from the eigenvalues of the symmetric
    :math:`D^{1/2}\Sigma D^{1/2}`, which has the same spectrum), and the MI is the mean over
    ordered pairs :math:`i \neq j` of the discrete MI of the latents binned into ``num_bins``
    equal-width bins (:func:`discretize`).

    Args:
        codes: ``(N, n)`` codes, ``n >= 2``, ``N >= 2``.
        num_bins: bins per latent for the MI.

    Example:
        >>> import torch
        >>> z = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0))
        >>> round(unsupervised_scores(z).gaussian_total_correlation, 3)  # independent: ~0
        0.0
    """
    z = check_latents(codes, "codes").detach().double()
    if z.shape[1] < 2 or z.shape[0] < 2:
        raise InvalidValueError(
            f"unsupervised scores need n >= 2 latents and N >= 2 codes; got {tuple(z.shape)}"
        )
    check_positive_int(num_bins, "num_bins")
    cov = torch.cov(z.T)
    diag = cov.diagonal()
    if bool((diag <= 0).any()):
        raise InvalidValueError(
            f"latent(s) {(diag <= 0).nonzero().flatten().tolist()} are constant: the Gaussian "
            "scores need every latent to vary"
        )
    tc = 0.5 * (diag.log().sum() - torch.linalg.slogdet(cov)[1])
    root = diag.sqrt()
    spectrum = torch.linalg.eigvalsh(root[:, None] * cov * root[None, :]).clamp_min(0)
    wasserstein = 2 * cov.trace() - 2 * spectrum.sqrt().sum()
    mi = pairwise_mutual_information(discretize(z, num_bins), num_bins)
    mi.fill_diagonal_(0)
    n = z.shape[1]
    return UnsupervisedScores(
        float(tc),
        float(wasserstein),
        float(wasserstein / cov.trace()),
        float(mi.sum() / (n * n - n)),
        mi,
    )


def pairwise_mutual_information(labels: Tensor, bins: int) -> Tensor:
    """``(n, n)`` discrete MI in nats between every pair of columns of ``labels`` ``(N, n)``
    (integer labels in ``[0, bins)``), from one batched joint histogram."""
    n_rows, n = labels.shape
    left = labels[:, :, None].expand(n_rows, n, n)
    right = labels[:, None, :].expand(n_rows, n, n)
    pair = torch.arange(n * n, device=labels.device).view(n, n)
    idx = (pair * bins + left) * bins + right
    joint = torch.bincount(idx.flatten(), minlength=n * n * bins * bins).reshape(n, n, bins, bins)
    joint = joint.double() / n_rows
    pa, pb = joint.sum(3, keepdim=True), joint.sum(2, keepdim=True)
    ratio = joint / (pa * pb).clamp_min(torch.finfo(torch.float64).tiny)
    return torch.xlogy(joint, torch.where(joint > 0, ratio, torch.ones_like(ratio))).sum((2, 3))
