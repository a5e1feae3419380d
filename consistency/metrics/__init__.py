"""Metrics beyond the consistency scores: sample quality (Fréchet distance) and, for data with a
known causal model, ground-truth matching, graph recovery and data-side invariance."""

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
    "DataInvariance",
    "GraphComparison",
    "Matching",
    "RandomGraphBaseline",
    "SampleQuality",
    "compare_graphs",
    "data_invariance",
    "frechet_distance",
    "match_latents",
    "random_dag_shd",
    "sample_quality",
    "structural_hamming_distance",
]
