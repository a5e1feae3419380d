r"""Ground-truth disentanglement metrics in torch: IRS, MIG, DCI, and the latent response matrices.

Each takes codes ``(N, n)`` (encoder means) and true factors ``(N, F)`` (or, for the response
matrices, the networks), runs batched on the codes' device, and returns a dataclass with the
score and the matrices it came from. IRS and MIG follow ``disentanglement_lib`` (Locatello et al.
2019) line by line, including its discretisation; DCI offers the lasso importances of Eastwood &
Williams (2018), in torch and fast (the default), and the gradient-boosted trees of
``disentanglement_lib`` / ``disent`` (scikit-learn, slow, for numbers comparable with theirs).

Factors may be integer class indices or real values. Where a metric needs discrete factors,
``factor_bins=None`` uses each distinct value as a class and an int bins each factor into that
many equal-width bins between its minimum and maximum (``np.histogram`` / ``np.digitize``, as
``disentanglement_lib`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from .._checks import check_latents, check_positive_int
from ..encoding import posterior_mean
from ..errors import InvalidTypeError, InvalidValueError, ShapeError
from ..intervention import intervene
from ..response import response

__all__ = [
    "DCI",
    "IRS",
    "MIG",
    "ConditionedResponse",
    "GroundTruthScores",
    "InterventionalData",
    "LatentResponse",
    "completeness",
    "conditioned_response_matrix",
    "dci",
    "discretize",
    "disentanglement",
    "encode_all",
    "ground_truth_scores",
    "irs",
    "lasso",
    "latent_response_matrix",
    "mig",
]


# ------------------------------------------------------------------------------- input checks
def _check_pair(codes: object, factors: object, *, min_rows: int = 2) -> tuple[Tensor, Tensor]:
    codes_t = check_latents(codes, "codes")
    if not isinstance(factors, Tensor):
        raise InvalidTypeError(
            f"factors must be a torch.Tensor of shape (N, F); got {type(factors).__name__}"
        )
    if factors.ndim != 2:
        raise ShapeError(
            f"factors must have shape (N, F) (rank 2); got rank {factors.ndim} with shape "
            f"{tuple(factors.shape)}"
        )
    if factors.shape[0] != codes_t.shape[0]:
        raise ShapeError(
            f"codes and factors must share axis 0 (N samples); got codes {tuple(codes_t.shape)} "
            f"and factors {tuple(factors.shape)}"
        )
    if codes_t.shape[0] < min_rows:
        raise InvalidValueError(
            f"need at least {min_rows} samples (axis 0 of codes); got {codes_t.shape[0]}"
        )
    if factors.is_floating_point() and not bool(torch.isfinite(factors).all()):
        raise InvalidValueError("factors contain NaN or inf; expected finite values")
    return codes_t, factors.to(codes_t.device)


def discretize(values: Tensor, bins: int = 20) -> Tensor:
    r"""Equal-width histogram bins per column: ``(N, k)`` reals -> ``(N, k)`` bin indices in ``[0, bins)``.

    .. math:: b_{ij} = \min\big(\lfloor \text{bins}\cdot(x_{ij} - \min_i x_{ij}) /
              (\max_i x_{ij} - \min_i x_{ij}) \rfloor,\ \text{bins} - 1\big)

    Exactly ``np.digitize(x, np.histogram(x, bins)[1][:-1]) - 1`` of ``disentanglement_lib``
    (edges from ``linspace(min, max, bins + 1)``, the maximum in the last bin). A constant column
    lands in one bin.

    Example:
        >>> import torch
        >>> discretize(torch.tensor([[0.0], [0.24], [0.26], [1.0]]), bins=4).flatten().tolist()
        [0, 0, 1, 3]
    """
    check_positive_int(bins, "bins")
    if values.ndim != 2:
        raise ShapeError(f"values must have shape (N, k); got {tuple(values.shape)}")
    x = values.to(torch.float64)
    lo, hi = x.min(0).values, x.max(0).values
    same = hi == lo
    lo = torch.where(same, lo - 0.5, lo)  # np.histogram's range for a constant column
    hi = torch.where(same, hi + 0.5, hi)
    step = (hi - lo) / bins  # the edges as np.linspace computes them, ulp for ulp
    inner = lo[:, None] + torch.arange(bins, dtype=torch.float64, device=x.device) * step[:, None]
    idx = torch.searchsorted(inner, x.T.contiguous(), right=True) - 1  # (k, N)
    return idx.clamp(0, bins - 1).T.contiguous()


def _labels(factors: Tensor, bins: int | None) -> list[Tensor]:
    """Per factor: class labels ``(N,)`` in ``[0, K_f)`` (distinct values, or histogram bins)."""
    cols = discretize(factors, bins) if bins is not None else factors
    return [torch.unique(cols[:, f], return_inverse=True)[1] for f in range(cols.shape[1])]


def _entropy(counts: Tensor, dim: int = -1) -> Tensor:
    p = counts / counts.sum(dim, keepdim=True)
    return -torch.xlogy(p, p).sum(dim)


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
    if (test_codes is None) != (test_factors is None):
        raise InvalidValueError("give both test_codes and test_factors, or neither")
    if test_codes is None or test_factors is None:
        if not 0.0 < test_fraction < 1.0:
            raise InvalidValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
        total = codes_t.shape[0]
        n_test = max(1, round(total * test_fraction))
        if total - n_test < 2:
            raise InvalidValueError(f"too few samples ({total}) to hold out {test_fraction:.0%}")
        perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
        perm = perm.to(codes_t.device)
        tr, te = perm[n_test:], perm[:n_test]
        z_tr, g_tr, z_te, g_te = codes_t[tr], factors_t[tr], codes_t[te], factors_t[te]
    else:
        z_te, g_te = _check_pair(test_codes, test_factors, min_rows=1)
        if z_te.shape[1] != codes_t.shape[1] or g_te.shape[1] != factors_t.shape[1]:
            raise ShapeError(
                f"test split must have the training widths (n, F) = ({codes_t.shape[1]}, "
                f"{factors_t.shape[1]}); got {tuple(z_te.shape)} and {tuple(g_te.shape)}"
            )
        z_tr, g_tr = codes_t, factors_t
        z_te, g_te = z_te.to(codes_t.device), g_te.to(codes_t.device)
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


# ---------------------------------------------------------------------- latent response matrices
@dataclass
class LatentResponse:
    """The latent response matrix (Leeb et al. 2022).

    Attributes:
        matrix: ``(n, n)`` ``[j, i]``: RMS change of response ``i`` when latent ``j`` is resampled,
            divided by the aggregate posterior's standard deviation of latent ``i``
            (scale-free: unchanged by rescaling the latent space).
        raw: ``(n, n)`` the same in latent units.
        scale: ``(n,)`` the standard deviations used.
    """

    matrix: Tensor
    raw: Tensor
    scale: Tensor


class _Samples(Protocol):
    def sample(
        self, k: int, mode: str = ..., generator: torch.Generator | None = ...
    ) -> Tensor: ...


def _posterior_samples(
    samples: Tensor | _Samples, n_samples: int, generator: torch.Generator | None
) -> Tensor:
    if isinstance(samples, Tensor):
        return check_latents(samples, "samples")
    if not hasattr(samples, "sample"):
        raise InvalidTypeError(
            "samples must be a (B, n) tensor of aggregate-posterior samples or an "
            f"AggregatePosterior; got {type(samples).__name__}"
        )
    return samples.sample(n_samples, "posterior", generator)


@torch.no_grad()
def latent_response_matrix(
    encoder: Callable[[Tensor], Any],
    generate: Callable[[Tensor], Tensor],
    samples: Tensor | _Samples,
    *,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
    max_batch: int | None = 512,
) -> LatentResponse:
    r"""How much each response moves when one latent is resampled from the aggregate posterior.

    With :math:`z \sim q(z)` and :math:`z^{(j)}` a copy whose coordinate :math:`j` is replaced by
    :math:`z'_j` of another sample (a draw from the marginal :math:`q(z_j)`),

    .. math:: M_{ji} = \frac{1}{\sigma_i}\sqrt{\mathbb{E}\big[(R(z^{(j)})_i - R(z)_i)^2\big]},
              \qquad R = E\circ G

    Row :math:`j` is what latent :math:`j` drives; a consistent, disentangled model has a large
    diagonal and a small off-diagonal (its row :math:`j` is non-zero only on :math:`j` and its
    descendants). Uses the library's :func:`~consistency.response` and
    :func:`~consistency.intervene`.

    Args:
        encoder, generate: as for :func:`~consistency.response`.
        samples: aggregate-posterior samples ``(B, n)`` (used as given) or an
            :class:`~consistency.AggregatePosterior` (``n_samples`` drawn from it).
        n_samples: draws from a sampler.
        generator: for the resampling permutation and the sampler.
        max_batch: rows per network call.

    Example:
        >>> import torch
        >>> gen = torch.Generator().manual_seed(0)
        >>> z = torch.randn(2000, 3, generator=gen)
        >>> m = latent_response_matrix(lambda x: x, lambda n: n, z, generator=gen).matrix
        >>> bool((m - torch.diag(m.diagonal())).abs().max() == 0)  # identity response: diagonal
        True
        >>> [round(v, 1) for v in m.diagonal().tolist()]  # resampling moves a latent by sqrt(2) sd
        [1.4, 1.4, 1.4]
    """
    z = _posterior_samples(samples, n_samples, generator)
    b, n = z.shape
    if b < 2:
        raise InvalidValueError(f"need at least 2 aggregate-posterior samples; got {b}")
    base = response(encoder, generate, z, max_batch=max_batch)
    dims = torch.arange(n, device=z.device).repeat_interleave(b)  # (n * B,)
    perm = torch.stack([torch.randperm(b, generator=generator) for _ in range(n)]).to(z.device)
    values = z.gather(0, perm.T).T.reshape(-1)  # latent j's values, shuffled over the batch
    moved = intervene(z.repeat(n, 1), dims, values)
    resp = response(encoder, generate, moved, max_batch=max_batch).reshape(n, b, n)
    raw = (resp - base[None]).double().square().mean(1).sqrt()  # (n, n) [j, i]
    scale = z.double().std(0)
    matrix = raw / torch.where(scale > 0, scale, torch.ones_like(scale))[None]
    return LatentResponse(matrix.float(), raw.float(), scale.float())


class InterventionalData(Protocol):
    """A data set that can be intervened on: the :class:`~consistency.data.CausalScene` API.

    ``sample_noise(k)`` gives exogenous noise ``(k, F)``, ``factors_from_noise(noise, do)`` solves
    the structural equations (``do`` maps factor indices to values), ``render(factors)`` gives
    images, ``names`` the factor names.
    """

    names: tuple[str, ...]

    def sample_noise(self, k: int) -> Any: ...

    def factors_from_noise(self, noise: Any, do: Mapping[int | str, Any] | None = None) -> Any: ...

    def render(self, factors: Any) -> Tensor: ...


@dataclass
class ConditionedResponse:
    """The conditioned response matrix: latent responses along traversals of the true factors.

    Attributes:
        matrix: ``(F, n)`` ``[k, i]``: RMS spread of response ``i`` along a traversal of factor
            ``k`` (the other factors' noise held), divided by the spread of response ``i`` over
            the observational data.
        values: ``(F, T)`` the traversal values of each factor.
    """

    matrix: Tensor
    values: Tensor


@torch.no_grad()
def conditioned_response_matrix(
    encoder: Callable[[Tensor], Any],
    generate: Callable[[Tensor], Tensor],
    data: InterventionalData,
    *,
    n_samples: int = 256,
    steps: int = 8,
    factors: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    max_batch: int | None = 512,
) -> ConditionedResponse:
    r"""Traverse each true factor in the data (do() on it, other noise held) and measure how much
    each latent response :math:`R(E(x))` moves.

    For factor :math:`k`, traversal values :math:`v_1..v_T` (the ``(t + 1/2)/T`` quantiles of
    its observational marginal), and :math:`r_t = R(E(x^{do(g_k = v_t)}))`:

    .. math:: C_{ki} = \frac{1}{s_i}\sqrt{\mathbb{E}_x \frac{1}{T}\sum_t (r_{t,i} - \bar r_i)^2},
              \qquad s_i = \mathrm{sd}(R(E(x))_i)

    Row :math:`k` shows which latents carry factor :math:`k` *as the model's own response sees
    them*; a factor's descendants move too (they are recomputed under do()).

    Args:
        encoder, generate: the networks (``generate`` maps codes to images).
        data: an :class:`InterventionalData` (``CausalScene``, ``Pendulum``, ``Shapes``).
        n_samples: noise draws per factor; steps: traversal length ``T`` (>= 2).
        factors: which factors (default all).
        device: where the networks run (images are moved there).
    """
    check_positive_int(n_samples, "n_samples", 2)
    check_positive_int(steps, "steps", 2)
    names = tuple(data.names)
    chosen = list(range(len(names))) if factors is None else [int(f) for f in factors]
    dev = torch.device(device) if device is not None else None

    def respond(images: Tensor) -> Tensor:
        z = encode_all(encoder, images, batch_size=max_batch or images.shape[0], device=dev)
        return response(encoder, generate, z, max_batch=max_batch).double()

    noise = data.sample_noise(n_samples)
    base_factors = torch.as_tensor(data.factors_from_noise(noise), dtype=torch.float64)
    spread = respond(data.render(base_factors)).std(0)
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    q = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    rows, all_values = [], []
    for k in chosen:
        values = torch.quantile(base_factors[:, k], q)
        resp = torch.stack(
            [respond(data.render(data.factors_from_noise(noise, do={k: float(v)}))) for v in values]
        )  # (T, B, n)
        rows.append((resp - resp.mean(0)).square().mean((0, 1)).sqrt() / spread)
        all_values.append(values)
    return ConditionedResponse(torch.stack(rows).float().cpu(), torch.stack(all_values).float())


# ------------------------------------------------------------------------------- from a model
@torch.no_grad()
def encode_all(
    encoder: Callable[[Tensor], Any],
    images: Tensor,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> Tensor:
    """Encoder means ``(N, n)`` of ``images`` ``(N, ...)``, in batches, without gradients.

    The encoder runs where its inputs are sent (``device``; default: where ``images`` are); the
    codes come back on that device. The encoder's train/eval mode is left as it is (call
    ``model.eval()`` first if BatchNorm or dropout should be in evaluation mode).
    """
    check_positive_int(batch_size, "batch_size")
    if not isinstance(images, Tensor) or images.ndim < 2 or images.shape[0] == 0:
        raise InvalidValueError(
            "images must be a non-empty tensor (N, ...); got "
            + (str(tuple(images.shape)) if isinstance(images, Tensor) else type(images).__name__)
        )
    dev = torch.device(device) if device is not None else images.device
    return torch.cat([posterior_mean(encoder(chunk.to(dev))) for chunk in images.split(batch_size)])


@dataclass
class GroundTruthScores:
    """IRS, MIG and DCI of one representation (each result in full).

    Attributes:
        irs, mig, dci: the results of :func:`irs`, :func:`mig`, :func:`dci`.
    """

    irs: IRS
    mig: MIG
    dci: DCI

    def summary(self) -> dict[str, float]:
        """The headline numbers as a flat dict of floats."""
        return {
            "irs": self.irs.score,
            "mig": self.mig.score,
            "dci_disentanglement": self.dci.disentanglement,
            "dci_completeness": self.dci.completeness,
            "dci_informativeness": self.dci.informativeness,
        }


def ground_truth_scores(
    codes: Tensor | Callable[[Tensor], Any],
    factors: Tensor,
    *,
    images: Tensor | None = None,
    factor_bins: int | None = None,
    importance: Literal["lasso", "gbt"] = "lasso",
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> GroundTruthScores:
    """IRS, MIG and DCI in one call, from codes ``(N, n)`` or from an encoder and ``images``.

    Args:
        codes: encoder means ``(N, n)``, or the encoder itself (then ``images`` is required and
            :func:`encode_all` encodes them).
        factors: ``(N, F)`` true factors.
        images: ``(N, ...)`` when ``codes`` is an encoder.
        factor_bins: for MIG (and gbt DCI): ``None`` uses distinct factor values as classes
            (gridded factors), an int bins continuous factors. IRS always bins into 20, as
            disentanglement_lib does.
        importance: DCI's importance model.

    Example:
        >>> import torch
        >>> g = torch.cartesian_prod(torch.arange(6), torch.arange(5)).float()
        >>> scores = ground_truth_scores(lambda x: x * 2.0, g, images=g)
        >>> {k: round(v, 2) for k, v in scores.summary().items()}
        {'irs': 1.0, 'mig': 1.0, 'dci_disentanglement': 1.0, 'dci_completeness': 1.0, 'dci_informativeness': 1.0}
    """
    if callable(codes) and not isinstance(codes, Tensor):
        if images is None:
            raise InvalidValueError("codes is an encoder: pass the images to encode (images=)")
        codes_t = encode_all(codes, images, batch_size=batch_size, device=device)
    else:
        if images is not None:
            raise InvalidValueError("images= is only for an encoder; codes were given directly")
        codes_t = codes
    return GroundTruthScores(
        irs=irs(codes_t, factors),
        mig=mig(codes_t, factors, factor_bins=factor_bins),
        dci=dci(codes_t, factors, importance=importance, factor_bins=factor_bins),
    )
