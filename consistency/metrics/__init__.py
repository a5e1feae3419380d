"""Metrics beyond the consistency scores: sample quality (Fréchet distance); for data with a
known causal model, ground-truth matching, graph recovery and data-side invariance; the
disentanglement metrics (IRS, MIG, DCI, SAP, modularity and explicitness, the BetaVAE and
FactorVAE scores, the unsupervised scores, MCC and probe R²); and the latent response
matrices."""

from ._common import discretize, encode_all
from .dci import DCI, completeness, dci, disentanglement, lasso
from .fid import SampleQuality, frechet_distance, sample_quality
from .fixed_factor import BetaVAEScore, FactorVAEScore, beta_vae_score, factor_vae_score
from .ground_truth import (
    DataInvariance,
    GraphComparison,
    Matching,
    RandomGraphBaseline,
    compare_graphs,
    data_invariance,
    match_latents,
    random_dag_shd,
    structural_hamming_distance,
)
from .ground_truth_scores import (
    CODE_METRICS,
    SOURCE_METRICS,
    GroundTruthScores,
    ground_truth_scores,
    versions,
)
from .irs import IRS, irs
from .mcc import MCC, ProbeR2, correlation_matrix, mcc, probe_r2
from .mig import MIG, mig
from .modularity import ModularityExplicitness, modularity, modularity_explicitness
from .response_matrix import (
    ConditionedResponse,
    InterventionalData,
    LatentResponse,
    conditioned_response_matrix,
    latent_response_matrix,
)
from .sap import SAP, sap
from .unsupervised import UnsupervisedScores, pairwise_mutual_information, unsupervised_scores

__all__ = [
    "CODE_METRICS",
    "DCI",
    "IRS",
    "MCC",
    "MIG",
    "SAP",
    "SOURCE_METRICS",
    "BetaVAEScore",
    "ConditionedResponse",
    "DataInvariance",
    "FactorVAEScore",
    "GraphComparison",
    "GroundTruthScores",
    "InterventionalData",
    "LatentResponse",
    "Matching",
    "ModularityExplicitness",
    "ProbeR2",
    "RandomGraphBaseline",
    "SampleQuality",
    "UnsupervisedScores",
    "beta_vae_score",
    "compare_graphs",
    "completeness",
    "conditioned_response_matrix",
    "correlation_matrix",
    "data_invariance",
    "dci",
    "discretize",
    "disentanglement",
    "encode_all",
    "factor_vae_score",
    "frechet_distance",
    "ground_truth_scores",
    "irs",
    "lasso",
    "latent_response_matrix",
    "match_latents",
    "mcc",
    "mig",
    "modularity",
    "modularity_explicitness",
    "pairwise_mutual_information",
    "probe_r2",
    "random_dag_shd",
    "sample_quality",
    "sap",
    "structural_hamming_distance",
    "unsupervised_scores",
    "versions",
]
