"""The pure functional core: penalties and scores computed from tensors already evaluated.

Every module of the library (losses, evaluator) reduces to these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ._checks import is_compiling
from .errors import InvalidValueError, ShapeError

__all__ = [
    "ScoreSums",
    "equivariance_penalty",
    "frechet_distance",
    "hybridise",
    "imq_mmd",
    "imq_mmd_multiscale",
    "invariance_penalty",
    "normalised_change",
    "off_target_mask",
    "pair_sparsity_penalty",
    "pair_targets",
    "score_from_errors",
    "self_consistency",
    "self_consistency_authors",
    "self_consistency_levels",
    "target_independence_penalty",
    "uniform_box",
    "unit_variance",
]


def off_target_mask(dims: Tensor, n: int) -> Tensor:
    """``(R, n)`` boolean mask, False at each row's intervened dimension."""
    return torch.arange(n, device=dims.device) != dims[:, None]


def _wide(x: Tensor) -> Tensor:
    """``x`` in float32 at least (half / bfloat16 are widened, float64 stays)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _per_dim_scale(variance: Tensor) -> Tensor:
    """Variances made safe to divide by: floored at 1e-6 of their mean; when every variance is 0
    (a batch without spread, e.g. a collapsed encoder) the loss falls back to raw units (scale 1)
    instead of dividing by ~0. ``torch.where``, no data-dependent branch."""
    v = _wide(variance.detach())
    mean = v.mean()
    return torch.where(mean > 0, torch.maximum(v, 1e-6 * mean), torch.ones_like(v))


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ShapeError(
            f"{name_a} and {name_b} must both have shape (R, n) and agree; got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


def invariance_penalty(
    reference: Tensor, intervened: Tensor, dims: Tensor, scale: Tensor | None = None
) -> Tensor:
    r"""Invariance penalty of Algorithm 1, averaged over rows.

    .. math:: L_{INV} = \frac{1}{R}\sum_k \frac{1}{n}\sum_{i \ne m_k} \frac{\big(R(\tilde N^k)_i - R(N^k)_i\big)^2}{s_i}

    Args:
        reference: ``(R, n)`` responses to the prior samples, :math:`R(N^k)`.
        intervened: ``(R, n)`` responses to the intervened samples, :math:`R(\tilde N^k)`.
        dims: ``(R,)`` intervened dimension of each row.
        scale: ``(n,)`` per-dimension divisors :math:`s_i` (e.g. the response variances
            :math:`\sigma_i'^2`, which puts the loss in the units of the invariance score; no
            gradient flows into them; floored at 1e-6 of their mean). ``None``: :math:`s_i = 1`,
            raw latent units.

    Returns:
        Scalar in float32, or float64 for float64 inputs.

    Example:
        >>> import torch
        >>> invariance_penalty(torch.zeros(1, 2), torch.tensor([[5.0, 2.0]]), torch.tensor([0]))
        tensor(2.)
    """
    _check_pair(reference, intervened, "reference", "intervened")
    if dims.shape != reference.shape[:1]:
        raise ShapeError(
            f"dims must have shape (R,) = ({reference.shape[0]},) to match reference; "
            f"got {tuple(dims.shape)}"
        )
    diff = (_wide(intervened) - _wide(reference)).square()
    if scale is not None:
        diff = diff / _per_dim_scale(scale)
    diff = diff * off_target_mask(dims, reference.shape[1])
    return diff.sum(dim=1).mean() / reference.shape[1]


def _check_targets(targets: Tensor, rows: int, n: int) -> None:
    if not isinstance(targets, Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"targets must be an integer tensor (B,); got {targets!r}")
    if targets.shape != (rows,):
        raise ShapeError(
            f"targets must have shape (B,) = ({rows},) to match the codes; got "
            f"{tuple(targets.shape)}"
        )
    if not is_compiling() and rows and (int(targets.min()) < 0 or int(targets.max()) >= n):
        raise ShapeError(
            f"targets must lie in [0, {n}) for codes with n={n}; got values in "
            f"[{int(targets.min())}, {int(targets.max())}]"
        )


def pair_targets(before: Tensor, after: Tensor) -> Tensor:
    r"""The unit each pair's change is attributed to when the targets are not known: the
    largest standardised change.

    .. math:: t_b = \arg\max_j \frac{(\tilde N_{bj} - N_{bj})^2}{\sigma_j^2}

    Args:
        before, after: ``(B, n)`` codes of the images before and after the intervention;
            :math:`\sigma_j^2` is the variance of ``before[:, j]`` (detached).

    Returns:
        ``(B,)`` int64 (no gradient).

    Example:
        >>> import torch
        >>> before = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
        >>> pair_targets(before, before + torch.tensor([[3.0, 0.0], [0.0, -2.0], [0.1, 0.0]]))
        tensor([0, 1, 0])
    """
    _check_pair(before, after, "before", "after")
    change = (_wide(after) - _wide(before)).detach().square()
    return (change / _per_dim_scale(unit_variance(before, before.shape[1]))).argmax(dim=1)


def pair_sparsity_penalty(before: Tensor, after: Tensor, targets: Tensor) -> Tensor:
    r"""How far a pair's codes differ off the intervened unit: a hard intervention changes one
    unit of the exogenous noise and no other.

    .. math:: L = \frac{1}{B}\sum_b \frac{1}{n}\sum_{j \ne t_b} \frac{(\tilde N_{bj} - N_{bj})^2}{\sigma_j^2}

    Args:
        before, after: ``(B, n)`` codes of the images before and after the intervention;
            :math:`\sigma_j^2` is the variance of ``before[:, j]`` over the batch (detached, so
            the penalty is unchanged by rescaling a coordinate).
        targets: ``(B,)`` the intervened unit of each pair.

    Returns:
        Scalar in float32 (float64 for float64 inputs).

    Example:
        >>> import torch
        >>> before = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
        >>> pair_sparsity_penalty(before, before + torch.tensor([[5.0, 1.0], [0.0, 1.0]]),
        ...                       torch.tensor([0, 1]))
        tensor(0.2500)
    """
    _check_pair(before, after, "before", "after")
    n = before.shape[1]
    _check_targets(targets, before.shape[0], n)
    diff = (_wide(after) - _wide(before)).square() / _per_dim_scale(unit_variance(before, n))
    return (diff * off_target_mask(targets, n)).sum(dim=1).mean() / n


def target_independence_penalty(
    causes: Tensor, others: Tensor, targets: Tensor, min_rows: int = 3
) -> Tensor:
    r"""Dependence of each pair's intervened cause on the other units' noise: after a hard
    intervention :math:`do(Z_t := v)`, :math:`Z_t` is independent of every :math:`N_j`,
    :math:`j \ne t`.

    .. math:: L = \frac{1}{|T|}\sum_{t \in T} \frac{1}{(n-1)u}\sum_{j \ne t}\sum_{d<u} \rho^2_{b: t_b = t}\big(c_{bd},\ N_{bj}\big)

    with :math:`\rho` the Pearson correlation over the pairs whose target is ``t`` and
    :math:`T` the targets with at least ``min_rows`` pairs (a mask, not a branch: the penalty is
    0 when no target has enough). Under independence :math:`\mathbb E\rho^2 \approx 1/(m-1)`
    for ``m`` pairs, the floor this penalty reaches.

    Args:
        causes: ``(B, u)`` the intervened unit's cause in each pair, :math:`c_b = Z_{b, t_b}`.
        others: ``(B, n)`` noise of the pair before the intervention (its entries at the target
            are ignored).
        targets: ``(B,)`` the intervened unit of each pair.
        min_rows: fewest pairs a target needs to count.

    Returns:
        Scalar in float32 (float64 for float64 inputs).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> noise = torch.randn(64, 2, generator=g)
        >>> targets = torch.ones(64, dtype=torch.long)  # every pair intervenes on unit 1
        >>> follows = target_independence_penalty(noise[:, :1] * 2, noise, targets)
        >>> fresh = target_independence_penalty(torch.randn(64, 1, generator=g), noise, targets)
        >>> round(float(follows), 3), bool(fresh < 0.1)
        (1.0, True)
    """
    if causes.ndim != 2 or others.ndim != 2 or causes.shape[0] != others.shape[0]:
        raise ShapeError(
            f"causes must be (B, u) and others (B, n) with the same B; got {tuple(causes.shape)} "
            f"and {tuple(others.shape)}"
        )
    rows, n = others.shape
    _check_targets(targets, rows, n)
    c, x = _wide(causes), _wide(others).to(_wide(causes).dtype)
    member = (targets[:, None] == torch.arange(n, device=targets.device)).to(c.dtype)  # (B, T)
    count = member.sum(0)  # (T,)
    safe = count.clamp(min=1.0)
    mean_c = member.T @ c / safe[:, None]  # (T, u)
    mean_x = member.T @ x / safe[:, None]  # (T, n)
    # centred per target group: (T, B, u) and (T, B, n), zero outside the group
    dc = (c[None] - mean_c[:, None]) * member.T[:, :, None]
    dx = (x[None] - mean_x[:, None]) * member.T[:, :, None]
    cov = torch.einsum("tbu,tbj->tuj", dc, dx)
    var_c = dc.square().sum(1)  # (T, u)
    var_x = dx.square().sum(1)  # (T, n)
    rho2 = cov.square() / (var_c[:, :, None] * var_x[:, None, :]).clamp(min=1e-12)
    off = (torch.arange(n, device=targets.device)[:, None] != torch.arange(n, device=targets.device)).to(c.dtype)  # fmt: skip
    per_target = (rho2 * off[:, None, :]).sum(dim=(1, 2)) / (max(n - 1, 1) * c.shape[1])
    counted = (count >= min_rows).to(c.dtype)
    return (per_target * counted).sum() / counted.sum().clamp(min=1.0)


def equivariance_penalty(
    causes: Tensor, causes_back: Tensor, n: int, scale: Tensor | None = None
) -> Tensor:
    r"""Equivariance penalty of Algorithm 2, unit-wise squared norms averaged over units and rows.

    .. math:: L_{EQV} = \frac{1}{R}\sum_k \frac{1}{n}\sum_{i=1}^n \frac{\big\|S(\tilde N^k)_i - S(\check N'^k)_i\big\|^2}{s_i}

    Args:
        causes: ``(R, n * u)`` :math:`S(\tilde N)` (or ``(R, n)`` noise when there is no XBlock).
        causes_back: ``(R, n * u)`` :math:`S(\check N')`, the response intervened again.
        n: number of units (the width is ``n * u``).
        scale: ``(n,)`` per-unit divisors :math:`s_i` (e.g. the summed variance of cause unit
            ``i``, :math:`(\sigma^Z_i)^2`, the equivariance score's units; no gradient; floored at
            1e-6 of their mean). ``None``: raw units.

    Example:
        >>> import torch
        >>> equivariance_penalty(torch.zeros(1, 4), torch.ones(1, 4), n=2)
        tensor(2.)
    """
    _check_pair(causes, causes_back, "causes", "causes_back")
    diff = (_wide(causes_back) - _wide(causes)).square()
    if scale is None:
        return diff.sum(dim=1).mean() / n
    per_unit = diff.view(diff.shape[0], n, -1).sum(dim=2) / _per_dim_scale(scale)
    return per_unit.sum(dim=1).mean() / n


def unit_variance(values: Tensor, n: int) -> Tensor:
    r"""Variance over rows of each unit, summed over the unit's dims: ``(R, n * u) -> (n,)``.

    For ``u = 1`` this is the per-coordinate (biased) variance; it is the :math:`(\sigma^Z_i)^2` of
    the equivariance score and the natural ``scale`` of the penalties above.

    Example:
        >>> import torch
        >>> unit_variance(torch.tensor([[0.0, 1.0], [2.0, 1.0]]), n=2)
        tensor([1., 0.])
    """
    v = _wide(values.detach())
    return v.var(dim=0, unbiased=False).view(n, -1).sum(dim=1)


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with NaN wherever ``den`` is zero (never inf, never a silent 1)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.nan)


def normalised_change(
    change_sq: Tensor, response_var: Tensor, intervention_sq: Tensor, noise_var: Tensor
) -> Tensor:
    r"""Relative response change :math:`e_{I_m,i}` of docs/method.md, for a set of interventions.

    .. math:: e_{I_m, i} = \frac{\mathbb{E}_N[\Delta R_i^2] / \sigma_i'^2}{\mathbb{E}_N[\Delta N_m^2] / \sigma_m^2}

    Args:
        change_sq: ``(n, K, n)`` mean squared response change on ``i`` for the ``k``-th
            intervention on ``m`` (``[m, k, i]``).
        response_var: ``(n,)`` variance of the response (or cause unit) on ``i``.
        intervention_sq: ``(n, K)`` mean squared intervention size :math:`\mathbb{E}[\Delta N_m^2]`.
        noise_var: ``(n,)`` variance of the prior on ``m``.

    Returns:
        ``(n, K, n)``; NaN where a variance or an intervention size is zero.
    """
    rel_change = _safe_ratio(change_sq, response_var[None, None, :])
    rel_size = _safe_ratio(intervention_sq, noise_var[:, None])
    return _safe_ratio(rel_change, rel_size[:, :, None])


def score_from_errors(errors: Tensor) -> Tensor:
    r"""``1 - E_k[errors]``: ``(n, K, n) -> (n, n)``, the INV / EQV matrix ``[m, i]``."""
    return 1.0 - errors.mean(dim=1)


def self_consistency(noise: Tensor, responses: Tensor) -> Tensor:
    r"""One-step self-consistency of docs/method.md: ``(T, n), (T, n) -> (n,)``.

    .. math:: \mathrm{SCN}_i = 1 - \mathbb{E}_N[(R(N)_i - N_i)^2] / \sigma_i^2

    Example:
        >>> import torch
        >>> n = torch.randn(100, 3)
        >>> self_consistency(n, n)
        tensor([1., 1., 1.])
    """
    err = (responses.double() - noise.double()).square().mean(0)
    return (1.0 - _safe_ratio(err, noise.double().var(0, unbiased=False))).to(noise.dtype)


AUTHORS_EPS = 1e-4
"""Added to the mean intervention size in the authors' invariance and equivariance ratios
(``noise_invariance`` / ``noise_equivariance`` of their ``metrics/LatentInvariance.py``)."""

AUTHORS_MMD_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""The seven IMQ kernel scales ``s`` of the authors' MMD, ``C = 2 D s`` (``IMQ_kernel``,
``models/utils.py``)."""


def self_consistency_authors(noise: Tensor, responses: Tensor) -> Tensor:
    r"""The authors' self-consistency (the paper's Table 2): one response step over the
    response's standard deviation, clamped, ``(T, n), (T, n) -> (n,)``.

    .. math:: \mathrm{SCN}_i = \operatorname{clamp}\Big(1 - \frac{\mathbb{E}_t|N_i - R(N)_i|}{\operatorname{std}_t R(N)_i}, 0, 1\Big)

    with the unbiased standard deviation over the samples (``score_SCN_under_perturbation`` →
    ``evaluate_self_consistency(level=1, normalise=True)`` in the authors'
    ``experiments/EvaluationManager.py``). NaN where the response is constant.

    Example:
        >>> import torch
        >>> n = torch.randn(100, 3)
        >>> self_consistency_authors(n, n)
        tensor([1., 1., 1.])
    """
    err = (responses.double() - noise.double()).abs().mean(0)
    score = 1.0 - _safe_ratio(err, responses.double().std(0))
    return score.clamp(0.0, 1.0).to(noise.dtype)


def self_consistency_levels(noise: Tensor, iterates: Sequence[Tensor]) -> Tensor:
    r"""The authors' levelled self-consistency, unnormalised and unclamped: row ``l`` is
    :math:`1 - \mathbb{E}_t|N_i - R^{l+1}(N)_i|` for the ``l``-th iterate, ``(L, n)``
    (``score_model``'s ``SCN`` / ``SCN+`` / ``SCN++`` are levels 1, 5 and 10).

    Args:
        noise: ``(T, n)`` prior samples.
        iterates: ``L`` tensors ``(T, n)``: :math:`R(N), R^2(N), \dots`.
    """
    base = noise.double()
    return torch.stack([1.0 - (r.double() - base).abs().mean(0) for r in iterates]).to(noise.dtype)


def imq_mmd_multiscale(
    x: Tensor, y: Tensor, scales: Sequence[float] = AUTHORS_MMD_SCALES
) -> Tensor:
    r"""The authors' IMQ MMD (the paper's Fig. 8): :func:`imq_mmd` summed over kernel scales
    :math:`C = 2 D s`, ``s`` in ``scales`` (``D`` the width), with no data-dependent scale.

    .. math:: \mathrm{MMD}^2_{\text{multi}} = \sum_s \mathrm{MMD}^2_{k_s}, \qquad k_s(a, b) = \frac{2Ds}{2Ds + \|a - b\|^2}

    The authors' cross term divides by ``P^2``; here each term has its own normaliser (``PQ``),
    which agrees when ``P = Q`` (docs/method.md).

    Example:
        >>> import torch
        >>> x = torch.randn(200, 2)
        >>> bool(imq_mmd_multiscale(x, x + 3) > imq_mmd_multiscale(x, torch.randn(200, 2)))
        True
    """
    d = x.shape[1]
    return torch.stack([imq_mmd(x, y, scale=2.0 * d * float(s)) for s in scales]).sum()


def imq_mmd(x: Tensor, y: Tensor, scale: float | None = None) -> Tensor:
    r"""Unbiased squared MMD between samples ``x (P, n)`` and ``y (Q, n)``, inverse multiquadratic kernel.

    .. math:: k(a, b) = \frac{C}{C + \|a - b\|^2}, \qquad C = 2 n s^2

    with :math:`s^2` the mean per-coordinate variance of ``x`` unless ``scale`` (= C) is given.
    Each within-sample term excludes the diagonal and uses its own normaliser
    (``P(P-1)``, ``Q(Q-1)``, ``PQ``), so unequal sizes are handled correctly.

    Example:
        >>> import torch
        >>> x = torch.randn(200, 2)
        >>> bool(imq_mmd(x, x + 3) > imq_mmd(x, torch.randn(200, 2)))
        True
    """
    x, y = x.double(), y.double()
    p, q = x.shape[0], y.shape[0]
    if p < 2 or q < 2:
        raise InvalidValueError(f"imq_mmd needs at least 2 samples on each side; got {p} and {q}")
    c = scale if scale is not None else 2.0 * x.shape[1] * float(x.var(0).mean())
    if c <= 0:
        return x.new_zeros(())

    def k(a: Tensor, b: Tensor) -> Tensor:
        return c / (c + torch.cdist(a, b).square())

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - kxx.diagonal().sum()) / (p * (p - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (q * (q - 1))
        - 2 * kxy.mean()
    )


def hybridise(bank: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    r"""``k`` hybrid samples from a bank ``(M, n)``: coordinate ``i`` of each from an independent random row.

    .. math:: N_i = \mathrm{bank}[r_i, i], \quad r_i \sim U\{1..M\}
    """
    device = generator.device if generator is not None else bank.device
    rows = torch.randint(bank.shape[0], (k, bank.shape[1]), generator=generator, device=device)
    return bank.gather(0, rows.to(bank.device))


def uniform_box(bank: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    r"""``k`` samples uniform in the bounding box of a bank ``(M, n)``: :math:`N_i \sim U[\min_i, \max_i]`."""
    lo, hi = bank.amin(dim=0), bank.amax(dim=0)
    device = generator.device if generator is not None else bank.device
    u = torch.rand((k, bank.shape[1]), generator=generator, device=device).to(bank)
    return lo + u * (hi - lo)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    r"""Fréchet distance between Gaussians fitted to two feature sets ``(P, d)`` and ``(Q, d)``.

    .. math:: \|\mu_a - \mu_b\|^2 + \mathrm{tr}\,\Sigma_a + \mathrm{tr}\,\Sigma_b - 2\,\mathrm{tr}\sqrt{\Sigma_a\Sigma_b}

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of
    :math:`\Sigma_a\Sigma_b` (real and non-negative for covariance matrices), computed in float64,
    the form torchmetrics uses; no hand-written iterative square root.

    Example:
        >>> import torch
        >>> a = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
        >>> float(frechet_distance(a, a)) < 1e-6
        True
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise InvalidValueError(
            f"features must be (P, d) and (Q, d) with the same d; got {tuple(features_a.shape)} "
            f"and {tuple(features_b.shape)}"
        )
    if features_a.shape[0] < 2 or features_b.shape[0] < 2:
        raise InvalidValueError("frechet_distance needs at least 2 samples on each side")
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    eig = torch.linalg.eigvals(cov_a @ cov_b)
    tr_sqrt = eig.sqrt().real.sum()
    return (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * tr_sqrt


class ScoreSums(NamedTuple):
    """Per-intervention averages over the prior samples, one row per intervention block.

    Attributes:
        change: ``(b, n)`` mean over the samples of the response's change per coordinate
            (squared, or absolute in the ``authors`` convention).
        size: ``(b,)`` mean size of the intervention on its own coordinate (same power).
        eq_change: ``(b, n)`` mean unit-wise distance between the two sides of equivariance
            (``spec``: ``S(Ñ)`` and ``S(I(R(Ñ)))``, squared; ``authors``: ``S(I(R(N)))`` and
            ``S(R(Ñ))``, its root), or ``None`` without an XBlock.
    """

    change: Tensor
    size: Tensor
    eq_change: Tensor | None


def _consistency_update(
    prior: Tensor,
    reference: Tensor,
    intervened: Tensor,
    dims: Tensor,
    values: Tensor,
    convention: str,
    causes: Tensor | None = None,
    causes_back: Tensor | None = None,
) -> ScoreSums:
    r"""One chunk of the score computation: ``b`` intervention blocks of ``T`` samples each.

    .. math:: c_{b,i} = \frac1T\sum_t p\big(R(\tilde N^{b,t})_i - R(N^t)_i\big), \qquad
        s_b = \frac1T\sum_t p\big(N^t_{m_b} - v_b\big)

    with :math:`p(x) = x^2` (``spec``) or :math:`|x|` (``authors``).

    Args:
        prior: ``(T, n)`` prior samples :math:`N`.
        reference: ``(T, n)`` their responses :math:`R(N)`.
        intervened: ``(b * T, n)`` responses :math:`R(\tilde N)`, block after block.
        dims: ``(b,)`` intervened dimension of each block.
        values: ``(b,)`` intervention value of each block.
        convention: ``"spec"`` or ``"authors"``.
        causes, causes_back: ``(b * T, n, u)`` the two sides of equivariance (``spec``:
            :math:`S(\tilde N)` and :math:`S(I(R(\tilde N)))`; ``authors``: :math:`S(I(R(N)))` and
            :math:`S(R(\tilde N))`), or ``None`` without an XBlock.
    """
    t, n = prior.shape
    b = dims.shape[0]
    authors = convention == "authors"

    def power(x: Tensor) -> Tensor:
        return x.abs() if authors else x.square()

    moved = intervened.double().view(b, t, n)
    change = power(moved - reference.double().unsqueeze(0)).mean(1)
    own = prior.double()[:, dims].T  # (b, T): N_{m_b} of every sample
    size = power(own - values.double().unsqueeze(1)).mean(1)
    eq_change = None
    if causes is not None and causes_back is not None:
        dist = (causes.double() - causes_back.double()).square().sum(-1)
        eq_change = (dist.sqrt() if authors else dist).view(b, t, n).mean(1)
    return ScoreSums(change, size, eq_change)


def _consistency_compute(
    sums: ScoreSums,
    n_interventions: int,
    noise_var: Tensor,
    response_var: Tensor,
    cause_var: Tensor | None,
    convention: str,
) -> tuple[Tensor, Tensor | None]:
    r"""INV and EQV ``(n, n)`` from the blocks of every chunk, stacked in ``(m, k)`` order.

    ``spec`` (docs/method.md):

    .. math:: \mathrm{INV}[m, i] = 1 - \mathbb{E}_k\Big[\frac{c_{mk,i} / \sigma_i'^2}{s_{mk} / \sigma_m^2}\Big]

    and EQV likewise over the cause variances. ``authors`` (their ``noise_invariance`` /
    ``noise_equivariance``): absolute changes over the mean absolute intervention size, the
    invariance over the response's standard deviation, the equivariance not normalised:

    .. math:: \mathrm{INV}[m, i] = 1 - \frac{\mathbb{E}_k[c_{mk,i} / (s_{mk} + \epsilon)]}{\operatorname{std} R(N)_i}, \qquad
        \mathrm{EQV}[m, i] = 1 - \mathbb{E}_k[e_{mk,i} / (s_{mk} + \epsilon)]

    Args:
        response_var: ``(n,)`` the response's variance over the prior samples (biased for
            ``spec``; unbiased for ``authors``, whose standard deviation is ``torch.std``).
        cause_var: ``(n,)`` each cause unit's variance (``spec`` only; ``None`` without an
            XBlock).
    """
    n = noise_var.shape[0]
    k = n_interventions
    change = sums.change.view(n, k, n)
    size = sums.size.view(n, k)
    if convention == "authors":
        ratio = change / (size[:, :, None] + AUTHORS_EPS)
        invariance = 1.0 - _safe_ratio(ratio.mean(1), response_var.sqrt()[None, :])
        equivariance = None
        if sums.eq_change is not None:
            eq = sums.eq_change.view(n, k, n) / (size[:, :, None] + AUTHORS_EPS)
            equivariance = 1.0 - eq.mean(1)
        return invariance, equivariance
    invariance = score_from_errors(normalised_change(change, response_var, size, noise_var))
    equivariance = None
    if sums.eq_change is not None and cause_var is not None:
        equivariance = score_from_errors(
            normalised_change(sums.eq_change.view(n, k, n), cause_var, size, noise_var)
        )
    return invariance, equivariance
