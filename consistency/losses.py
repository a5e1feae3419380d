"""Consistency regularisers: invariance (Algorithm 1) and equivariance (Algorithm 2) losses."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int
from .encoding import posterior_mean
from .errors import InvalidTypeError, InvalidValueError, ShapeError
from .functional import (
    equivariance_penalty,
    hybridise,
    invariance_penalty,
    uniform_box,
    unit_variance,
)
from .handle import ResponseModel, as_response_model
from .intervention import intervene
from .response import Decoder, Encoder, Interventions, draw_interventions
from .sampler import AggregatePosterior, _check_mode
from .xblock import XBlock

__all__ = ["EquivarianceLoss", "InvarianceLoss"]

Dims = Literal["random", "all"]
ValuesFrom = Literal["sampler", "batch"]
Normalise = Literal["prior", "response"]
Reference = Literal["response", "prior"]


class _ConsistencyLoss(nn.Module):
    """Shared configuration and input checks; subclasses implement :meth:`_compute`.

    The encoder, decoder and sampler are *referenced*, not registered: the loss has no
    parameters or buffers of its own, ``loss.to(...)`` does not move the user's model, and
    ``loss.state_dict()`` is empty.
    """

    def __init__(
        self,
        encoder: Encoder | ResponseModel,
        generate: Decoder | AggregatePosterior | None = None,
        sampler: AggregatePosterior | None = None,
        *,
        decoder: Decoder | None = None,
        xblock: XBlock | None = None,
        dims: Dims = "random",
        n_interventions: int = 1,
        prior: str = "posterior",
        n_samples: int | None = None,
        stop_reference: bool = True,
        weight: float = 1.0,
        normalise: Normalise | None = "prior",
        values_from: ValuesFrom = "batch",
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
        reference: Reference = "response",
    ) -> None:
        super().__init__()
        if reference not in ("response", "prior"):
            raise InvalidValueError(f'reference must be "response" or "prior"; got {reference!r}')
        self.reference: Reference = reference
        if normalise not in ("prior", "response", None):
            raise InvalidValueError(
                f'normalise must be "prior", "response" or None; got {normalise!r}'
            )
        if dims not in ("random", "all"):
            raise InvalidValueError(f'dims must be "random" or "all"; got {dims!r}')
        if values_from not in ("sampler", "batch"):
            raise InvalidValueError(
                f'values_from must be "sampler" or "batch"; got {values_from!r}'
            )
        handle, sampler = as_response_model(
            encoder,
            generate,
            sampler,
            xblock=xblock,
            model=None,
            max_batch=max_batch,
            decoder=decoder,
            owner=type(self).__name__,
        )
        if sampler is not None and not isinstance(sampler, AggregatePosterior):
            raise InvalidTypeError(
                f"sampler must be an AggregatePosterior or None; got {type(sampler).__name__}"
            )
        self._refs = (handle, sampler)
        self.dims: Dims = dims
        self.n_interventions = check_positive_int(n_interventions, "n_interventions")
        self.prior = _check_mode(prior)
        self.n_samples = None if n_samples is None else check_positive_int(n_samples, "n_samples")
        self.stop_reference = bool(stop_reference)
        self.weight = float(weight)
        self.normalise: Normalise | None = normalise
        self.values_from: ValuesFrom = values_from
        self.generator = generator

    @property
    def model(self) -> ResponseModel:
        """The :class:`~consistency.ResponseModel` the loss works on."""
        return self._refs[0]

    @property
    def encoder(self) -> Encoder:
        return self._refs[0].encode_fn

    @property
    def generate(self) -> Decoder:
        """The generative map noise -> images (XBlock included)."""
        return self._refs[0].generate_fn

    @property
    def decoder(self) -> Decoder:
        """Deprecated name of :attr:`generate`."""
        return self._refs[0].generate_fn

    @property
    def sampler(self) -> AggregatePosterior | None:
        return self._refs[1]

    @property
    def xblock(self) -> XBlock | None:
        return self._refs[0].xblock

    @property
    def max_batch(self) -> int | None:
        """Largest batch sent through the networks at once (the handle's)."""
        return self._refs[0].max_batch

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims!r}, n_interventions={self.n_interventions}, prior={self.prior!r}, "
            f"stop_reference={self.stop_reference}, weight={self.weight}, "
            f"normalise={self.normalise!r}, values_from={self.values_from!r}, "
            f"reference={self.reference!r}"
        )

    def _response(self, noise: Tensor) -> Tensor:
        return self._refs[0].respond(noise)

    def _prior_samples(self, latents: Tensor | None) -> tuple[Tensor, AggregatePosterior | Tensor]:
        """Prior samples ``(T, n)`` and where intervention values come from."""
        sampler = self.sampler
        if latents is not None:
            latents = check_latents(latents, "latents", None if sampler is None else sampler.dim)
            latents = latents.detach()
            source: AggregatePosterior | Tensor = latents
            if self.values_from == "sampler" and sampler is not None and len(sampler) > 0:
                source = sampler
            if self.prior == "hybrid":
                return hybridise(latents, latents.shape[0], self.generator), source
            if self.prior == "uniform":
                return uniform_box(latents, latents.shape[0], self.generator), source
            return latents, source
        if sampler is None:
            raise InvalidValueError(
                "no latents were given and the loss has no sampler to draw prior samples from"
            )
        k = self.n_samples if self.n_samples is not None else min(len(sampler), 128) or 1
        return sampler.sample(k, self.prior, generator=self.generator), sampler

    def _interventions(
        self, prior: Tensor, values_from: AggregatePosterior | Tensor
    ) -> Interventions:
        n = prior.shape[1]
        if n < 2:
            raise ShapeError(
                f"consistency losses need n >= 2 latent dimensions (an off-target dimension); got n = {n}"
            )
        return draw_interventions(
            prior,
            values_from,
            dims=self.dims,
            n_interventions=self.n_interventions,
            generator=self.generator,
        )

    def forward(self, latents: Tensor | None = None, *, responses: Tensor | None = None) -> Tensor:
        """The weighted loss, a scalar.

        Args:
            latents: ``(B, n)`` the current batch's posterior means (detached here). They are the
                prior samples when ``prior="posterior"``; with ``"hybrid"`` / ``"uniform"`` the
                prior samples are ``B`` hybrids of them / uniform draws in their bounding box.
                ``None``: draw ``n_samples`` from the sampler in mode ``prior``.
            responses: :math:`R` of ``latents`` already computed by the caller,
                ``encoder(x_hat)`` with ``x_hat = decoder(latents)`` the batch's reconstruction
                *from the means* (for a VAE trained on sampled codes, that is not the training
                reconstruction); any encoder output :func:`~consistency.posterior_mean` reads.
                Saves one decode+encode.
        """
        prior, values_from = self._prior_samples(latents)
        if responses is not None:
            responses = posterior_mean(responses)
            if latents is None:
                raise InvalidValueError(
                    "responses= needs the latents they respond to; pass latents too"
                )
            if self.prior != "posterior":
                raise InvalidValueError(
                    f"responses= are the responses to the latents themselves, but with "
                    f"prior={self.prior!r} the prior samples are {self.prior} draws made from the "
                    "latents, whose responses the loss computes: do not pass responses="
                )
            if tuple(responses.shape) != tuple(prior.shape):
                raise ShapeError(
                    f"responses must have the latents' shape {tuple(prior.shape)}; got {tuple(responses.shape)}"
                )
        if self.normalise is not None and prior.shape[0] < 2:
            raise InvalidValueError(
                f"normalise={self.normalise!r} divides by variances over the prior samples, which "
                f"needs at least 2 of them; got {prior.shape[0]} (pass more latents, or "
                "normalise=None)"
            )
        if latents is not None and self.n_samples is not None and self.n_samples < prior.shape[0]:
            # an unbiased subset of the batch as prior samples: cheaper, same expectation
            device = self.generator.device if self.generator is not None else prior.device
            keep = torch.randperm(prior.shape[0], generator=self.generator, device=device)
            keep = keep[: self.n_samples].to(prior.device)
            prior = prior[keep]
            responses = None if responses is None else responses[keep]
        return self.weight * self._compute(prior, values_from, responses)

    def _compute(
        self, prior: Tensor, values_from: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        raise NotImplementedError


class InvarianceLoss(_ConsistencyLoss):
    r"""Invariance regulariser (Algorithm 1): interventions on ``m`` must not move the response on ``i != m``.

    .. math:: L_{INV} = \mathbb{E}_k \frac{1}{n}\sum_{i \ne m_k}\big(R(\tilde N^k)_i - R(N^k)_i\big)^2

    Configured once, called in the training loop. All interventions of a call go through the
    networks as one batch (chunked only when ``max_batch`` is set). Gradients flow into the
    encoder, decoder (and XBlock) parameters, never into the prior samples.

    Args:
        encoder: images -> posterior (tensor, ``(mean, logvar)``, distribution, ...).
        generate: noise ``(B, n)`` -> images; the whole generative map (XBlock included).
            ``decoder=`` is a deprecated keyword for it.
        sampler: the aggregate posterior: prior samples are drawn from it when no latents are
            passed (intervention values too, then); see ``values_from`` otherwise.
        dims: ``"random"`` (one dimension per sample, an unbiased estimate) or ``"all"``
            (every dimension for every sample: Algorithm 1 exactly).
        n_interventions: values per (sample, dimension).
        prior: sampling mode of the prior samples: from the sampler, or made from the given
            ``latents`` (``"hybrid"``: each coordinate from a random row of the batch; ``"uniform"``:
            uniform in the batch's bounding box). Off-posterior prior samples train consistency
            where the self-consistency scores under hybrid and uniform sampling measure it.
        n_samples: how many prior samples to draw from the sampler (default
            ``min(len(sampler), 128)``); with ``latents``, a random subset of this many rows of the
            batch is used (an unbiased, cheaper estimate; default: every row).
        stop_reference: treat :math:`R(N)` as a fixed target (no gradient), as the authors did
            (default). With gradients through both responses the loss can also move
            :math:`R(N)` towards :math:`R(\tilde N)`, and the cheapest way to make them agree is
            a response that ignores its input: self-consistency collapses (docs/method.md).
        reference: what :math:`R(\tilde N)_i` is compared with: ``"response"`` (default):
            :math:`R(N)_i`, Algorithm 1 as written; ``"prior"``: the prior sample's own
            coordinate :math:`N_i`. The second asks for invariance *and* self-consistency on
            the untouched coordinates, costs one pass through the networks less, and gives the
            encoder no response of its own to shrink towards; it is what the library's paper
            models train with (docs/method.md, "Deviations").
        weight: multiplies the loss (the paper's :math:`\lambda = 4`).
        normalise: divide each coordinate's squared change by a variance over the prior samples
            (detached): ``"prior"`` (default): the prior's own, :math:`\sigma_i^2`;
            ``"response"``: the response's, :math:`\sigma_i'^2` (the score's denominator). Either
            makes the loss unchanged by rescaling the latent space, so a model cannot lower it by
            shrinking its latents. ``"response"`` is unstable in training: a response coordinate
            that shrinks gets a larger weight, which shrinks it further (docs/method.md).
            ``None``: raw latent units, as Algorithm 1 is written.
        values_from: with ``latents`` given, where intervention values :math:`v \sim Q(N_m)`
            come from: ``"batch"`` (default): the batch's own means, the current encoder's
            aggregate posterior; ``"sampler"``: the sampler's bank (a ring buffer that, during
            training, holds means from earlier steps; the batch is used while it is empty).
        max_batch: largest batch sent through the networks at once.
        generator: random generator for dimensions and values.

    Example:
        >>> import torch
        >>> enc, dec = torch.nn.Linear(4, 2), torch.nn.Linear(2, 4)
        >>> loss_fn = InvarianceLoss(enc, dec, sampler=None)
        >>> loss = loss_fn(enc(torch.randn(8, 4)))
        >>> loss.shape, bool(loss >= 0)
        (torch.Size([]), True)
    """

    def _compute(
        self, prior: Tensor, values_from: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        iv = self._interventions(prior, values_from)
        if self.reference == "prior":
            responses = prior
        elif responses is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.stop_reference):
                responses = self._response(prior)
        elif self.stop_reference:
            responses = responses.detach()
        intervened = self._response(iv.noise)
        n = prior.shape[1]
        scale = (
            None
            if self.normalise is None
            else unit_variance(prior if self.normalise == "prior" else responses, n)
        )
        return invariance_penalty(responses[iv.source], intervened, iv.dims, scale)


class EquivarianceLoss(_ConsistencyLoss):
    r"""Equivariance regulariser (Algorithm 2): intervening before or after the response agrees.

    With :math:`\tilde N = I_{m,v}(N)`, :math:`\tilde N' = R(\tilde N)` and
    :math:`\check N' = I_{m,v}(\tilde N')`:

    .. math:: L_{EQV} = \mathbb{E}_k \frac{1}{n}\sum_{i=1}^n \big\|S(\tilde N^k)_i - S(\check N'^k)_i\big\|^2

    in cause space (unit-wise norms) when ``xblock`` is given, in noise space (``S = id``) when
    not. Both sides run through the *same* XBlock gate draw. It never needs :math:`R(N)`, so
    ``responses=`` is accepted for a uniform call signature and ignored; a call costs one
    decode+encode of the intervened samples.

    Args:
        xblock: the model's XBlock ``S`` (``generate`` still maps noise to images through it; a ``generate`` that
            skips it gets a warning).
        stop_reference: treat :math:`S(\tilde N)` as a fixed target (no gradient).
        normalise: divide each unit's squared distance by a variance of cause unit ``i``
            (detached): ``"prior"`` (default): of :math:`S(N)` over the prior samples;
            ``"response"``: of :math:`S(\tilde N)` over the intervened rows. Without an XBlock,
            the causes are the noise.
        others: as :class:`InvarianceLoss`.

    Example:
        >>> import torch
        >>> from consistency import XBlock
        >>> enc, block, dec = torch.nn.Linear(4, 3), XBlock(3, 2), torch.nn.Linear(6, 4)
        >>> loss_fn = EquivarianceLoss(enc, lambda n: dec(block(n)), None, xblock=block)
        >>> bool(loss_fn(enc(torch.randn(8, 4))) >= 0)
        True
    """

    def __init__(
        self,
        encoder: Encoder | ResponseModel,
        generate: Decoder | AggregatePosterior | None = None,
        sampler: AggregatePosterior | None = None,
        *,
        decoder: Decoder | None = None,
        xblock: XBlock | None = None,
        dims: Dims = "random",
        n_interventions: int = 1,
        prior: str = "posterior",
        n_samples: int | None = None,
        stop_reference: bool = False,
        weight: float = 1.0,
        normalise: Normalise | None = "prior",
        values_from: ValuesFrom = "batch",
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            encoder,
            generate,
            sampler,
            decoder=decoder,
            xblock=xblock,
            dims=dims,
            n_interventions=n_interventions,
            prior=prior,
            n_samples=n_samples,
            stop_reference=stop_reference,
            weight=weight,
            normalise=normalise,
            values_from=values_from,
            max_batch=max_batch,
            generator=generator,
        )

    def _compute(
        self, prior: Tensor, values_from: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        iv = self._interventions(prior, values_from)
        xblock = self.xblock
        if xblock is not None and xblock.n != prior.shape[1]:
            raise ShapeError(
                f"xblock has n = {xblock.n} units but the latents have width {prior.shape[1]}"
            )
        back = intervene(self._response(iv.noise), iv.dims, iv.values)
        if xblock is None:
            target, moved = iv.noise, back
        else:
            gates = xblock.sample_gates(back.shape[0], back.device)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.stop_reference):
                target = xblock(iv.noise, gates=gates)
            moved = xblock(back, gates=gates)
        n = prior.shape[1]
        scale = None
        if self.normalise == "response":
            scale = unit_variance(target, n)
        elif self.normalise == "prior":
            if xblock is None:
                scale = unit_variance(prior, n)
            else:
                with torch.no_grad():
                    scale = unit_variance(xblock(prior), n)
        return equivariance_penalty(target, moved, n, scale)
