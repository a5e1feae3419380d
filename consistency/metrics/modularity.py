"""Modularity and explicitness (Ridgeway & Mozer 2018), as ``disentanglement_lib`` computes
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_positive_int
from ..errors import InvalidValueError
from ._common import _check_pair, _labels, _sklearn, _split, discretize
from .mig import _mutual_information


@dataclass
class ModularityExplicitness:
    """Modularity and explicitness (Ridgeway & Mozer 2018, "Learning deep disentangled
    embeddings with the F-statistic loss", Sec. 3).

    Attributes:
        modularity: mean over latents of ``per_latent``.
        per_latent: ``(n,)`` 1 - (how much of a latent's squared MI goes to other factors than
            its main one), 0 for a latent with no MI at all.
        mutual_information: ``(n, F)`` MI in nats between binned latents and factors.
        explicitness: mean over factors of ``per_factor`` (test split).
        explicitness_train: the same on the training split.
        per_factor: ``(F,)`` ROC-AUC of a logistic regression from all latents to each factor.
    """

    modularity: float
    per_latent: Tensor
    mutual_information: Tensor
    explicitness: float
    explicitness_train: float
    per_factor: Tensor


def modularity(mutual_information: Tensor) -> tuple[float, Tensor]:
    r"""Modularity from an MI matrix ``(n, F)``: with :math:`m_{jk} = I_{jk}^2` and
    :math:`\theta_j = \max_k m_{jk}`,

    .. math:: \mathrm{mod}_j = 1 - \frac{\sum_k m_{jk} - \theta_j}{\theta_j (F - 1)}

    (0 where :math:`\theta_j = 0`); returns the mean and the per-latent values.

    Example:
        >>> import torch
        >>> modularity(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))[0]
        1.0
    """
    if mutual_information.ndim != 2 or mutual_information.shape[1] < 2:
        raise InvalidValueError(
            f"mutual_information must be (n, F) with F >= 2; got {tuple(mutual_information.shape)}"
        )
    squared = mutual_information.double().square()
    top = squared.max(1).values
    delta = (squared.sum(1) - top) / (top * (squared.shape[1] - 1.0))
    per_latent = torch.where(top == 0, torch.zeros_like(delta), 1.0 - delta)
    return float(per_latent.mean()), per_latent


def modularity_explicitness(
    codes: Tensor,
    factors: Tensor,
    *,
    test_codes: Tensor | None = None,
    test_factors: Tensor | None = None,
    test_fraction: float = 1 / 3,
    num_bins: int = 20,
    factor_bins: int | None = None,
    seed: int = 0,
) -> ModularityExplicitness:
    r"""Modularity (does each latent depend on one factor only?) and explicitness (can a linear
    classifier read each factor off the code?).

    Modularity: latents binned into ``num_bins`` equal-width bins (:func:`discretize`, on the
    training split), their discrete MI with the factors (torch), then :func:`modularity`.
    Explicitness: the codes standardised with the training split's mean and (ddof 0) std;
    per factor, scikit-learn's ``LogisticRegression()`` with its defaults fit on the training
    split, and the ROC-AUC (``roc_auc_score`` of the one-hot classes, macro average) of its
    class probabilities on the test split (CPU). A class missing from a split is left out of
    that split's average (disentanglement_lib's code stops there with an error).

    Args:
        codes: ``(N, n)`` training codes (the whole data when no test split is given).
        factors: ``(N, F)`` true factors, ``F >= 2``.
        test_codes: an explicit test split's codes (with ``test_factors``).
        test_factors: the test split's factors.
        test_fraction: held-out share when no test split is given.
        num_bins: bins per latent for the MI.
        factor_bins: bins per factor for the classes, or ``None``: distinct values.
        seed: the split's random seed.

    Example:
        >>> import torch
        >>> g = torch.randint(0, 4, (600, 2))
        >>> result = modularity_explicitness(g.float() + 0.1 * torch.randn(600, 2), g)
        >>> round(result.modularity, 1), result.explicitness > 0.95
        (1.0, True)
    """
    codes_t, factors_t = _check_pair(codes, factors)
    if factors_t.shape[1] < 2:
        raise InvalidValueError(f"modularity needs F >= 2 factors; got {factors_t.shape[1]}")
    check_positive_int(num_bins, "num_bins")
    z_tr, g_tr, z_te, g_te = _split(
        codes_t, factors_t, test_codes, test_factors, test_fraction, seed
    )
    z_tr, z_te = z_tr.detach().double(), z_te.detach().double()
    both = torch.cat([g_tr, g_te]).double()
    labels = torch.stack(_labels(both, factor_bins), 1)
    y_tr, y_te = labels[: g_tr.shape[0]], labels[g_tr.shape[0] :]
    binned = discretize(z_tr, num_bins)
    mi = torch.stack(
        [_mutual_information(binned, num_bins, y_tr[:, k]) for k in range(y_tr.shape[1])], 1
    )
    mod, per_latent = modularity(mi)
    mean, std = z_tr.mean(0), z_tr.std(0, correction=0)
    x_tr, x_te = (z_tr - mean) / std, (z_te - mean) / std
    train_auc, test_auc = _explicitness(x_tr, y_tr, x_te, y_te)
    return ModularityExplicitness(
        mod, per_latent, mi, float(test_auc.mean()), float(train_auc.mean()), test_auc
    )


def _explicitness(x_tr: Tensor, y_tr: Tensor, x_te: Tensor, y_te: Tensor) -> tuple[Tensor, Tensor]:
    _sklearn("modularity_explicitness")
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped,unused-ignore]
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped,unused-ignore]

    def auc(clf: Any, x: Any, t: Any) -> float:
        # one column per class the classifier knows (disentanglement_lib's MultiLabelBinarizer
        # columns when the split holds every class); a class absent from the split (all
        # negatives) has no ROC curve and is left out of the macro average
        onehot = (t[:, None] == clf.classes_[None, :]).astype(np.int64)
        keep = (onehot.sum(0) > 0) & (onehot.sum(0) < len(t))
        return float(roc_auc_score(onehot[:, keep], clf.predict_proba(x)[:, keep]))

    a_tr, a_te = x_tr.cpu().numpy(), x_te.cpu().numpy()
    train, test = [], []
    for k in range(y_tr.shape[1]):
        t_tr, t_te = y_tr[:, k].cpu().numpy(), y_te[:, k].cpu().numpy()
        if len(set(t_tr.tolist())) < 2:
            raise InvalidValueError(
                f"factor {k} takes a single value on the training split; explicitness needs at "
                "least two classes"
            )
        clf = LogisticRegression().fit(a_tr, t_tr)
        train.append(auc(clf, a_tr, t_tr))
        test.append(auc(clf, a_te, t_te))
    return torch.tensor(train, dtype=torch.float64), torch.tensor(test, dtype=torch.float64)
