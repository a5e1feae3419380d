"""SAP, the separated attribute predictability score (Kumar et al. 2018), as
``disentanglement_lib`` computes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidValueError
from ._common import _check_pair, _labels, _sklearn, _split


@dataclass
class SAP:
    """Separated attribute predictability (Kumar et al. 2018, "Variational inference of
    disentangled latent concepts from unlabeled observations", Sec. 3).

    Attributes:
        score: mean over factors of the gap between the two most predictive latents.
        gap: ``(F,)`` the per-factor gaps.
        matrix: ``(n, F)`` predictability of factor ``k`` from latent ``j`` alone.
        continuous: whether the factors were scored as continuous (squared correlation) or as
            classes (a linear SVM's test accuracy).
    """

    score: float
    gap: Tensor
    matrix: Tensor
    continuous: bool


def sap(
    codes: Tensor,
    factors: Tensor,
    *,
    continuous: bool = False,
    test_codes: Tensor | None = None,
    test_factors: Tensor | None = None,
    test_fraction: float = 1 / 3,
    factor_bins: int | None = None,
    seed: int = 0,
) -> SAP:
    r"""The SAP score: for each factor, how much better the best single latent predicts it than
    the second best.

    With :math:`S_{jk}` the predictability of factor :math:`k` from latent :math:`j` alone,

    .. math:: \mathrm{SAP} = \frac{1}{F}\sum_k \big(S_{j^{(1)}k} - S_{j^{(2)}k}\big)

    ``continuous=True``: :math:`S_{jk} = \mathrm{cov}(z_j, g_k)^2 / (\mathrm{var}\,z_j\,
    \mathrm{var}\,g_k)` on the training split (0 for a latent of variance below 1e-12), in
    torch. ``continuous=False`` (default, as disentanglement_lib and disent): the test accuracy
    of scikit-learn's ``LinearSVC(C=0.01, class_weight="balanced")`` trained on latent
    :math:`j` alone to classify factor :math:`k` (CPU; ``factor_bins`` makes classes of
    continuous factors). The classifier form depends on the latents' scale (the SVM's penalty)
    and stays below 1 for a perfect code of a factor with more than two levels (one feature
    cannot separate the middle classes one-vs-rest); the continuous form is invariant to
    rescaling and is 1 for a perfect code of uncorrelated factors.

    Args:
        codes: ``(N, n)`` training codes, ``n >= 2`` (the whole data when no test split is
            given).
        factors: ``(N, F)`` true factors.
        continuous: score the factors as continuous (no classifier, no test split used).
        test_codes: an explicit test split's codes (with ``test_factors``).
        test_factors: the test split's factors.
        test_fraction: held-out share when no test split is given (disentanglement_lib trains
            on 10,000 and tests on 5,000 points: 1/3).
        factor_bins: bins per factor for the classes, or ``None``: distinct values.
        seed: the split's random seed.

    Example:
        >>> import torch
        >>> g = torch.cartesian_prod(torch.arange(6.0), torch.arange(6.0))  # uncorrelated
        >>> round(sap(-3 * g[:, [1, 0]], g, continuous=True).score, 6)  # one latent per factor
        1.0
    """
    codes_t, factors_t = _check_pair(codes, factors)
    if codes_t.shape[1] < 2:
        raise InvalidValueError(
            f"SAP needs at least 2 latents (axis 1 of codes) to take a gap; got {codes_t.shape[1]}"
        )
    if continuous:
        matrix = _squared_correlation(codes_t.detach().double(), factors_t.double())
    else:
        z_tr, g_tr, z_te, g_te = _split(
            codes_t, factors_t, test_codes, test_factors, test_fraction, seed
        )
        matrix = _svm_accuracy(z_tr, g_tr, z_te, g_te, factor_bins)
    top2 = matrix.topk(2, dim=0).values
    gap = top2[0] - top2[1]
    return SAP(float(gap.mean()), gap, matrix, continuous)


def _squared_correlation(z: Tensor, g: Tensor) -> Tensor:
    """``(n, F)`` cov(z_j, g_k)^2 / (var z_j var g_k), covariances with ddof 1."""
    zc, gc = z - z.mean(0), g - g.mean(0)
    dof = z.shape[0] - 1
    cov = zc.T @ gc / dof
    var_z, var_g = zc.square().sum(0) / dof, gc.square().sum(0) / dof
    score = cov.square() / (var_z[:, None] * var_g[None, :])
    return torch.where(var_z[:, None] > 1e-12, score, torch.zeros_like(score))


def _svm_accuracy(
    z_tr: Tensor, g_tr: Tensor, z_te: Tensor, g_te: Tensor, bins: int | None
) -> Tensor:
    _sklearn("sap(continuous=False)")
    from sklearn.svm import LinearSVC  # type: ignore[import-untyped,unused-ignore]

    both = torch.cat([g_tr, g_te]).double()
    labels = torch.stack(_labels(both, bins), 1).cpu().numpy()
    y_tr, y_te = labels[: g_tr.shape[0]], labels[g_tr.shape[0] :]
    x_tr, x_te = z_tr.detach().double().cpu().numpy(), z_te.detach().double().cpu().numpy()
    out = torch.zeros(x_tr.shape[1], y_tr.shape[1], dtype=torch.float64)
    for j in range(x_tr.shape[1]):
        for k in range(y_tr.shape[1]):
            if len(set(y_tr[:, k].tolist())) < 2:
                raise InvalidValueError(
                    f"factor {k} takes a single value on the training split; SAP needs at "
                    "least two classes"
                )
            clf = LinearSVC(C=0.01, class_weight="balanced")
            clf.fit(x_tr[:, j : j + 1], y_tr[:, k])
            out[j, k] = float((clf.predict(x_te[:, j : j + 1]) == y_te[:, k]).mean())
    return out.to(z_tr.device)
