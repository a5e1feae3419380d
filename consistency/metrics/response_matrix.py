"""The latent response matrix and its variant conditioned on traversals of the true factors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from .._checks import check_latents, check_positive_int
from ..errors import InvalidTypeError, InvalidValueError
from ..intervention import intervene
from ..response import response
from ._common import encode_all


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
        z = encode_all(encoder, images, max_batch=max_batch or images.shape[0], device=dev)
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
