"""The recipe: every choice of the consistency losses and the XBlock, written once.

:data:`RECIPE` holds the defaults of :class:`~consistency.InvarianceLoss`,
:class:`~consistency.EquivarianceLoss` and :class:`~consistency.XBlock` (their signatures read
it), and :meth:`ConsistencyRecipe.faithful` the paper's literal choices, which
``InvarianceLoss.faithful(...)``, ``EquivarianceLoss.faithful(...)`` and
``XBlock.faithful(...)`` build with. ``consistency.models.Recipe`` (the paper models) and the
examples take these values from here. docs/method.md ("Deviations") gives the ablation behind
each default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidValueError
from .sampler import SamplingMode

__all__ = [
    "FAITHFUL",
    "RECIPE",
    "BatchNormHandling",
    "ConsistencyRecipe",
    "InterventionValues",
    "Normalise",
    "Reference",
]

Reference = Literal["noise", "response"]
Normalise = Literal["noise", "response"]
InterventionValues = Literal["batch", "sampler"]
BatchNormHandling = Literal["data", "running", "batch", "update"]

# values this library used before 0.2, and what they are called now (for the error messages)
RENAMED_VALUES: dict[str, dict[str, str]] = {
    "reference": {"prior": "noise"},
    "normalise": {"prior": "noise"},
}


def check_choice(name: str, value: object, allowed: tuple[object, ...]) -> Any:
    """``value`` if it is one of ``allowed``, else :class:`InvalidValueError` naming the choices
    (and the new name of a value that was renamed)."""
    if value in allowed:
        return value
    renamed = RENAMED_VALUES.get(name, {})
    hint = (
        f' ({value!r} was renamed "{renamed[value]}")'
        if isinstance(value, str) and value in renamed
        else ""
    )
    choices = ", ".join(repr(a) for a in allowed)
    raise InvalidValueError(f"{name} must be one of {choices}; got {value!r}{hint}")


@dataclass(frozen=True)
class ConsistencyRecipe:
    r"""How consistency is trained: the losses' and the XBlock's choices, in one place.

    The default instance, :data:`RECIPE`, is what the measurements chose (docs/method.md,
    "Deviations"); :meth:`faithful` is Algorithm 1 / 2 and the authors' code as written.

    Attributes:
        sampling: how the loss's prior samples are made from the batch's means: ``"hybrid"``
            (each coordinate from an independent row), ``"posterior"`` (the rows themselves) or
            ``"uniform"`` (uniform in their bounding box).
        reference: what :math:`R(\tilde N)_i` is compared with on the untouched coordinates:
            ``"noise"``, the prior sample's own :math:`N_i`, or ``"response"``, :math:`R(N)_i`
            (Algorithm 1).
        normalise: each coordinate's squared change is divided by the variance over the prior
            samples of the noise (``"noise"``) or of the response (``"response"``); ``None``:
            raw latent units.
        n_samples: how many of the batch's rows become prior samples per call (a random subset;
            ``None``: every row). Each costs one pass through generator and encoder.
        weight: multiplies the loss (the paper's :math:`\lambda`).
        every: the loss is computed on every ``every``-th training call, with its weight
            multiplied by ``every``, and is zero on the calls between (a lazy regulariser: the
            same expected gradient per step at a fraction of the passes).
        stop_reference: the reference is a fixed target (no gradient).
        intervention_values: where the values :math:`v \sim Q(N_m)` come from: the batch's
            means (``"batch"``) or the sampler's bank (``"sampler"``).
        batchnorm: BatchNorm layers in the consistency passes: ``"data"`` (normalised with the
            statistics of the real batch each layer last saw in training, with their gradient,
            :class:`~consistency.module_state.DataStatistics`), ``"running"`` (eval mode),
            ``"batch"`` (the generated batch's own statistics) or ``"update"`` (plain training
            mode); running statistics move only in ``"update"``
            (:func:`~consistency.frozen_batchnorm`).
        xblock_residual: the XBlock's units compute :math:`Z_i = N_i + f_i(\cdot)` and start as
            the identity.
        xblock_init: ``"xavier"`` or ``"pytorch"`` initialisation of the XBlock's MLPs.
        gate_init_mean, gate_init_std: the XBlock's gate logits start from
            :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)` (mean 0, std 0: every gate
            undecided at 0.5; a negative mean starts the edges closed).
        xblock_out_activation: Mish on every cause unit's output (the authors' code).
    """

    sampling: SamplingMode = "hybrid"
    reference: Reference = "noise"
    normalise: Normalise | None = "noise"
    n_samples: int | None = 16
    weight: float = 4.0
    every: int = 1
    stop_reference: bool = True
    intervention_values: InterventionValues = "batch"
    batchnorm: BatchNormHandling = "data"
    xblock_residual: bool = True
    xblock_init: Literal["xavier", "pytorch"] = "xavier"
    gate_init_mean: float = 0.0
    gate_init_std: float = 0.0
    xblock_out_activation: bool = False

    @classmethod
    def faithful(cls) -> ConsistencyRecipe:
        """The paper's Algorithms 1 / 2 and the authors' code, as written: posterior prior
        samples (every row of the batch) compared with their responses in raw units,
        intervention values from the bank, BatchNorm in plain training mode, non-residual XBlock
        units with Mish outputs and gate logits drawn from N(0, 1)."""
        return cls(
            sampling="posterior",
            reference="response",
            normalise=None,
            n_samples=None,
            weight=4.0,
            every=1,
            stop_reference=True,
            intervention_values="sampler",
            batchnorm="update",
            xblock_residual=False,
            xblock_init="xavier",
            gate_init_mean=0.0,
            gate_init_std=1.0,
            xblock_out_activation=True,
        )

    def replace(self, **changes: Any) -> ConsistencyRecipe:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def loss_kwargs(self, *, invariance: bool = True) -> dict[str, Any]:
        """The keyword arguments of :class:`~consistency.InvarianceLoss` (or, with
        ``invariance=False``, :class:`~consistency.EquivarianceLoss`, which has no
        ``reference``) this recipe sets."""
        kw: dict[str, Any] = dict(
            sampling=self.sampling,
            normalise=self.normalise,
            n_samples=self.n_samples,
            weight=self.weight,
            every=self.every,
            stop_reference=self.stop_reference,
            intervention_values=self.intervention_values,
            batchnorm=self.batchnorm,
        )
        if invariance:
            kw["reference"] = self.reference
        return kw

    def xblock_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~consistency.XBlock` this recipe sets."""
        return dict(
            residual=self.xblock_residual,
            init=self.xblock_init,
            logit_init_mean=self.gate_init_mean,
            logit_init_std=self.gate_init_std,
            out_activation="mish" if self.xblock_out_activation else None,
        )


RECIPE = ConsistencyRecipe()
"""The defaults of the losses and the XBlock."""

FAITHFUL = ConsistencyRecipe.faithful()
"""The paper's literal choices."""
