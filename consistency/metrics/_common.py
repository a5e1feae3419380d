"""What the ground-truth metrics share: input checks, discretisation (``disentanglement_lib``'s
binning: ``np.histogram`` edges, ``np.digitize``) and batched encoding.

Factors may be integer class indices or real values. Where a metric needs discrete factors,
``factor_bins=None`` uses each distinct value as a class and an int bins each factor into that
many equal-width bins between its minimum and maximum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._checks import check_latents, check_positive_int
from ..encoding import posterior_mean
from ..errors import InvalidTypeError, InvalidValueError, ShapeError


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


def _split(
    codes: Tensor,
    factors: Tensor,
    test_codes: Tensor | None,
    test_factors: Tensor | None,
    test_fraction: float,
    seed: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(z_train, g_train, z_test, g_test)``: the explicit test split (checked), or a seeded
    random ``test_fraction`` of the data held out."""
    if (test_codes is None) != (test_factors is None):
        raise InvalidValueError("give both test_codes and test_factors, or neither")
    if test_codes is None or test_factors is None:
        if not 0.0 < test_fraction < 1.0:
            raise InvalidValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
        total = codes.shape[0]
        n_test = max(1, round(total * test_fraction))
        if total - n_test < 2:
            raise InvalidValueError(f"too few samples ({total}) to hold out {test_fraction:.0%}")
        perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
        perm = perm.to(codes.device)
        tr, te = perm[n_test:], perm[:n_test]
        return codes[tr], factors[tr], codes[te], factors[te]
    z_te, g_te = _check_pair(test_codes, test_factors, min_rows=1)
    if z_te.shape[1] != codes.shape[1] or g_te.shape[1] != factors.shape[1]:
        raise ShapeError(
            f"test split must have the training widths (n, F) = ({codes.shape[1]}, "
            f"{factors.shape[1]}); got {tuple(z_te.shape)} and {tuple(g_te.shape)}"
        )
    return codes, factors, z_te.to(codes.device), g_te.to(codes.device)


def _sklearn(what: str) -> None:
    """Raise a clear ImportError when scikit-learn is missing."""
    try:
        import sklearn  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs scikit-learn: pip install scikit-learn") from err


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


@torch.no_grad()
def encode_all(
    encoder: Callable[[Tensor], Any],
    images: Tensor,
    *,
    max_batch: int = 512,
    device: torch.device | str | None = None,
) -> Tensor:
    """Encoder means ``(N, n)`` of ``images`` ``(N, ...)``, in batches, without gradients.

    The encoder runs where its inputs are sent (``device``; default: where ``images`` are); the
    codes come back on that device. The encoder's train/eval mode is left as it is (call
    ``model.eval()`` first if BatchNorm or dropout should be in evaluation mode).
    """
    check_positive_int(max_batch, "max_batch")
    if not isinstance(images, Tensor) or images.ndim < 2 or images.shape[0] == 0:
        raise InvalidValueError(
            "images must be a non-empty tensor (N, ...); got "
            + (str(tuple(images.shape)) if isinstance(images, Tensor) else type(images).__name__)
        )
    dev = torch.device(device) if device is not None else images.device
    return torch.cat([posterior_mean(encoder(chunk.to(dev))) for chunk in images.split(max_batch)])
