"""DCI (Eastwood & Williams 2018): lasso importances in torch, or ``disentanglement_lib``'s
gradient-boosted trees (scikit-learn)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidValueError, ShapeError
from ._common import _check_pair, _labels, _split


# ---------------------------------------------------------------------------------------- DCI
@dataclass
class DCI:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    Attributes:
        disentanglement: importance-weighted mean of ``per_latent``.
        completeness: importance-weighted mean of ``per_factor``.
        informativeness: on the test split: mean R² of the lasso predictions
            (``importance="lasso"``) or mean accuracy of the classifiers (``"gbt"``).
        informativeness_train: the same on the training split.
        importance: ``(n, F)`` importance of latent ``j`` for factor ``k``.
        per_latent: ``(n,)`` 1 - entropy (base F) of each latent's importance over factors.
        per_factor: ``(F,)`` 1 - entropy (base n) of each factor's importance over latents.
        method: ``"lasso"`` or ``"gbt"``.
    """

    disentanglement: float
    completeness: float
    informativeness: float
    informativeness_train: float
    importance: Tensor
    per_latent: Tensor
    per_factor: Tensor
    method: str


def _one_minus_entropy(weights: Tensor, base: int) -> Tensor:
    p = weights + 1e-11  # as scipy.stats.entropy(x + 1e-11) in the reference implementations
    p = p / p.sum(-1, keepdim=True)
    return 1.0 - (-torch.xlogy(p, p).sum(-1)) / math.log(base)


def disentanglement(importance: Tensor) -> tuple[float, Tensor]:
    r"""DCI disentanglement of an importance matrix ``(n, F)``: ``(score, per_latent)``.

    .. math:: D = \sum_j \rho_j\,\big(1 - H_F(P_{j\cdot})\big),\quad
              P_{jk} = \frac{R_{jk}}{\sum_{k'} R_{jk'}},\quad \rho_j = \frac{\sum_k R_{jk}}{\sum_{jk} R_{jk}}

    Example:
        >>> import torch
        >>> round(disentanglement(torch.eye(3))[0], 6), round(disentanglement(torch.ones(3, 3))[0], 6)
        (1.0, 0.0)
    """
    r = _check_importance(importance)
    if r.shape[1] < 2:
        raise InvalidValueError(f"disentanglement needs F >= 2 factors (axis 1); got {r.shape[1]}")
    per = _one_minus_entropy(r, r.shape[1])
    w = r if float(r.sum()) > 0 else torch.ones_like(r)
    rho = w.sum(1) / w.sum()
    return float((per * rho).sum()), per


def completeness(importance: Tensor) -> tuple[float, Tensor]:
    r"""DCI completeness of an importance matrix ``(n, F)``: ``(score, per_factor)``.

    .. math:: C = \sum_k \rho_k\,\big(1 - H_n(\tilde P_{\cdot k})\big),\quad
              \tilde P_{jk} = \frac{R_{jk}}{\sum_{j'} R_{j'k}},\quad \rho_k = \frac{\sum_j R_{jk}}{\sum_{jk} R_{jk}}

    Example:
        >>> import torch
        >>> round(completeness(torch.eye(3))[0], 6)
        1.0
    """
    r = _check_importance(importance)
    if r.shape[0] < 2:
        raise InvalidValueError(f"completeness needs n >= 2 latents (axis 0); got {r.shape[0]}")
    per = _one_minus_entropy(r.T, r.shape[0])
    w = r if float(r.sum()) > 0 else torch.ones_like(r)
    rho = w.sum(0) / w.sum()
    return float((per * rho).sum()), per


def _check_importance(importance: Tensor) -> Tensor:
    if not isinstance(importance, Tensor) or importance.ndim != 2:
        raise ShapeError(
            "importance must be a tensor of shape (n, F); got "
            + (
                str(tuple(importance.shape))
                if isinstance(importance, Tensor)
                else type(importance).__name__
            )
        )
    r = importance.detach().to(torch.float64)
    if bool((r < 0).any()) or not bool(torch.isfinite(r).all()):
        raise InvalidValueError("importance must be finite and non-negative")
    return r


def lasso(x: Tensor, y: Tensor, alpha: float, *, iterations: int = 1000) -> Tensor:
    r"""Lasso coefficients ``(n, F)`` for every target column at once (no intercept).

    .. math:: \hat W = \arg\min_W \frac{1}{2N}\|Y - XW\|_F^2 + \alpha \|W\|_1

    Solved by FISTA on the Gram matrix (``iterations`` steps of size 1 / its largest
    eigenvalue), in float64 on the inputs' device; the objective is scikit-learn's ``Lasso``
    with ``fit_intercept=False``.

    Args:
        x: ``(N, n)`` design; y: ``(N, F)`` targets; alpha: the L1 weight (>= 0).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(
            f"x (N, n) and y (N, F) must share N; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if alpha < 0:
        raise InvalidValueError(f"alpha must be >= 0; got {alpha}")
    xd, yd = x.to(torch.float64), y.to(torch.float64)
    gram = xd.T @ xd / xd.shape[0]
    corr = xd.T @ yd / xd.shape[0]
    lipschitz = torch.linalg.eigvalsh(gram)[-1].clamp_min(1e-12)
    step = 1.0 / lipschitz
    w = torch.zeros_like(corr)
    v, t = w, 1.0
    for _ in range(iterations):
        g = v - step * (gram @ v - corr)
        w_next = g.sign() * (g.abs() - step * alpha).clamp_min(0.0)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        v = w_next + ((t - 1.0) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w


def _standardise(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def _r2(y: Tensor, pred: Tensor) -> Tensor:
    return 1.0 - (y - pred).square().mean(0) / y.var(0, unbiased=False).clamp_min(1e-300)


def dci(
    codes: Tensor,
    factors: Tensor,
    *,
    test_codes: Tensor | None = None,
    test_factors: Tensor | None = None,
    importance: Literal["lasso", "gbt"] = "lasso",
    alpha: float = 0.01,
    test_fraction: float = 0.2,
    factor_bins: int | None = None,
    seed: int = 0,
) -> DCI:
    r"""Disentanglement, completeness, informativeness from a regressor's importances.

    A regressor predicts each factor from the codes; its importance matrix :math:`R` ``(n, F)``
    gives :func:`disentanglement` and :func:`completeness`:

    .. math:: D = \sum_j \rho_j (1 - H_F(P_{j\cdot})),\qquad C = \sum_k \tilde\rho_k (1 - H_n(\tilde P_{\cdot k}))

    ``importance="lasso"`` (default; torch, batched, on the codes' device): codes and factors
    standardised on the training split, one :func:`lasso` per factor with weight ``alpha``,
    :math:`R = |W|`; informativeness is the mean held-out :math:`R^2` (Eastwood & Williams 2018
    use the lasso and a prediction error; :math:`R^2 = 1 - \text{NMSE}`).
    ``importance="gbt"`` (scikit-learn's ``GradientBoostingClassifier`` with its defaults, per
    factor, as disentanglement_lib and disent; CPU, slow): factors are classes (``factor_bins``
    as in :func:`mig`), :math:`R` the trees' feature importances, informativeness the test
    accuracy. Only the gbt numbers are comparable with those libraries.

    Args:
        codes, factors: ``(N, n)``, ``(N, F)`` training data (the whole data when no test split
            is given: a seeded random ``test_fraction`` of it is held out).
        test_codes, test_factors: an explicit test split.
        importance: ``"lasso"`` or ``"gbt"``.
        alpha: lasso weight, on standardised data.
        test_fraction: held-out share when no test split is given.
        factor_bins: (gbt) bins per factor, or ``None``: distinct values are classes.
        seed: the split's (and the trees') random seed.

    Example:
        >>> import torch
        >>> g = torch.randn(2000, 3)
        >>> result = dci(g[:, [2, 0, 1]] * 3.0, g)
        >>> round(result.disentanglement, 3), round(result.completeness, 3), round(result.informativeness, 3)
        (1.0, 1.0, 1.0)
    """
    codes_t, factors_t = _check_pair(codes, factors)
    if codes_t.shape[1] < 2 or factors_t.shape[1] < 2:
        raise InvalidValueError(
            f"DCI needs n >= 2 latents and F >= 2 factors; got codes {tuple(codes_t.shape)} and "
            f"factors {tuple(factors_t.shape)}"
        )
    z_tr, g_tr, z_te, g_te = _split(
        codes_t, factors_t, test_codes, test_factors, test_fraction, seed
    )
    z_tr, z_te = z_tr.detach().to(torch.float64), z_te.detach().to(torch.float64)
    if importance == "lasso":
        g_trd, g_ted = g_tr.to(torch.float64), g_te.to(torch.float64)
        constant = (g_trd.std(0) == 0).nonzero().flatten().tolist()
        if constant:
            raise InvalidValueError(
                f"factor(s) {constant} are constant on the training split; DCI needs varying factors"
            )
        x_tr, x_te = _standardise(z_tr, z_te)
        y_tr, y_te = _standardise(g_trd, g_ted)
        w = lasso(x_tr, y_tr, alpha)
        imp = w.abs()
        info = float(_r2(y_te, x_te @ w).mean())
        info_train = float(_r2(y_tr, x_tr @ w).mean())
    elif importance == "gbt":
        imp, info, info_train = _gbt_importance(z_tr, g_tr, z_te, g_te, factor_bins, seed)
    else:
        raise InvalidValueError(f"importance must be 'lasso' or 'gbt'; got {importance!r}")
    d, per_latent = disentanglement(imp)
    c, per_factor = completeness(imp)
    return DCI(d, c, info, info_train, imp, per_latent, per_factor, importance)


def _gbt_importance(
    z_tr: Tensor, g_tr: Tensor, z_te: Tensor, g_te: Tensor, bins: int | None, seed: int
) -> tuple[Tensor, float, float]:
    try:
        from sklearn.ensemble import (  # type: ignore[import-untyped,unused-ignore]
            GradientBoostingClassifier,
        )
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dci(importance='gbt') needs scikit-learn: pip install scikit-learn "
            "(or use importance='lasso', which needs nothing beyond torch)"
        ) from err
    both = torch.cat([g_tr, g_te]).to(torch.float64)
    labels = torch.stack(_labels(both, bins), 1).cpu().numpy()
    y_tr, y_te = labels[: g_tr.shape[0]], labels[g_tr.shape[0] :]
    x_tr, x_te = z_tr.cpu().numpy(), z_te.cpu().numpy()
    imp = torch.zeros(z_tr.shape[1], g_tr.shape[1], dtype=torch.float64)
    acc_tr, acc_te = [], []
    for k in range(g_tr.shape[1]):
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(x_tr, y_tr[:, k])
        imp[:, k] = torch.from_numpy(abs(model.feature_importances_))
        acc_tr.append(float((model.predict(x_tr) == y_tr[:, k]).mean()))
        acc_te.append(float((model.predict(x_te) == y_te[:, k]).mean()))
    return imp.to(z_tr.device), sum(acc_te) / len(acc_te), sum(acc_tr) / len(acc_tr)
