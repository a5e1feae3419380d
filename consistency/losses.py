"""Consistency regularisers: invariance (Algorithm 1) and equivariance (Algorithm 2) losses."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn

from ._checks import (
    check_latents,
    check_positive_int,
    check_weight,
    is_compiling,
    user_stacklevel,
)
from .encoding import posterior_mean
from .errors import InvalidTypeError, InvalidValueError, ShapeError
from .functional import (
    equivariance_penalty,
    hybridise,
    invariance_penalty,
    uniform_box,
    unit_variance,
)
from .intervention import Interventions, _apply, draw_interventions
from .module_state import DataStatistics
from .recipe import (
    FAITHFUL,
    RECIPE,
    BatchNormHandling,
    InterventionValues,
    Normalise,
    Reference,
    check_choice,
)
from .response import ResponseModel
from .sampler import SAMPLING_MODES, AggregatePosterior, SamplingMode
from .xblock import XBlock

__all__ = ["EquivarianceLoss", "InvarianceLoss"]

Dims = Literal["random", "all"]
LossT = TypeVar("LossT", bound="_ConsistencyLoss")


class _ConsistencyLoss(nn.Module):
    """Shared configuration and input checks; subclasses implement :meth:`_compute`.

    The model and sampler are *referenced*, not registered: the loss has no parameters or
    buffers of its own, ``loss.to(...)`` does not move the user's model, and
    ``loss.state_dict()`` is empty. Building a loss runs nothing.
    """

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        sampler: AggregatePosterior | None = None,
        *,
        weight: float = RECIPE.weight,
        every: int = RECIPE.every,
        sampling: SamplingMode = RECIPE.sampling,
        n_samples: int | None = RECIPE.n_samples,
        normalise: Normalise | None = RECIPE.normalise,
        stop_reference: bool = RECIPE.stop_reference,
        intervention_values: InterventionValues = RECIPE.intervention_values,
        batchnorm: BatchNormHandling = RECIPE.batchnorm,
        dims: Dims = "random",
        n_interventions: int = 1,
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if sampler is not None and not isinstance(sampler, AggregatePosterior):
            hint = (
                " (the model goes first as one object: pass the module, or "
                "ResponseModel(encoder, generate))"
                if callable(sampler)
                else ""
            )
            raise InvalidTypeError(
                f"{owner}: sampler must be an AggregatePosterior or None; "
                f"got {type(sampler).__name__}{hint}"
            )
        handle = ResponseModel.of(model, max_batch=max_batch, owner=owner)
        self._refs = (handle, sampler)
        self.sampling: SamplingMode = check_choice("sampling", sampling, SAMPLING_MODES)
        self.normalise: Normalise | None = check_choice(
            "normalise", normalise, ("noise", "response", None)
        )
        self.intervention_values: InterventionValues = check_choice(
            "intervention_values", intervention_values, ("batch", "sampler")
        )
        self.batchnorm: BatchNormHandling = check_choice(
            "batchnorm", batchnorm, ("data", "running", "batch", "update")
        )
        self.dims: Dims = check_choice("dims", dims, ("random", "all"))
        self.n_interventions = check_positive_int(n_interventions, "n_interventions")
        self.n_samples = None if n_samples is None else check_positive_int(n_samples, "n_samples")
        self.stop_reference = bool(stop_reference)
        self.weight = check_weight(weight, "weight")
        self.every = check_positive_int(every, "every")
        self._phase = 0  # training calls since the last computed one, modulo every
        self.generator = generator
        self._data_statistics: DataStatistics | None = None
        if self.batchnorm == "data":  # last, once every argument is checked: a refused
            # construction leaves no hook behind on the user's model
            stats = DataStatistics(*handle.modules)
            self._data_statistics = stats if stats.layers else None

    @classmethod
    def faithful(
        cls: type[LossT],
        model: nn.Module | ResponseModel,
        sampler: AggregatePosterior | None = None,
        **overrides: Any,
    ) -> LossT:
        """The loss as the paper's algorithm and the authors' code wrote it
        (:data:`consistency.recipe.FAITHFUL`: posterior prior samples, every row of the batch,
        raw units, values from the sampler's bank, BatchNorm in plain training mode);
        ``overrides`` change any argument."""
        kw = FAITHFUL.loss_kwargs(invariance=cls is not EquivarianceLoss)
        return cls(model, sampler, **{**kw, **overrides})

    @property
    def phase(self) -> int:
        """Training calls since the last computed one, modulo ``every`` (0: the next training
        call computes the loss). A loop that resumes at step ``s`` sets ``loss.phase = s % every``
        so that the computed calls continue where they were (:func:`consistency.train.train`
        does)."""
        return self._phase

    @phase.setter
    def phase(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.every:
            raise InvalidValueError(
                f"phase must be an int in [0, every) = [0, {self.every}); got {value!r}"
            )
        self._phase = value

    @property
    def model(self) -> ResponseModel:
        """The :class:`~consistency.ResponseModel` the loss works on."""
        return self._refs[0]

    @property
    def sampler(self) -> AggregatePosterior | None:
        return self._refs[1]

    @property
    def xblock(self) -> XBlock | None:
        return self._refs[0].xblock

    @property
    def max_batch(self) -> int | None:
        """Largest batch sent through the networks at once (the model's)."""
        return self._refs[0].max_batch

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, every={self.every}, sampling={self.sampling!r}, "
            f"n_samples={self.n_samples}, "
            f"normalise={self.normalise!r}, stop_reference={self.stop_reference}, "
            f"intervention_values={self.intervention_values!r}, batchnorm={self.batchnorm!r}, "
            f"dims={self.dims!r}, n_interventions={self.n_interventions}"
        )

    def _response(self, noise: Tensor) -> Tensor:
        return self._refs[0].respond(noise)

    def _prior_samples(self, latents: Tensor | None) -> tuple[Tensor, AggregatePosterior | Tensor]:
        """Prior samples ``(T, n)`` and where intervention values come from."""
        sampler = self.sampler
        if latents is not None:
            latents = check_latents(latents, "latents", None if sampler is None else sampler.dim)
            latents = latents.detach()
            value_source: AggregatePosterior | Tensor = latents
            if self.intervention_values == "sampler" and sampler is not None and len(sampler) > 0:
                value_source = sampler
            if self.sampling == "hybrid":
                return hybridise(latents, latents.shape[0], self.generator), value_source
            if self.sampling == "uniform":
                return uniform_box(latents, latents.shape[0], self.generator), value_source
            return latents, value_source
        if sampler is None:
            raise InvalidValueError(
                "no latents were given and the loss has no sampler to draw prior samples from: "
                "call loss(latents) with the batch's encoder means, or build it with a sampler"
            )
        k = self.n_samples if self.n_samples is not None else min(len(sampler), 128) or 1
        return sampler.sample(k, self.sampling, generator=self.generator), sampler

    def _interventions(
        self, prior: Tensor, value_source: AggregatePosterior | Tensor
    ) -> Interventions:
        n = prior.shape[1]
        if n < 2:
            raise ShapeError(
                f"consistency losses need n >= 2 latent dimensions (an off-target dimension); got n = {n}"
            )
        return draw_interventions(
            prior,
            value_source,
            dims=self.dims,
            n_interventions=self.n_interventions,
            generator=self.generator,
            check_values=False,  # made from latents (or a bank) already checked
        )

    def forward(self, latents: Tensor | None = None, *, responses: Tensor | None = None) -> Tensor:
        """The weighted loss, a scalar.

        The passes through the networks run with the model's BatchNorm layers as ``batchnorm``
        says (by default normalised with the statistics of the step's real batch, running
        statistics untouched; see :meth:`passes`), restored after.

        Args:
            latents: ``(B, n)`` the current batch's posterior means (detached here). With
                ``sampling="hybrid"`` / ``"uniform"`` the prior samples are ``B`` hybrids of them
                / uniform draws in their bounding box; with ``"posterior"`` they are the means
                themselves. ``n_samples`` of those rows are used (a random subset).
                ``None``: draw ``n_samples`` from the sampler.
            responses: :math:`R` of ``latents`` already computed by the caller (only with
                ``sampling="posterior"`` and ``reference="response"``): ``encoder(x_hat)``
                with ``x_hat`` the batch's reconstruction *from the means*; any encoder output
                :func:`~consistency.posterior_mean` reads. Saves one decode+encode.
        """
        self._warn_slips()
        lazy = self.every > 1 and torch.is_grad_enabled()  # one training call in `every`
        if lazy and self._phase:
            out = self._skipped(latents)
        else:
            out = self._guarded(latents, responses)
            if lazy:
                out = self.every * out
        if lazy:  # advanced only by a call that succeeded
            self._phase = (self._phase + 1) % self.every
        return out

    def _guarded(self, latents: Tensor | None, responses: Tensor | None) -> Tensor:
        """:meth:`_forward`; a call that fails leaves the global random state as it found it."""
        if is_compiling():
            return self._forward(latents, responses)
        cpu_state = torch.get_rng_state()
        cuda = latents is not None and latents.is_cuda
        cuda_state = (
            torch.cuda.get_rng_state(latents.device) if cuda and latents is not None else None
        )
        try:
            return self._forward(latents, responses)
        except Exception:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None and latents is not None:
                torch.cuda.set_rng_state(cuda_state, latents.device)
            raise

    def _skipped(self, latents: Tensor | None) -> Tensor:
        """The value of a training call between two computed ones: a zero scalar on the
        latents' (or the sampler's) device and dtype, after the same input checks."""
        if latents is None:
            sampler = self.sampler
            if sampler is None:
                return self._forward(None, None)  # raises: nothing to draw from
            like = sampler.bank_buffer
        else:
            dim = None if self.sampler is None else self.sampler.dim
            like = check_latents(latents, "latents", dim)
        return like.new_zeros(())

    def _forward(self, latents: Tensor | None, responses: Tensor | None) -> Tensor:
        prior, value_source = self._prior_samples(latents)
        if responses is not None:
            responses = posterior_mean(responses)
            if latents is None:
                raise InvalidValueError(
                    "responses= needs the latents they respond to; pass latents too"
                )
            if self.sampling != "posterior":
                raise InvalidValueError(
                    f"responses= are the responses to the latents themselves, but with "
                    f"sampling={self.sampling!r} the prior samples are {self.sampling} draws made "
                    "from the latents, whose responses the loss computes: do not pass responses="
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
        with self.passes():
            return self.weight * self._compute(prior, value_source, responses)

    def _warn_slips(self) -> None:
        """Warn (at the user's line) about calls that run but train nothing as meant."""
        if is_compiling():
            return
        name = type(self).__name__
        if not torch.is_grad_enabled():
            warnings.warn(
                f"{name} was called under torch.no_grad() (or inference_mode): the term has no "
                "gradient and trains nothing; call it in the training step, outside no_grad "
                "(under no_grad it only reports a value)",
                stacklevel=user_stacklevel(),
            )
            return
        asleep = [type(m).__name__ for m in self.model.modules if not m.training]
        if asleep:
            warnings.warn(
                f"{name} is training a model in eval mode ({', '.join(asleep)}.training is "
                "False): its BatchNorm and dropout layers act as at evaluation and the loss's "
                "BatchNorm statistics are never recorded; call model.train() before the "
                "training loop (model.eval() only around validation)",
                stacklevel=user_stacklevel(),
            )

    def passes(self) -> contextlib.AbstractContextManager[None]:
        """The context the loss's passes run in: the model's BatchNorm layers as ``batchnorm``
        says, restored after (for passes of one's own that should match, e.g. a reused
        reconstruction's response)."""
        if self.batchnorm == "data":
            stats = self._data_statistics
            return stats.applied() if stats is not None else contextlib.nullcontext()
        return self._refs[0].frozen_batchnorm(self.batchnorm)

    def remove_hooks(self) -> None:
        """Take off the BatchNorm hooks of ``batchnorm="data"`` (the loss then falls back to the
        running statistics)."""
        if self._data_statistics is not None:
            self._data_statistics.remove()

    def _compute(
        self, prior: Tensor, value_source: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        raise NotImplementedError


_SHARED_ARGS = r"""
        model: the autoencoder: an ``nn.Module`` with ``.encoder`` and ``.decoder`` (and
            ``.latent``, e.g. the XBlock of a retrofit), or with ``encode`` / ``generate``
            methods, or a :class:`~consistency.ResponseModel` (read by
            :meth:`ResponseModel.of <consistency.ResponseModel.of>`).
        sampler: the aggregate posterior: prior samples are drawn from it when no latents are
            passed; intervention values come from it with ``intervention_values="sampler"``.
        weight: multiplies the loss (the paper's :math:`\lambda = 4`). Measured with the
            reconstruction error *summed over pixels* (per image, averaged over the batch); a
            loop that averages over pixels needs a correspondingly smaller weight.
        every: compute the loss on one training call in ``every`` (the first, then every
            ``every``-th), with its weight multiplied by ``every``, and return a zero on the
            calls between: a lazy regulariser, the same expected gradient per step at
            ``1 / every`` of the passes (the prior samples of a computed call are ``n_samples``
            as always). Only calls with gradients enabled count (:attr:`phase`); a call under
            ``no_grad`` always computes the loss, with its plain weight, for reporting.
        sampling: how the prior samples are made from the batch's means: ``"hybrid"``
            (default: each coordinate from a random row of the batch), ``"posterior"`` (the
            rows themselves, Algorithm 1) or ``"uniform"`` (uniform in their bounding box).
            Off-posterior prior samples train consistency where the hybrid and uniform
            self-consistency scores measure it.
        n_samples: how many prior samples a call uses: a random subset of the batch's rows
            (an unbiased, cheaper estimate; ``None``: every row), or the number drawn from the
            sampler without latents (``None``: ``min(len(sampler), 128)``). Each costs one pass
            through generator and encoder; the default, 16, and what it costs are measured in
            docs/results.md.
        stop_reference: the reference is a fixed target without gradient (default). With
            gradients through both sides the cheapest way to agree is a map that ignores its
            input, and self-consistency collapses (docs/method.md).
        intervention_values: where the values :math:`v \sim Q(N_m)` come from: ``"batch"``
            (default: the batch's own means, the current encoder's aggregate posterior) or
            ``"sampler"`` (the sampler's bank, a ring buffer of earlier means; the batch while
            it is empty).
        batchnorm: the model's BatchNorm layers during the loss's passes: ``"data"``
            (default): each layer normalises with the statistics of the real batch it last saw
            in training mode (the step's reconstruction pass; call the loss after it), with the
            gradient through them, so the loss shapes the function the reconstruction trains
            (:class:`~consistency.module_state.DataStatistics`; building the loss puts a
            recording hook on each BatchNorm layer, :meth:`remove_hooks` takes them off);
            ``"running"``: eval mode, running statistics; ``"batch"``: the generated batch's own
            statistics; ``"update"``: plain training mode (generated images move the running
            statistics). Running statistics move only in ``"update"``.
        dims: ``"random"`` (one dimension per sample, an unbiased estimate) or ``"all"``
            (every dimension for every sample: the algorithm exactly).
        n_interventions: values per (sample, dimension).
        max_batch: largest batch sent through the networks at once.
        generator: random generator for prior samples, dimensions and values.
"""


class InvarianceLoss(_ConsistencyLoss):
    r"""Invariance regulariser (Algorithm 1): interventions on ``m`` must not move the response on ``i != m``.

    .. math:: L_{INV} = \mathbb{E}_k \frac{1}{n}\sum_{i \ne m_k}\frac{\big(R(\tilde N^k)_i - c^k_i\big)^2}{\sigma_i^2}

    with the reference :math:`c = N` (``reference="noise"``, default) or :math:`c = R(N)`
    (``"response"``) and :math:`\sigma_i^2` the prior samples' variance of :math:`N_i`.
    Configured once, called in the training loop on the batch's encoder means:
    ``loss = reconstruction + InvarianceLoss(model)(means)``. The defaults are the library's
    recipe (:data:`consistency.recipe.RECIPE`, docs/method.md "Deviations");
    :meth:`faithful` builds Algorithm 1 as written. All interventions of a call go through the
    networks as one batch; gradients flow into the model's parameters, never into the prior
    samples.

    Args:{shared}
        reference: what :math:`R(\tilde N)_i` is compared with: ``"noise"`` (default): the
            prior sample's own coordinate :math:`N_i`, which asks for invariance *and*
            self-consistency on the untouched coordinates, costs one pass less, and gives the
            encoder no response of its own to shrink towards; ``"response"``: :math:`R(N)_i`,
            Algorithm 1 as written.
        normalise: divide each coordinate's squared change by a variance over the prior samples
            (detached): ``"noise"`` (default): of :math:`N_i`; ``"response"``: of
            :math:`R(N)_i` (the score's denominator; unstable in training: a coordinate that
            shrinks gets a larger weight). Either makes the loss unchanged by rescaling the
            latent space, so a model cannot lower it by shrinking its latents. ``None``: raw
            latent units, as Algorithm 1 is written.

    Example:
        >>> import torch
        >>> from consistency import XBlock
        >>> class AE(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.encoder = torch.nn.Linear(4, 2)
        ...         self.latent = XBlock(2)
        ...         self.decoder = torch.nn.Linear(2, 4)
        >>> model = AE()
        >>> invariance = InvarianceLoss(model)
        >>> loss = invariance(model.encoder(torch.randn(8, 4)))
        >>> loss.shape, bool(loss >= 0)
        (torch.Size([]), True)
    """

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        sampler: AggregatePosterior | None = None,
        *,
        weight: float = RECIPE.weight,
        every: int = RECIPE.every,
        sampling: SamplingMode = RECIPE.sampling,
        n_samples: int | None = RECIPE.n_samples,
        reference: Reference = RECIPE.reference,
        normalise: Normalise | None = RECIPE.normalise,
        stop_reference: bool = RECIPE.stop_reference,
        intervention_values: InterventionValues = RECIPE.intervention_values,
        batchnorm: BatchNormHandling = RECIPE.batchnorm,
        dims: Dims = "random",
        n_interventions: int = 1,
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        # checked before the base class, which ends by hooking the model's BatchNorm layers
        checked: Reference = check_choice("reference", reference, ("noise", "response"))
        super().__init__(
            model,
            sampler,
            weight=weight,
            every=every,
            sampling=sampling,
            n_samples=n_samples,
            normalise=normalise,
            stop_reference=stop_reference,
            intervention_values=intervention_values,
            batchnorm=batchnorm,
            dims=dims,
            n_interventions=n_interventions,
            max_batch=max_batch,
            generator=generator,
        )
        self.reference: Reference = checked

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reference={self.reference!r}"

    def _compute(
        self, prior: Tensor, value_source: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        iv = self._interventions(prior, value_source)
        if self.reference == "noise":
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
            else unit_variance(prior if self.normalise == "noise" else responses, n)
        )
        return invariance_penalty(responses[iv.source], intervened, iv.dims, scale)


class EquivarianceLoss(_ConsistencyLoss):
    r"""Equivariance regulariser (Algorithm 2): intervening before or after the response agrees.

    With :math:`\tilde N = I_{m,v}(N)`, :math:`\tilde N' = R(\tilde N)` and
    :math:`\check N' = I_{m,v}(\tilde N')`:

    .. math:: L_{EQV} = \mathbb{E}_k \frac{1}{n}\sum_{i=1}^n \frac{\big\|S(\tilde N^k)_i - S(\check N'^k)_i\big\|^2}{\sigma_i^2}

    in cause space (unit-wise norms) when the model has an XBlock ``S``, in noise space
    (``S = id``) when not; both sides run through the *same* XBlock gate draw. It never needs
    :math:`R(N)`, so ``responses=`` is accepted for a uniform call signature and ignored; a
    call costs one decode+encode of the intervened samples. Defaults: the library's recipe;
    :meth:`faithful`: Algorithm 2 as written.

    Args:{shared}
        normalise: divide each unit's squared distance by a variance of cause unit ``i``
            (detached): ``"noise"`` (default): of :math:`S(N)` over the prior samples;
            ``"response"``: of :math:`S(\tilde N)` over the intervened rows; ``None``: raw units.

    Example:
        >>> import torch
        >>> from consistency import ResponseModel, XBlock
        >>> enc, block, dec = torch.nn.Linear(4, 3), XBlock(3, 2), torch.nn.Linear(6, 4)
        >>> model = ResponseModel(enc, lambda n: dec(block(n)), xblock=block, modules=[dec])
        >>> loss_fn = EquivarianceLoss(model)
        >>> bool(loss_fn(enc(torch.randn(8, 4))) >= 0)
        True
    """

    def _compute(
        self, prior: Tensor, value_source: AggregatePosterior | Tensor, responses: Tensor | None
    ) -> Tensor:
        iv = self._interventions(prior, value_source)
        xblock = self.xblock
        if xblock is not None and xblock.n != prior.shape[1]:
            raise ShapeError(
                f"xblock has n = {xblock.n} units but the latents have width {prior.shape[1]}"
            )
        back = _apply(self._response(iv.noise), iv.dims, iv.values)  # dims drawn above
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
        elif self.normalise == "noise":
            if xblock is None:
                scale = unit_variance(prior, n)
            else:
                with torch.no_grad():
                    scale = unit_variance(xblock(prior), n)
        return equivariance_penalty(target, moved, n, scale)


for _cls in (InvarianceLoss, EquivarianceLoss):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{shared}", _SHARED_ARGS.rstrip("\n"))
