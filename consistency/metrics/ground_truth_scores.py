"""The ground-truth scores in one call (IRS, MIG, DCI), from codes or from an encoder and images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import InvalidValueError
from ._common import encode_all
from .dci import DCI, dci
from .irs import IRS, irs
from .mig import MIG, mig


# ------------------------------------------------------------------------------- from a model
@dataclass
class GroundTruthScores:
    """IRS, MIG and DCI of one representation (each result in full).

    Attributes:
        irs, mig, dci: the results of :func:`irs`, :func:`mig`, :func:`dci`.
    """

    irs: IRS
    mig: MIG
    dci: DCI

    def summary(self) -> dict[str, float]:
        """The headline numbers as a flat dict of floats."""
        return {
            "irs": self.irs.score,
            "mig": self.mig.score,
            "dci_disentanglement": self.dci.disentanglement,
            "dci_completeness": self.dci.completeness,
            "dci_informativeness": self.dci.informativeness,
        }


def ground_truth_scores(
    codes: Tensor | Callable[[Tensor], Any],
    factors: Tensor,
    *,
    images: Tensor | None = None,
    factor_bins: int | None = None,
    importance: Literal["lasso", "gbt"] = "lasso",
    max_batch: int = 512,
    device: torch.device | str | None = None,
) -> GroundTruthScores:
    """IRS, MIG and DCI in one call, from codes ``(N, n)`` or from an encoder and ``images``.

    Args:
        codes: encoder means ``(N, n)``, or the encoder itself (then ``images`` is required and
            :func:`encode_all` encodes them).
        factors: ``(N, F)`` true factors.
        images: ``(N, ...)`` when ``codes`` is an encoder.
        factor_bins: for MIG (and gbt DCI): ``None`` uses distinct factor values as classes
            (gridded factors), an int bins continuous factors. IRS always bins into 20, as
            disentanglement_lib does.
        importance: DCI's importance model.

    Example:
        >>> import torch
        >>> g = torch.cartesian_prod(torch.arange(6), torch.arange(5)).float()
        >>> scores = ground_truth_scores(lambda x: x * 2.0, g, images=g)
        >>> {k: round(v, 2) for k, v in scores.summary().items()}
        {'irs': 1.0, 'mig': 1.0, 'dci_disentanglement': 1.0, 'dci_completeness': 1.0, 'dci_informativeness': 1.0}
    """
    if callable(codes) and not isinstance(codes, Tensor):
        if images is None:
            raise InvalidValueError("codes is an encoder: pass the images to encode (images=)")
        codes_t = encode_all(codes, images, max_batch=max_batch, device=device)
    else:
        if images is not None:
            raise InvalidValueError("images= is only for an encoder; codes were given directly")
        codes_t = codes
    return GroundTruthScores(
        irs=irs(codes_t, factors),
        mig=mig(codes_t, factors, factor_bins=factor_bins),
        dci=dci(codes_t, factors, importance=importance, factor_bins=factor_bins),
    )
