from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from consistency import AggregatePosterior, ConsistencyEvaluator, ResponseModel
from consistency.metrics import frechet_distance, sample_quality


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


@given(st.integers(1, 6), st.floats(0.0, 3.0), st.integers(0, 99))
def test_matches_scipy_sqrtm(d: int, shift: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(300, d, generator=g, dtype=torch.float64)
    b = (
        torch.randn(250, d, generator=g, dtype=torch.float64)
        @ torch.randn(d, d, generator=g, dtype=torch.float64)
        + shift
    )
    assert float(frechet_distance(a, b)) == pytest.approx(
        reference_fd(a.numpy(), b.numpy()), rel=1e-6, abs=1e-8
    )


def test_errors() -> None:
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(torch.randn(5, 2, 1), torch.randn(5, 2))  # one side not (P, d)
    for p, q in ((1, 5), (5, 1)):
        with pytest.raises(
            ValueError, match=r"^frechet_distance needs at least 2 samples on each side$"
        ):
            frechet_distance(torch.randn(p, 2), torch.randn(q, 2))
    assert torch.isfinite(frechet_distance(torch.randn(2, 2), torch.randn(2, 2)))  # 2 suffice


def test_sample_quality_runs_with_given_features() -> None:
    torch.manual_seed(0)
    enc, dec = nn.Linear(8, 2), nn.Linear(2, 8)
    images = torch.randn(64, 8)
    q = AggregatePosterior(2)
    q.update(enc(images).detach())
    ev = ConsistencyEvaluator(ResponseModel(enc, dec), q, progress=False)
    feats = nn.Sequential(nn.Linear(8, 4), nn.Tanh())
    out = sample_quality(ev, images, feats)
    assert out.feature_network == "Sequential"
    assert all(v >= -1e-6 for v in (out.reconstructions, out.hybrid_samples, out.traversals))
