"""The mean correlation coefficient after matching (MCC), as causal representation learning
reports it (iVAE, CITRIS), and per-factor R² of a linear and a nonlinear probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidValueError
from ._common import _check_pair, _split


@dataclass
class MCC:
    """Mean correlation coefficient after matching latents to factors one to one.

    Attributes:
        score: mean ``|corr|`` over the matched pairs.
        correlation: ``(n, F)`` Pearson or Spearman correlation of latent ``j`` and factor ``k``.
        matching: ``(min(n, F), 2)`` the matched ``(latent, factor)`` pairs (Hungarian
            matching maximising the summed ``|corr|``).
        per_factor: ``(F,)`` ``|corr|`` of each factor with its matched latent (NaN for a factor
            left unmatched when ``n < F``).
        method: ``"pearson"`` or ``"spearman"``.
    """

    score: float
    correlation: Tensor
    matching: Tensor
    per_factor: Tensor
    method: str


@dataclass
class ProbeR2:
    """Per-factor R² of predicting each factor from the whole code (held-out split).

    Attributes:
        linear: ``(F,)`` R² of least squares with an intercept.
        nonlinear: ``(F,)`` R² of kernel ridge regression (RBF kernel).
        linear_mean: mean of ``linear``.
        nonlinear_mean: mean of ``nonlinear``.
    """

    linear: Tensor
    nonlinear: Tensor
    linear_mean: float
    nonlinear_mean: float


def _ranks(x: Tensor) -> Tensor:
    """Column-wise ranks with ties averaged (``scipy.stats.rankdata(method="average")``, 1-based)."""
    order = x.argsort(0)
    sorted_x = x.gather(0, order)
    ranks = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    for j in range(x.shape[1]):
        _, inverse, counts = torch.unique_consecutive(
            sorted_x[:, j], return_inverse=True, return_counts=True
        )
        ends = counts.cumsum(0).double()  # the last 1-based position of each run of ties
        ranks[order[:, j], j] = (ends - (counts.double() - 1) / 2)[inverse]
    return ranks


def correlation_matrix(
    codes: Tensor, factors: Tensor, method: Literal["pearson", "spearman"] = "pearson"
) -> Tensor:
    """``(n, F)`` Pearson (or Spearman: Pearson of the ranks) correlation of every latent with
    every factor; 0 where a column is constant."""
    z, g = codes.detach().double(), factors.double()
    if method == "spearman":
        z, g = _ranks(z), _ranks(g)
    elif method != "pearson":
        raise InvalidValueError(f"method must be 'pearson' or 'spearman'; got {method!r}")
    zc, gc = z - z.mean(0), g - g.mean(0)
    norm = zc.norm(dim=0)[:, None] * gc.norm(dim=0)[None, :]
    corr = zc.T @ gc / norm.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(norm > 0, corr, torch.zeros_like(corr))


def mcc(
    codes: Tensor, factors: Tensor, *, method: Literal["pearson", "spearman"] = "pearson"
) -> MCC:
    r"""Mean correlation coefficient after matching: the correlation matrix of latents and
    factors, a one-to-one matching that maximises the summed absolute correlation
    (``scipy.optimize.linear_sum_assignment``), and the mean absolute correlation of the
    matched pairs:

    .. math:: \mathrm{MCC} = \max_{\pi} \frac{1}{\min(n, F)} \sum_k |\rho(z_{\pi(k)}, g_k)|

    Args:
        codes: ``(N, n)`` codes.
        factors: ``(N, F)`` true factors.
        method: ``"pearson"`` (default) or ``"spearman"``.

    Example:
        >>> import torch
        >>> g = torch.randn(400, 3)
        >>> round(mcc(-2 * g[:, [2, 0, 1]], g).score, 6)  # permuted, rescaled: perfect
        1.0
    """
    codes_t, factors_t = _check_pair(codes, factors)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("mcc needs scipy: pip install scipy") from err
    corr = correlation_matrix(codes_t, factors_t, method)
    rows, cols = linear_sum_assignment(-corr.abs().cpu().numpy())
    matching = torch.stack([torch.as_tensor(rows), torch.as_tensor(cols)], 1)
    matched = corr.abs()[matching[:, 0].to(corr.device), matching[:, 1].to(corr.device)]
    per_factor = torch.full((factors_t.shape[1],), float("nan"), dtype=torch.float64)
    per_factor[matching[:, 1]] = matched.cpu()
    return MCC(float(matched.mean()), corr, matching, per_factor, method)


def _r2(y: Tensor, pred: Tensor) -> Tensor:
    resid = (y - pred).square().sum(0)
    total = (y - y.mean(0)).square().sum(0)
    return 1 - resid / total.clamp_min(torch.finfo(torch.float64).tiny)


def probe_r2(
    codes: Tensor,
    factors: Tensor,
    *,
    test_codes: Tensor | None = None,
    test_factors: Tensor | None = None,
    test_fraction: float = 0.25,
    ridge: float = 1e-5,
    max_kernel_rows: int = 2000,
    seed: int = 0,
) -> ProbeR2:
    r"""Per-factor R² of a linear and a nonlinear probe from the whole code, on a held-out split,
    in torch on the codes' device.

    Codes are standardised with the training split's statistics. Linear: least squares with an
    intercept. Nonlinear: kernel ridge regression with the RBF kernel
    :math:`k(a, b) = \exp(-\lVert a - b\rVert^2 / n)`, weight ``ridge`` times the number of
    training rows, fit on at most ``max_kernel_rows`` training rows (a seeded subset).

    Args:
        codes: ``(N, n)`` training codes (the whole data when no test split is given).
        factors: ``(N, F)`` true factors (their values are regressed, as they are).
        test_codes: an explicit test split's codes (with ``test_factors``).
        test_factors: the test split's factors.
        test_fraction: held-out share when no test split is given.
        ridge: the kernel ridge weight per training row.
        max_kernel_rows: most training rows of the kernel (its cost grows with their cube).
        seed: the split's and the subset's random seed.

    Example:
        >>> import torch
        >>> g = torch.rand(1000, 2)
        >>> result = probe_r2(torch.stack([torch.tanh(4 * g[:, 1] - 2), torch.exp(2 * g[:, 0])], 1), g)
        >>> bool(result.nonlinear_mean > 0.99), bool(result.nonlinear_mean > result.linear_mean)
        (True, True)
    """
    codes_t, factors_t = _check_pair(codes, factors)
    z_tr, g_tr, z_te, g_te = _split(
        codes_t, factors_t, test_codes, test_factors, test_fraction, seed
    )
    z_tr, z_te = z_tr.detach().double(), z_te.detach().double()
    y_tr, y_te = g_tr.double(), g_te.double()
    mean, std = z_tr.mean(0), z_tr.std(0).clamp_min(1e-12)
    x_tr, x_te = (z_tr - mean) / std, (z_te - mean) / std
    ones_tr = torch.ones(x_tr.shape[0], 1, dtype=torch.float64, device=x_tr.device)
    ones_te = torch.ones(x_te.shape[0], 1, dtype=torch.float64, device=x_te.device)
    design = torch.cat([x_tr, ones_tr], 1)
    w = torch.linalg.lstsq(design, y_tr).solution
    linear = _r2(y_te, torch.cat([x_te, ones_te], 1) @ w)
    if x_tr.shape[0] > max_kernel_rows:
        keep = torch.randperm(x_tr.shape[0], generator=torch.Generator().manual_seed(seed))
        keep = keep[:max_kernel_rows].to(x_tr.device)
        k_x, k_y = x_tr[keep], y_tr[keep]
    else:
        k_x, k_y = x_tr, y_tr
    width = float(x_tr.shape[1])
    gram = torch.exp(-torch.cdist(k_x, k_x).square() / width)
    centre = k_y.mean(0)
    eye = torch.eye(gram.shape[0], dtype=torch.float64, device=gram.device)
    alpha = torch.linalg.solve(gram + ridge * gram.shape[0] * eye, k_y - centre)
    pred = torch.exp(-torch.cdist(x_te, k_x).square() / width) @ alpha + centre
    nonlinear = _r2(y_te, pred)
    return ProbeR2(linear, nonlinear, float(linear.mean()), float(nonlinear.mean()))
