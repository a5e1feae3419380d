"""The paper's model families (AE, β-VAE, SAE, AVAE) and variants (plain, X, XC-I, XC-E), and
consistency training without the XBlock (C-I, C-E)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..encoding import posterior_mean
from ..errors import InvalidTypeError, InvalidValueError
from ..evaluator import ConsistencyEvaluator
from ..losses import EquivarianceLoss, InvarianceLoss
from ..recipe import FAITHFUL, RECIPE, ConsistencyRecipe
from ..sampler import AggregatePosterior
from ..xblock import XBlock
from .skeleton import PRESETS, ConvDecoder, ConvEncoder, OutputBlock, Preset

__all__ = [
    "CONSISTENCY_TRAINED",
    "FAMILIES",
    "VARIANTS",
    "WITH_XBLOCK",
    "LossTerms",
    "PaperModel",
    "Recipe",
    "SAEDecoder",
    "build_model",
    "parameter_count",
]

Family = Literal["AE", "VAE", "SAE", "AVAE"]
Variant = Literal["plain", "X", "XC-I", "XC-E", "C-I", "C-E"]
FAMILIES: tuple[str, ...] = ("AE", "VAE", "SAE", "AVAE")
VARIANTS: tuple[str, ...] = ("plain", "X", "XC-I", "XC-E", "C-I", "C-E")
WITH_XBLOCK = ("X", "XC-I", "XC-E")
"""The variants whose latent is an XBlock (the others decode the noise itself)."""
CONSISTENCY_TRAINED = {"XC-I": "I", "XC-E": "E", "C-I": "I", "C-E": "E"}
"""The variants trained with a consistency loss: invariance (I) or equivariance (E)."""


@dataclass(frozen=True)
class Recipe:
    """How a paper model is built and how its consistency term is computed.

    The consistency choices (``sampling`` … ``gate_init_std``) are those of
    :class:`~consistency.ConsistencyRecipe`, defaulting to :data:`consistency.RECIPE`, the
    library's recipe (docs/method.md, "Deviations", with the ablation that chose each item);
    the architecture choices are the paper models' own. :meth:`faithful` is the paper's
    architecture and the authors' choices, which reproduces Table 4's parameter counts.

    Attributes:
        output_block: ``"conv"`` (conv -> sigmoid) or ``"paper"`` (conv -> Mish -> BatchNorm ->
            sigmoid), see :class:`~consistency.models.ConvDecoder`.
        encoder_out_activation: the encoder's head ends in Mish, as in the authors' code
            (deterministic encoders only; a stochastic head is always linear). Mish is nearly
            flat below -2: a latent pushed there stops carrying information and its dimension
            collapses.
        gate_sparsity: weight of :meth:`~consistency.XBlock.gate_penalty` in the loss (0: none).
        consistency: the losses' and the XBlock's choices (:class:`~consistency.ConsistencyRecipe`;
            its ``weight`` is the consistency weight of XC models).
    """

    output_block: OutputBlock = "conv"
    encoder_out_activation: bool = False
    gate_sparsity: float = 0.0
    consistency: ConsistencyRecipe = RECIPE

    @classmethod
    def faithful(cls) -> Recipe:
        """The paper's architecture and the authors' code's choices (Table 4 counts exact)."""
        return cls(
            output_block="paper",
            encoder_out_activation=True,
            gate_sparsity=0.0,
            consistency=FAITHFUL,
        )

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed; names of :class:`~consistency.ConsistencyRecipe`
        change :attr:`consistency` (unknown names raise ``TypeError``)."""
        own = {f.name for f in dataclasses.fields(self)}
        inner = {k: v for k, v in changes.items() if k not in own}
        outer = {k: v for k, v in changes.items() if k in own}
        recipe = dataclasses.replace(self, **outer)
        if inner:
            recipe = dataclasses.replace(recipe, consistency=recipe.consistency.replace(**inner))
        return recipe

    def to_dict(self) -> dict[str, Any]:
        """Every field, flat (the consistency fields beside the architecture ones)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {
            **{k: v for k, v in out.items() if k != "consistency"},
            **dataclasses.asdict(self.consistency),
        }


class LossTerms(NamedTuple):
    """A training loss and its parts (each already weighted; ``total`` is their sum)."""

    total: Tensor
    reconstruction: Tensor
    regulariser: Tensor
    consistency: Tensor


class SAEDecoder(ConvDecoder):
    """Structural decoder of Leeb et al. (2020) on the paper's skeleton.

    Starts from a learned constant feature map; before each of the first ``n`` conv blocks, a
    "structural transform" MLP of latent unit ``i`` (``u -> 10u -> 20u -> 2F``) gives a per-channel
    scale and shift, ``y = mu + sigma * x`` (AdaIN-like). With an XBlock the causes feed the
    transforms instead of the noise.
    """

    def __init__(self, n: int, unit_size: int, **kw: Any) -> None:
        super().__init__(n * unit_size, **kw)
        del self.dense
        self.n, self.unit_size = n, unit_size
        self.constant = nn.Parameter(torch.randn(1, self.filters, self.side, self.side) * 0.1)
        u = unit_size
        n_transforms = min(n, len(self.blocks))
        self.transforms = nn.ModuleList(
            nn.Sequential(
                nn.Linear(u, 10 * u),
                nn.Mish(),
                nn.Linear(10 * u, 20 * u),
                nn.Mish(),
                nn.Linear(20 * u, 2 * self.filters),
            )
            for _ in range(n_transforms)
        )

    def start(self, z: Tensor) -> Tensor:
        return self.constant.expand(z.shape[0], -1, -1, -1)

    def before_block(self, j: int, h: Tensor, z: Tensor) -> Tensor:
        if j >= len(self.transforms):
            return h
        unit = z[:, j * self.unit_size : (j + 1) * self.unit_size]
        scale, shift = self.transforms[j](unit).chunk(2, dim=1)
        return shift[:, :, None, None] + (1 + scale[:, :, None, None]) * h


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class PaperModel(nn.Module):
    r"""One of the paper's autoencoders: ``encoder -> latent (Identity | XBlock) -> decoder``.

    * ``encode(x)``: the encoder's output (a tensor, or ``(mean, logvar)`` for VAE / AVAE);
    * ``means(x)``: its posterior mean ``(B, n)``;
    * ``generate(noise)``: the generative map :math:`G = D \circ S`;
    * ``loss(x)``: the family's own training loss (+ the consistency term for XC variants), a
      :class:`LossTerms`; in training mode it also stores the batch's means in ``sampler``.

    ``kl_scale`` (default 1) multiplies the KL term of VAE / AVAE; :func:`~consistency.train.train`
    ramps the β-VAE's from 0 to 1 over ``TrainConfig.kl_warmup_steps`` (and an XC model's
    consistency weight with it; :func:`~consistency.train.warmup_lengths`).

    Build it with :func:`build_model`.
    """

    def __init__(
        self,
        family: Family,
        preset: Preset,
        variant: Variant = "plain",
        *,
        beta: float = 1.0,
        consistency_weight: float | None = None,
        rho: float = 0.975,
        sampler_capacity: int = 10_000,
        xblock_tau: float = 0.5,
        learn_gates: bool = True,
        recipe: Recipe | None = None,
        faithful: bool = False,
    ) -> None:
        super().__init__()
        if recipe is not None and faithful:
            raise InvalidValueError("pass either recipe= or faithful=True, not both")
        recipe = Recipe.faithful() if faithful else (recipe if recipe is not None else Recipe())
        if not isinstance(recipe, Recipe):
            raise InvalidTypeError(f"recipe must be a Recipe; got {type(recipe).__name__}")
        self.recipe = recipe
        if family not in FAMILIES:
            raise InvalidValueError(f"family must be one of {FAMILIES}; got {family!r}")
        if variant not in VARIANTS:
            raise InvalidValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
        self.family, self.variant, self.preset = family, variant, preset
        self.beta, self.rho = float(beta), float(rho)
        # multiplies the KL term (a warm-up schedule sets it: TrainConfig.kl_warmup_steps)
        self.kl_scale = 1.0
        self.stochastic = family in ("VAE", "AVAE")
        # the decoder is built before the XBlock, so that a model and its plain twin built after
        # the same seed start from the same encoder and decoder (the XBlock, an identity at
        # initialisation, draws its weights last): comparisons of twins are not confounded by
        # different network inits
        self.encoder, self.decoder = self._networks()
        self.latent: nn.Module = self._latent(xblock_tau, learn_gates)
        self.sampler = AggregatePosterior(preset.n, capacity=sampler_capacity)
        c = recipe.consistency
        self.consistency_weight = (
            c.weight if consistency_weight is None else float(consistency_weight)
        )
        self.consistency: InvarianceLoss | EquivarianceLoss | None = self._consistency_loss()

    def _networks(self) -> tuple[ConvEncoder, ConvDecoder]:
        """The encoder (``2n`` outputs for a stochastic family) and the decoder (``n·u`` inputs
        with an XBlock; SAE's structural decoder for ``"SAE"``)."""
        preset, recipe = self.preset, self.recipe
        n, u = preset.n, preset.unit_size
        kw = dict(
            channels=preset.channels,
            image_size=preset.image_size,
            filters=preset.filters,
            depth=preset.depth,
            pools=preset.pools,
        )
        encoder = ConvEncoder(
            2 * n if self.stochastic else n,
            out_activation=recipe.encoder_out_activation and not self.stochastic,
            **kw,
        )
        width_u = u if self.variant in WITH_XBLOCK else 1
        decoder = (
            SAEDecoder(n, width_u, output_block=recipe.output_block, **kw)
            if self.family == "SAE"
            else ConvDecoder(n * width_u, output_block=recipe.output_block, **kw)
        )
        return encoder, decoder

    def _latent(self, tau: float, learn_gates: bool) -> nn.Module:
        """The XBlock of the recipe for the X variants, the identity for the others."""
        if self.variant not in WITH_XBLOCK:
            return nn.Identity()
        kw = self.recipe.consistency.xblock_kwargs()
        return XBlock(self.preset.n, self.preset.unit_size, tau=tau, learn_gates=learn_gates, **kw)

    def _consistency_loss(self) -> InvarianceLoss | EquivarianceLoss | None:
        """The XC and C variants' loss, built from this module: it reads ``encode`` /
        ``generate`` and puts the BatchNorm layers in the recipe's mode during its passes. With
        no XBlock (C-E) equivariance is measured in noise space, ``S = id``: intervening on the
        noise and then responding agrees with responding and then intervening. With the
        recipe's ``reference="noise"`` that penalty *is* the invariance penalty, term by term,
        so C-E trains exactly as C-I (``tests/test_losses.py``); it differs only under
        ``Recipe.faithful()``, whose invariance compares with ``R(N)``."""
        kind = CONSISTENCY_TRAINED.get(self.variant)
        if kind is None:
            return None
        loss_cls = InvarianceLoss if kind == "I" else EquivarianceLoss
        kw = self.recipe.consistency.loss_kwargs(invariance=kind == "I")
        kw["weight"] = self.consistency_weight
        return loss_cls(self, self.sampler, **kw)

    @property
    def n(self) -> int:
        return self.preset.n

    @property
    def xblock(self) -> XBlock | None:
        return self.latent if isinstance(self.latent, XBlock) else None

    def encode(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.encoder(x)
        if self.stochastic:
            mean, logvar = out.chunk(2, dim=1)
            return mean, logvar.clamp(-12.0, 8.0)
        return out

    def means(self, x: Tensor) -> Tensor:
        """Posterior means ``(B, n)`` of images ``x``."""
        return posterior_mean(self.encode(x))

    def generate(self, noise: Tensor) -> Tensor:
        """Images from noise ``(B, n)`` through the whole generative map: the latent block (the
        XBlock, or the identity) and then :attr:`decoder`. This is what the library's
        ``generate=`` means; :attr:`decoder` alone skips the XBlock."""
        return self.decoder(self.latent(noise))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction from the posterior mean."""
        return self.generate(self.means(x))

    def loss(self, x: Tensor) -> LossTerms:
        """The family's training loss on a batch ``x`` ``(B, C, H, W)`` (MSE summed over pixels,
        averaged over the batch; plus β·KL for VAE / AVAE, the AVAE consistency term, and the
        weighted consistency loss of XC variants)."""
        enc = self.encode(x)
        zero = x.new_zeros((), dtype=torch.float32)
        regulariser = zero
        if isinstance(enc, tuple):
            mean, logvar = enc
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
            kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(1).mean()
            regulariser = self.beta * self.kl_scale * kl
        else:
            mean = z = enc
            logvar = torch.zeros_like(mean)
        if self.training:
            self.sampler.update(mean.detach())
        x_hat = self.generate(z)
        reconstruction = (x_hat.float() - x.float()).square().flatten(1).sum(1).mean()
        if self.family == "AVAE":
            regulariser = regulariser + self.beta * self._avae_term(z, mean, logvar)
        consistency = zero
        if self.consistency is not None:
            c = self.recipe.consistency
            reuse = c.sampling == "posterior" and c.reference == "response" and not self.stochastic
            if isinstance(self.consistency, InvarianceLoss) and reuse:
                # reuse the reconstruction: R(N) = E(x_hat), under the loss's BatchNorm handling
                with self.consistency.passes():
                    responses = self.means(x_hat)
                consistency = self.consistency(mean, responses=responses)
            else:
                consistency = self.consistency(mean)
        xblock = self.xblock
        if xblock is not None and self.recipe.gate_sparsity > 0:
            regulariser = regulariser + self.recipe.gate_sparsity * xblock.gate_penalty()
        total = reconstruction + regulariser + consistency
        return LossTerms(total, reconstruction.detach(), regulariser.detach(), consistency.detach())

    def _avae_term(self, z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
        r"""Cemgil et al.'s closed-form consistency term with correlation ρ:
        :math:`\mathrm{KL}\big(q(\tilde z|\tilde x)\,\|\,\mathcal N(\rho z, 1-\rho^2)\big)` averaged
        over :math:`z \sim q(z|x)`, with :math:`\tilde x = \mathrm{stopgrad}(D(z))`, i.e.
        :math:`\frac{\tilde\sigma^2 + \rho^2\sigma^2 + (\tilde\mu - \rho\mu)^2}{2(1-\rho^2)} - \tfrac12\log\tilde\sigma^2`
        up to a constant (the entropy of :math:`q(\tilde z|\tilde x)` enters with a minus sign)."""
        rho = self.rho
        with torch.no_grad():
            x_aux = self.generate(z)
        mu_t, logvar_t = self.encode(x_aux)
        var, var_t = logvar.exp(), logvar_t.exp()
        cross = (var_t + rho**2 * var + (mu_t - rho * mean).square()) / (2 * (1 - rho**2))
        return (cross - 0.5 * logvar_t).sum(1).mean()

    def evaluator(
        self, sampler: AggregatePosterior | None = None, **kw: Any
    ) -> ConsistencyEvaluator:
        """A :class:`ConsistencyEvaluator` on this model (its own sampler unless one is given)."""
        return ConsistencyEvaluator(self, sampler if sampler is not None else self.sampler, **kw)


def build_model(family: str, preset: str, variant: str = "plain", **kw: Any) -> PaperModel:
    """Build one of the paper's models, e.g. ``build_model("AE", "S", "XC-I")``.

    Args:
        family: ``"AE"``, ``"VAE"`` (β-VAE; ``beta=``), ``"SAE"``, ``"AVAE"`` (``beta=``, ``rho=``).
        preset: ``"S"``, ``"Standard"``, ``"S4"`` (MNIST 28×28×1) or ``"v32"``, ``"v324"`` (CelebA 128×128×3).
        variant: ``"plain"``, ``"X"`` (XBlock), ``"XC-I"`` / ``"XC-E"`` (X + invariance /
            equivariance training; ``consistency_weight`` defaults to the recipe's weight, 4),
            ``"C-I"`` / ``"C-E"`` (the same training without the XBlock: the plain model with
            the regulariser; C-E's equivariance is in noise space, where under the default
            recipe it equals C-I's invariance penalty exactly).
        kw: passed to :class:`PaperModel`: ``recipe=Recipe(...)`` to change how it is built and
            trained, ``faithful=True`` for the paper's exact architecture (Table 4 counts).
    """
    if preset not in PRESETS:
        raise InvalidValueError(f"preset must be one of {tuple(PRESETS)}; got {preset!r}")
    return PaperModel(family, PRESETS[preset], variant, **kw)  # type: ignore[arg-type]
