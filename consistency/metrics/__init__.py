"""Metrics beyond the consistency scores: sample quality (Fréchet distance)."""

from .fid import SampleQuality, frechet_distance, sample_quality

__all__ = ["SampleQuality", "frechet_distance", "sample_quality"]
