"""The one implementation of a hard intervention on noise, and of drawing interventions."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ._checks import check_latents, check_positive_int, is_compiling
from .errors import EmptySamplerError, InvalidTypeError, InvalidValueError, ShapeError
from .sampler import AggregatePosterior

__all__ = ["Interventions", "draw_interventions", "intervene"]


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
    return _apply(noise, dims_t, values_t)


def _apply(noise: Tensor, dims: Tensor, values: Tensor) -> Tensor:
    """:func:`intervene` without its checks, for dimensions and values the library drew itself
    (``dims`` a long ``(B,)`` on the noise's device, ``values`` ``(B,)``): no value is read back
    from the device, so a training step on a GPU does not wait here."""
    mask = torch.arange(noise.shape[1], device=noise.device) == dims[:, None]
    return torch.where(mask, values[:, None].to(noise.dtype), noise)


class Interventions(NamedTuple):
    """A batch of hard interventions on prior samples.

    Attributes:
        source: ``(R,)`` index of the prior sample each row intervenes on.
        dims: ``(R,)`` intervened dimension ``m`` of each row.
        values: ``(R,)`` intervention value ``v`` of each row.
        noise: ``(R, n)`` the intervened noise :math:`\\tilde N = I_{m,v}(N)`.
    """

    source: Tensor
    dims: Tensor
    values: Tensor
    noise: Tensor


def _draw_values(
    bank: AggregatePosterior | Tensor, dims: Tensor, generator: torch.Generator | None
) -> Tensor:
    if isinstance(bank, AggregatePosterior):
        return bank.intervention_values(dims, generator=generator)
    device = generator.device if generator is not None else bank.device
    rows = torch.randint(bank.shape[0], dims.shape, generator=generator, device=device)
    return bank[rows.to(bank.device), dims.to(bank.device)]


def draw_interventions(
    prior: Tensor,
    value_source: AggregatePosterior | Tensor,
    *,
    dims: Literal["random", "all"] | Tensor = "random",
    n_interventions: int = 1,
    generator: torch.Generator | None = None,
    check_values: bool = True,
) -> Interventions:
    r"""Draw hard interventions :math:`I_{m,v}`, :math:`v \sim Q(N_m)`, on prior samples ``(T, n)``.

    Args:
        prior: ``(T, n)`` prior samples (constants: they are detached).
        value_source: the aggregate posterior the values come from: a sampler, or a bank
            ``(M, n)`` of means.
        dims: ``"random"``: one dimension per sample; ``"all"``: every dimension for every
            sample; or a LongTensor ``(D,)`` of dimensions applied to every sample.
        n_interventions: values per (sample, dimension).
        generator: random generator for the dimensions and values.
        check_values: raise :class:`~consistency.errors.NonFiniteError` for NaN/inf prior
            samples. The check reads a value back from the device (a GPU step waits for it);
            the losses pass ``False`` for prior samples made from latents they checked. The
            dimensions and values drawn here are never checked again.

    Returns:
        :class:`Interventions` with ``R = T * D * n_interventions`` rows, grouped by sample.
    """
    prior = check_latents(prior, "prior", finite=check_values).detach()
    k = check_positive_int(n_interventions, "n_interventions")
    if isinstance(value_source, AggregatePosterior):
        width = value_source.dim
    elif isinstance(value_source, Tensor):
        check_latents(value_source, "value_source", finite=False)
        if value_source.shape[0] == 0:
            raise EmptySamplerError(
                "value_source: the bank (M, n) is empty (M = 0); nothing to draw"
            )
        width = value_source.shape[1]
    else:
        raise InvalidTypeError(
            "value_source must be an AggregatePosterior or a tensor (M, n); "
            f"got {type(value_source).__name__}"
        )
    if width != prior.shape[1]:
        raise ShapeError(
            f"axis 1 (latent width n) of prior is {prior.shape[1]} but value_source has n = {width}"
        )
    t, n = prior.shape
    device = prior.device
    gen_device = generator.device if generator is not None else device
    if isinstance(dims, str):
        if dims == "random":
            per_sample = torch.randint(n, (t, 1), generator=generator, device=gen_device).to(device)
        elif dims == "all":
            per_sample = torch.arange(n, device=device).expand(t, n)
        else:
            raise InvalidValueError(f'dims must be "random", "all" or a LongTensor; got {dims!r}')
    else:
        per_sample = dims.to(device=device, dtype=torch.long).expand(t, -1)
    d = per_sample.shape[1]
    dims_flat = per_sample.repeat_interleave(k, dim=1).reshape(-1)  # (T*D*K,)
    source = torch.arange(t, device=device).repeat_interleave(d * k)
    values = _draw_values(value_source, dims_flat, generator).to(device=device, dtype=prior.dtype)
    return Interventions(source, dims_flat, values, _apply(prior[source], dims_flat, values))
