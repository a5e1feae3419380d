"""The one implementation of a hard intervention on noise."""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_latents, is_compiling
from .errors import InvalidTypeError, ShapeError

__all__ = ["intervene"]


def intervene(noise: Tensor, dims: Tensor | int, values: Tensor | float) -> Tensor:
    r"""Hard intervention :math:`I_{m,v}` on noise: a copy of ``noise`` with ``noise[b, dims[b]] = values[b]``.

    .. math:: \tilde N = N,\quad \tilde N_{m} = v

    Every loss and score of the library intervenes through this function. It is differentiable
    in ``noise`` and ``values``, has no data-dependent branch (so ``torch.compile`` traces it),
    and never modifies its inputs.

    Args:
        noise: ``(B, n)`` latent noise.
        dims: the intervened dimension, an int for all rows or a LongTensor ``(B,)``.
        values: the new values, a float, a 0-d tensor or a tensor ``(B,)``.

    Returns:
        ``(B, n)``, same dtype and device as ``noise``.

    Example:
        >>> import torch
        >>> intervene(torch.zeros(2, 3), torch.tensor([0, 2]), torch.tensor([5.0, 7.0]))
        tensor([[5., 0., 0.],
                [0., 0., 7.]])
    """
    check_latents(noise, "noise", finite=False)
    batch, n = noise.shape
    if isinstance(dims, int):
        if not -n <= dims < n:
            raise ShapeError(f"dims={dims} is out of range for noise with n={n} dimensions")
        dims_t = torch.full((batch,), dims % n, dtype=torch.long, device=noise.device)
    else:
        if not isinstance(dims, Tensor) or dims.dtype not in (torch.int64, torch.int32):
            raise InvalidTypeError(f"dims must be an int or an integer tensor (B,); got {dims!r}")
        if dims.ndim != 1 or dims.shape[0] != batch:
            raise ShapeError(
                f"dims must have shape (B,) = ({batch},) to match noise; got {tuple(dims.shape)}"
            )
        if not is_compiling() and dims.numel() > 0 and (dims.min() < 0 or dims.max() >= n):
            raise ShapeError(
                f"dims must lie in [0, {n}) for noise with n={n}; got values in "
                f"[{int(dims.min())}, {int(dims.max())}]"
            )
        dims_t = dims.to(device=noise.device, dtype=torch.long)
    values_t = torch.as_tensor(values, dtype=noise.dtype, device=noise.device)
    if values_t.ndim == 0:
        values_t = values_t.expand(batch)
    if values_t.shape != (batch,):
        raise ShapeError(
            f"values must be a scalar or have shape (B,) = ({batch},); got {tuple(values_t.shape)}"
        )
    mask = torch.arange(n, device=noise.device) == dims_t[:, None]
    return torch.where(mask, values_t[:, None].to(noise.dtype), noise)
