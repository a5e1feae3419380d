"""Metrics beyond the consistency scores: sample quality (Fréchet distance); for data with a
known causal model, ground-truth matching, graph recovery and data-side invariance; the
disentanglement metrics IRS, MIG and DCI; and the latent response matrices."""

from .disentanglement import (
    DCI,
    IRS,
    MIG,
    ConditionedResponse,
    InterventionalData,
    LatentResponse,
    completeness,
    conditioned_response_matrix,
    dci,
    discretize,
    disentanglement,
    irs,
    lasso,
    latent_response_matrix,
    mig,
)
from .fid import SampleQuality, frechet_distance, sample_quality
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

__all__ = [
    "DCI",
    "IRS",
    "MIG",
    "ConditionedResponse",
    "DataInvariance",
    "GraphComparison",
    "InterventionalData",
    "LatentResponse",
    "Matching",
    "RandomGraphBaseline",
    "SampleQuality",
    "compare_graphs",
    "completeness",
    "conditioned_response_matrix",
    "data_invariance",
    "dci",
    "discretize",
    "disentanglement",
    "frechet_distance",
    "irs",
    "lasso",
    "latent_response_matrix",
    "match_latents",
    "mig",
    "random_dag_shd",
    "sample_quality",
    "structural_hamming_distance",
]
