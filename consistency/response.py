"""The one implementation of the response map R = E∘G and of drawing interventions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from ._checks import check_latents, check_positive_int
from .encoding import posterior_mean
from .errors import EmptySamplerError, InvalidTypeError, InvalidValueError, ShapeError
from .intervention import intervene
from .sampler import AggregatePosterior

__all__ = ["Interventions", "draw_interventions", "response"]

Encoder = Callable[[Tensor], Any]
Decoder = Callable[[Tensor], Tensor]


def _call(fn: Callable[[Tensor], Any], x: Tensor, what: str, hint: str) -> Any:
    try:
        return fn(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        raise ShapeError(
            f"the {what} failed on input of shape {tuple(x.shape)} ({hint}): {err}"
        ) from err


def response(
    encoder: Encoder, generate: Decoder, noise: Tensor, *, max_batch: int | None = None
) -> Tensor:
    r"""The response map :math:`R(N) = \mathbb{E}[E(G(N))]`, noise to noise.

    .. math:: R = E \circ G, \qquad G = D \circ S

    ``generate`` is the whole generative map from noise to images (for a model with an XBlock,
    ``model.generate`` or ``lambda n: model.decoder(model.latent(n))``, not the decoder alone);
    the encoder's output goes through
    :func:`~consistency.posterior_mean`, so stochastic encoders contribute their mean.

    Args:
        encoder: images ``(B, *x)`` -> posterior (anything ``posterior_mean`` reads) of width n.
        generate: noise ``(B, n)`` -> images ``(B, *x)``.
        noise: ``(B, n)``.
        max_batch: run the networks in chunks of at most this many rows (``None``: one batch).

    Returns:
        ``(B, n)`` responses (dtype as the encoder returns it).

    Raises:
        ShapeError: the decoder rejects ``noise``, the encoder rejects the decoder's output, or
            the encoder's mean is not ``(B, n)``.

    Example:
        >>> import torch
        >>> scale = torch.tensor([2.0, 3.0])
        >>> response(lambda x: x / scale, lambda n: n * scale, torch.ones(4, 2))
        tensor([[1., 1.],
                [1., 1.],
                [1., 1.],
                [1., 1.]])
    """
    check_latents(noise, "noise", finite=False)
    if max_batch is not None and noise.shape[0] > check_positive_int(max_batch, "max_batch"):
        return torch.cat(
            [response(encoder, generate, chunk) for chunk in noise.split(max_batch)], dim=0
        )
    n = noise.shape[1]
    images = _call(generate, noise, "decoder", f"expected noise of width n = {n}")
    if not isinstance(images, Tensor):
        raise InvalidTypeError(f"the decoder must return a Tensor; got {type(images).__name__}")
    out = posterior_mean(
        _call(encoder, images, "encoder", f"the decoder's output, from noise {tuple(noise.shape)}")
    )
    if out.shape != noise.shape:
        raise ShapeError(
            f"the response E(D(noise)) must have the noise's shape (B, n) = {tuple(noise.shape)}; "
            f"the encoder returned a mean of shape {tuple(out.shape)} for the decoder's output "
            f"of shape {tuple(images.shape)}"
        )
    return out


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


def _values_from(
    bank: AggregatePosterior | Tensor, dims: Tensor, generator: torch.Generator | None
) -> Tensor:
    if isinstance(bank, AggregatePosterior):
        return bank.intervention_values(dims, generator=generator)
    device = generator.device if generator is not None else bank.device
    rows = torch.randint(bank.shape[0], dims.shape, generator=generator, device=device)
    return bank[rows.to(bank.device), dims.to(bank.device)]


def draw_interventions(
    prior: Tensor,
    values_from: AggregatePosterior | Tensor,
    *,
    dims: Literal["random", "all"] | Tensor = "random",
    n_interventions: int = 1,
    generator: torch.Generator | None = None,
) -> Interventions:
    r"""Draw hard interventions :math:`I_{m,v}`, :math:`v \sim Q(N_m)`, on prior samples ``(T, n)``.

    Args:
        prior: ``(T, n)`` prior samples (constants: they are detached).
        values_from: the aggregate posterior the values come from: a sampler, or a bank ``(M, n)``.
        dims: ``"random"``: one dimension per sample; ``"all"``: every dimension for every
            sample; or a LongTensor ``(D,)`` of dimensions applied to every sample.
        n_interventions: values per (sample, dimension).

    Returns:
        :class:`Interventions` with ``R = T * D * n_interventions`` rows, grouped by sample.
    """
    prior = check_latents(prior, "prior").detach()
    k = check_positive_int(n_interventions, "n_interventions")
    if isinstance(values_from, AggregatePosterior):
        width = values_from.dim
    elif isinstance(values_from, Tensor):
        check_latents(values_from, "values_from", finite=False)
        if values_from.shape[0] == 0:
            raise EmptySamplerError(
                "values_from: the bank (M, n) is empty (M = 0); nothing to draw"
            )
        width = values_from.shape[1]
    else:
        raise InvalidTypeError(
            "values_from must be an AggregatePosterior or a tensor (M, n); "
            f"got {type(values_from).__name__}"
        )
    if width != prior.shape[1]:
        raise ShapeError(
            f"axis 1 (latent width n) of prior is {prior.shape[1]} but values_from has n = {width}"
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
    values = _values_from(values_from, dims_flat, generator).to(device=device, dtype=prior.dtype)
    return Interventions(source, dims_flat, values, intervene(prior[source], dims_flat, values))
