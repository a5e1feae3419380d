"""The ground-truth scores in one call, chosen by name, from codes or from an encoder and images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor

from ..errors import InvalidValueError
from ._common import encode_all
from .dci import DCI, dci
from .fixed_factor import BetaVAEScore, FactorVAEScore, beta_vae_score, factor_vae_score
from .irs import IRS, irs
from .mcc import MCC, ProbeR2, mcc, probe_r2
from .mig import MIG, mig
from .modularity import ModularityExplicitness, modularity_explicitness
from .sap import SAP, sap
from .unsupervised import UnsupervisedScores, unsupervised_scores

# ------------------------------------------------------------------------------- from a model
CODE_METRICS = ("irs", "mig", "dci", "sap", "modularity", "unsupervised", "mcc", "r2")
"""The metrics :func:`ground_truth_scores` computes from codes and factors."""
SOURCE_METRICS = ("factor_vae", "beta_vae")
"""The metrics that also need an encoder and a ``source`` that renders chosen factors."""
DEFAULT_METRICS = ("irs", "mig", "dci")


def versions() -> dict[str, str]:
    """The versions of the libraries behind a score: torch, NumPy, scikit-learn, SciPy (those
    installed), and this library."""
    from .. import __version__

    out = {"consistency": __version__, "torch": torch.__version__}
    for name, module in (("numpy", "numpy"), ("scikit-learn", "sklearn"), ("scipy", "scipy")):
        try:
            out[name] = __import__(module).__version__
        except ImportError:  # pragma: no cover - depends on the environment
            pass
    return out


@dataclass
class GroundTruthScores:
    """The ground-truth scores of one representation (each result in full; ``None`` for a
    metric not asked for).

    Attributes:
        irs: :func:`irs`.
        mig: :func:`mig`.
        dci: :func:`dci`.
        sap: :func:`sap`.
        modularity: :func:`modularity_explicitness`.
        unsupervised: :func:`unsupervised_scores`.
        mcc: :func:`mcc` (Pearson; ``mcc_spearman`` the Spearman form).
        mcc_spearman: :func:`mcc` with ``method="spearman"``.
        r2: :func:`probe_r2`.
        factor_vae: :func:`factor_vae_score`.
        beta_vae: :func:`beta_vae_score`.
        versions: the library versions that computed them (:func:`versions`).
    """

    irs: IRS | None = None
    mig: MIG | None = None
    dci: DCI | None = None
    sap: SAP | None = None
    modularity: ModularityExplicitness | None = None
    unsupervised: UnsupervisedScores | None = None
    mcc: MCC | None = None
    mcc_spearman: MCC | None = None
    r2: ProbeR2 | None = None
    factor_vae: FactorVAEScore | None = None
    beta_vae: BetaVAEScore | None = None
    versions: dict[str, str] = field(default_factory=versions)

    def summary(self) -> dict[str, float]:
        """The headline numbers of the metrics computed, as a flat dict of floats."""
        out: dict[str, float] = {}
        if self.irs is not None:
            out["irs"] = self.irs.score
        if self.mig is not None:
            out["mig"] = self.mig.score
        if self.dci is not None:
            out["dci_disentanglement"] = self.dci.disentanglement
            out["dci_completeness"] = self.dci.completeness
            out["dci_informativeness"] = self.dci.informativeness
        if self.sap is not None:
            out["sap"] = self.sap.score
        if self.modularity is not None:
            out["modularity"] = self.modularity.modularity
            out["explicitness"] = self.modularity.explicitness
        if self.unsupervised is not None:
            out["gaussian_total_correlation"] = self.unsupervised.gaussian_total_correlation
            out["gaussian_wasserstein_correlation_norm"] = (
                self.unsupervised.gaussian_wasserstein_correlation_norm
            )
            out["mutual_information"] = self.unsupervised.mutual_information
        if self.mcc is not None:
            out["mcc"] = self.mcc.score
        if self.mcc_spearman is not None:
            out["mcc_spearman"] = self.mcc_spearman.score
        if self.r2 is not None:
            out["r2_linear"] = self.r2.linear_mean
            out["r2_nonlinear"] = self.r2.nonlinear_mean
        if self.factor_vae is not None:
            out["factor_vae"] = self.factor_vae.eval_accuracy
        if self.beta_vae is not None:
            out["beta_vae"] = self.beta_vae.eval_accuracy
        return out


def ground_truth_scores(
    codes: Tensor | Callable[[Tensor], Any],
    factors: Tensor,
    *,
    images: Tensor | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    factor_bins: int | None = None,
    importance: Literal["lasso", "gbt"] = "lasso",
    continuous_factors: bool = False,
    source: Any = None,
    source_kwargs: dict[str, Any] | None = None,
    max_batch: int = 512,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> GroundTruthScores:
    """The ground-truth scores chosen by name, from codes ``(N, n)`` or from an encoder and
    ``images``; IRS, MIG and DCI by default.

    Args:
        codes: encoder means ``(N, n)``, or the encoder itself (then ``images`` is required and
            :func:`encode_all` encodes them).
        factors: ``(N, F)`` true factors.
        images: ``(N, ...)`` when ``codes`` is an encoder.
        metrics: names among :data:`CODE_METRICS` (``"mcc"`` gives both the Pearson and the
            Spearman form) and :data:`SOURCE_METRICS` (these need the encoder and ``source``).
        factor_bins: for MIG, SAP, modularity / explicitness (and gbt DCI): ``None`` uses
            distinct factor values as classes (gridded factors), an int bins continuous
            factors. IRS always bins into 20, as disentanglement_lib does.
        importance: DCI's importance model.
        continuous_factors: SAP's continuous form (squared correlations, no classifier).
        source: for ``"factor_vae"`` / ``"beta_vae"``: renders data from chosen factors (a
            ``consistency.data`` ``StructuralData``).
        source_kwargs: keyword arguments of :func:`factor_vae_score` / :func:`beta_vae_score`
            (sizes: disentanglement_lib's defaults render about a million images).
        max_batch: largest batch sent through the encoder.
        device: where the encoder runs.
        seed: the seed of every split and random choice.

    Example:
        >>> import torch
        >>> g = torch.cartesian_prod(torch.arange(6), torch.arange(5)).float()
        >>> scores = ground_truth_scores(lambda x: x * 2.0, g, images=g)
        >>> {k: round(v, 2) for k, v in scores.summary().items()}
        {'irs': 1.0, 'mig': 1.0, 'dci_disentanglement': 1.0, 'dci_completeness': 1.0, 'dci_informativeness': 1.0}
        >>> scores.versions["torch"] == torch.__version__
        True
    """
    unknown = [m for m in metrics if m not in CODE_METRICS + SOURCE_METRICS]
    if unknown:
        raise InvalidValueError(
            f"unknown metric(s) {unknown}; choose among {CODE_METRICS + SOURCE_METRICS}"
        )
    encoder = codes if callable(codes) and not isinstance(codes, Tensor) else None
    if encoder is not None:
        if images is None:
            raise InvalidValueError("codes is an encoder: pass the images to encode (images=)")
        codes_t = encode_all(encoder, images, max_batch=max_batch, device=device)
    else:
        if images is not None:
            raise InvalidValueError("images= is only for an encoder; codes were given directly")
        codes_t = cast(Tensor, codes)
    wanted = set(metrics)
    if wanted & set(SOURCE_METRICS):
        if encoder is None or source is None:
            raise InvalidValueError(
                f"{sorted(wanted & set(SOURCE_METRICS))} render data with one factor held fixed: "
                "pass the encoder as codes (with images=) and source= (e.g. a "
                "consistency.data StructuralData)"
            )
    kw = dict(source_kwargs or {})
    out = GroundTruthScores()
    if "irs" in wanted:
        out.irs = irs(codes_t, factors)
    if "mig" in wanted:
        out.mig = mig(codes_t, factors, factor_bins=factor_bins)
    if "dci" in wanted:
        out.dci = dci(codes_t, factors, importance=importance, factor_bins=factor_bins, seed=seed)
    if "sap" in wanted:
        out.sap = sap(
            codes_t, factors, continuous=continuous_factors, factor_bins=factor_bins, seed=seed
        )
    if "modularity" in wanted:
        out.modularity = modularity_explicitness(
            codes_t, factors, factor_bins=factor_bins, seed=seed
        )
    if "unsupervised" in wanted:
        out.unsupervised = unsupervised_scores(codes_t)
    if "mcc" in wanted:
        out.mcc = mcc(codes_t, factors)
        out.mcc_spearman = mcc(codes_t, factors, method="spearman")
    if "r2" in wanted:
        out.r2 = probe_r2(codes_t, factors, seed=seed)
    if "factor_vae" in wanted:
        out.factor_vae = factor_vae_score(
            cast(Callable[[Tensor], Any], encoder), source, seed=seed, max_batch=max_batch,
            device=device, **kw,
        )  # fmt: skip
    if "beta_vae" in wanted:
        out.beta_vae = beta_vae_score(
            cast(Callable[[Tensor], Any], encoder), source, seed=seed, max_batch=max_batch,
            device=device, **kw,
        )  # fmt: skip
    return out
