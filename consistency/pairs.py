"""Weak supervision from paired interventions: images of the same scene before and after
``do(factor := v)`` (docs/method.md, "Paired interventions")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int, check_weight
from .errors import InvalidTypeError, InvalidValueError, ShapeError
from .functional import pair_sparsity_penalty, pair_targets, target_independence_penalty
from .intervention import intervene
from .response import ResponseModel
from .xblock import XBlock

__all__ = ["PairedInterventionLoss"]


class PairedInterventionLoss(nn.Module):
    r"""Paired-intervention regulariser: a pair's change is one unit of noise, and the
    intervened cause forgets its parents.

    .. math:: L = w\Big(\lambda_s \frac{1}{B}\sum_b \frac{1}{n}\sum_{j \ne t_b}\frac{(\tilde N_{bj} - N_{bj})^2}{\sigma_j^2} + \lambda_i\, \frac{1}{|T|}\sum_{t}\frac{1}{n-1}\sum_{j \ne t}\rho^2\big(S(\check N)_t,\ N_j\big)\Big), \quad \check N = I_{t}(N, \tilde N_t)

    For a pair of images ``(x, x~)`` of the same scene before and after a hard intervention on
    one factor, with codes ``N = E(x)``, ``N~ = E(x~)`` and intervened unit ``t``:

    * **sparsity** (:func:`~consistency.functional.pair_sparsity_penalty`): the exogenous
      noise of every other unit is unchanged, so ``N~_j = N_j`` for ``j != t``;
    * **independence** (:func:`~consistency.functional.target_independence_penalty`): the
      before code with unit ``t`` taken from the after code (the library's one
      :func:`~consistency.intervene`) goes through the XBlock; its cause ``S(Ň)_t`` is the
      intervened value, which a hard intervention draws independently of everything else, so
      it must not correlate with any other unit's noise ``N_j``. A decoder that renders a
      child from its parent's cause (the gate closed) needs a target noise that depends on
      the parent to undo it, and this term sees that; propagating the parent through an open
      gate does not.

    The after image is reconstructed by the training loop's own reconstruction loss, through
    the XBlock: with the sparsity term, its code differs from the before code in unit ``t``
    alone, so the change of the descendants must come through the gates. Units are matched to
    factors by ``targets`` (unit ``t`` for factor ``t``; the XBlock's unit order is then the
    factors' topological order), or, with ``targets=None``, each pair is attributed to its
    largest standardised change (:func:`~consistency.functional.pair_targets`).

    Args:
        model: a module with an :class:`~consistency.XBlock` (read as
            :meth:`ResponseModel.of <consistency.ResponseModel.of>` does), or a
            :class:`~consistency.ResponseModel` with ``xblock=``.
        weight: multiplies the whole loss (:math:`w`).
        sparsity: weight of the sparsity term (:math:`\lambda_s`).
        independence: weight of the independence term (:math:`\lambda_i`). Default 0: in
            the measurements so far it made the learned graph worse (docs/method.md, "Paired
            interventions"); the term is kept to study it.
        min_rows: fewest pairs of one target in a batch for its independence term to count.

    Raises:
        InvalidValueError: ``independence > 0`` and the model has no XBlock, or a weight is
            negative.

    Example:
        >>> import torch
        >>> from consistency import XBlock
        >>> class AE(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.encoder = torch.nn.Linear(8, 3)
        ...         self.latent = XBlock(3)
        ...         self.decoder = torch.nn.Linear(3, 8)
        >>> model, loss = AE(), None
        >>> loss = PairedInterventionLoss(model)
        >>> before, after = model.encoder(torch.randn(32, 8)), model.encoder(torch.randn(32, 8))
        >>> value = loss(before, after, torch.randint(0, 3, (32,)))
        >>> value.shape, bool(value >= 0)
        (torch.Size([]), True)
    """

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        *,
        weight: float = 1.0,
        sparsity: float = 1.0,
        independence: float = 0.0,
        min_rows: int = 3,
    ) -> None:
        super().__init__()
        handle = ResponseModel.of(model, owner="PairedInterventionLoss")
        self.independence = check_weight(independence, "independence")
        if self.independence > 0 and not isinstance(handle.xblock, XBlock):
            raise InvalidValueError(
                "PairedInterventionLoss(independence > 0) needs a model with an XBlock (its "
                "latent, or xblock= of a ResponseModel): the independence term reads the "
                "intervened unit's cause; without one every cause is its own noise"
            )
        self._handle = handle
        self.weight = check_weight(weight, "weight")
        self.sparsity = check_weight(sparsity, "sparsity")
        self.min_rows = check_positive_int(min_rows, "min_rows", minimum=2)

    @property
    def xblock(self) -> XBlock | None:
        """The model's XBlock (read when used: a later retrofit is seen), or ``None``."""
        return self._handle.xblock

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, sparsity={self.sparsity}, "
            f"independence={self.independence}, min_rows={self.min_rows}"
        )

    def forward(self, before: Tensor, after: Tensor, targets: Tensor | None = None) -> Tensor:
        """The loss of a batch of pairs.

        Args:
            before: ``(B, n)`` codes (posterior means) of the images before the intervention.
            after: ``(B, n)`` codes of the same scenes after it.
            targets: ``(B,)`` intervened unit of each pair, or ``None`` to attribute each pair
                to its largest standardised change.

        Returns:
            Scalar: gradients flow into both codes and the XBlock.
        """
        block = self.xblock
        n = block.n if block is not None else None
        check_latents(before, "before", n)
        check_latents(after, "after", n)
        if before.shape != after.shape:
            raise ShapeError(
                f"before and after must have the same shape (B, n); got {tuple(before.shape)} "
                f"and {tuple(after.shape)}"
            )
        if before.shape[0] < 2:
            raise ShapeError(
                f"a batch of pairs needs at least 2 rows (the penalties divide by variances over "
                f"the batch); got {before.shape[0]}"
            )
        if targets is None:
            targets = pair_targets(before, after)
        elif not isinstance(targets, Tensor):
            raise InvalidTypeError(
                f"targets must be an integer tensor (B,) or None; got {type(targets).__name__}"
            )
        return self._compute(before, after, targets.to(before.device))

    def _compute(self, before: Tensor, after: Tensor, targets: Tensor) -> Tensor:
        sparsity = pair_sparsity_penalty(before, after, targets)
        block = self.xblock
        if self.independence == 0 or block is None:  # a setting, not data: no trace break
            return self.weight * self.sparsity * sparsity
        rows = torch.arange(before.shape[0], device=before.device)
        hybrid = intervene(before, targets, after[rows, targets])
        causes = block.causes(hybrid)[rows, targets]  # (B, u): the intervened cause
        independence = target_independence_penalty(
            causes, before.detach(), targets, min_rows=self.min_rows
        )
        return self.weight * (self.sparsity * sparsity + self.independence * independence)
