"""Metrics beyond the consistency scores: sample quality (Fréchet distance); for data with a
known causal model, ground-truth matching, graph recovery and data-side invariance; the
disentanglement metrics IRS, MIG and DCI; and the latent response matrices."""

from ._common import discretize, encode_all
from .dci import DCI, completeness, dci, disentanglement, lasso
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
from .ground_truth_scores import GroundTruthScores, ground_truth_scores
from .irs import IRS, irs
from .mig import MIG, mig
from .response_matrix import (
    ConditionedResponse,
    InterventionalData,
    LatentResponse,
    conditioned_response_matrix,
    latent_response_matrix,
)

__all__ = [
    "DCI",
    "IRS",
    "MIG",
    "ConditionedResponse",
    "DataInvariance",
    "GraphComparison",
    "GroundTruthScores",
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
    "encode_all",
    "frechet_distance",
    "ground_truth_scores",
    "irs",
    "lasso",
    "latent_response_matrix",
    "match_latents",
    "mig",
    "random_dag_shd",
    "sample_quality",
    "structural_hamming_distance",
]
