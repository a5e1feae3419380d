"""Boundaries, dtypes and messages of the functional core (values: test_oracles / test_harness)."""

from __future__ import annotations

import pytest
import torch

from consistency.errors import ShapeError
from consistency.functional import (
    equivariance_penalty,
    imq_mmd,
    self_consistency,
    self_consistency_authors,
)


def test_self_consistency_returns_the_input_dtype() -> None:
    noise = torch.randn(50, 3)
    assert self_consistency(noise, 0.5 * noise).dtype == torch.float32
    assert self_consistency_authors(noise, 0.5 * noise).dtype == torch.float32
    assert self_consistency(noise.double(), noise.double()).dtype == torch.float64


def test_authors_self_consistency_is_clamped_at_zero_only() -> None:
    noise = torch.randn(200, 2, dtype=torch.float64)
    far = self_consistency_authors(noise, noise + 100.0)
    assert torch.equal(far, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(self_consistency_authors(noise, noise), torch.ones(2, dtype=torch.float64))


def test_imq_mmd_sizes_scale_and_constant_samples() -> None:
    x = torch.randn(2, 3, dtype=torch.float64)
    assert torch.isfinite(imq_mmd(x, x.flip(0)))  # two samples on each side are enough
    for p, q in ((1, 2), (2, 1)):
        with pytest.raises(ValueError, match=f"at least 2 samples on each side; got {p} and {q}"):
            imq_mmd(torch.randn(p, 3), torch.randn(q, 3))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 2, generator=g, dtype=torch.float64)
    b = torch.randn(80, 2, generator=g, dtype=torch.float64) + 1.0
    default = imq_mmd(a, b)
    assert torch.equal(default, imq_mmd(a, b, scale=2.0 * 2 * float(a.var(0).mean())))
    assert not torch.allclose(default, imq_mmd(a, b, scale=50.0))  # scale= is used
    constant = torch.ones(5, 2)  # zero variance -> kernel width 0: reported as 0, not NaN
    assert torch.equal(imq_mmd(constant, torch.zeros(4, 2)), torch.zeros((), dtype=torch.float64))


def test_equivariance_penalty_names_the_mismatched_arguments() -> None:
    msg = r"^causes and causes_back must both have shape \(R, n\) and agree; got \(4, 6\) and \(4, 3\)$"
    with pytest.raises(ShapeError, match=msg):
        equivariance_penalty(torch.zeros(4, 6), torch.zeros(4, 3), 3)


def test_invariance_penalty_names_the_mismatched_arguments() -> None:
    from consistency.functional import invariance_penalty

    dims = torch.zeros(4, dtype=torch.long)
    with pytest.raises(
        ShapeError,
        match=r"^reference and intervened must both have shape \(R, n\) and agree; got \(4, 3\) and \(4, 2\)$",
    ):
        invariance_penalty(torch.zeros(4, 3), torch.zeros(4, 2), dims)
    with pytest.raises(
        ShapeError, match=r"^dims must have shape \(R,\) = \(4,\) to match reference; got \(3,\)$"
    ):
        invariance_penalty(torch.zeros(4, 3), torch.zeros(4, 3), dims[:3])
