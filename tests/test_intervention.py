from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from consistency import ShapeError, intervene


@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 999))
def test_intervene_sets_one_coordinate(batch: int, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, n, generator=g)
    dims = torch.randint(n, (batch,), generator=g)
    values = torch.randn(batch, generator=g)
    out = intervene(noise, dims, values)
    for b in range(batch):
        for i in range(n):
            expected = values[b] if i == dims[b] else noise[b, i]
            assert out[b, i] == expected
    assert not out.data_ptr() == noise.data_ptr()


def test_int_dims_and_scalar_values_and_grad() -> None:
    noise = torch.randn(3, 4, requires_grad=True)
    v = torch.tensor(2.0, requires_grad=True)
    out = intervene(noise, 1, v)
    assert torch.equal(out[:, 1], torch.full((3,), 2.0))
    out.sum().backward()
    assert noise.grad is not None and torch.equal(noise.grad[:, 1], torch.zeros(3))
    assert float(v.grad) == 3.0  # type: ignore[arg-type]
    assert torch.equal(intervene(noise, -1, 0.0)[:, 3], torch.zeros(3))


def test_errors() -> None:
    noise = torch.zeros(2, 3)
    with pytest.raises(ShapeError, match=r"dims must lie in \[0, 3\)"):
        intervene(noise, torch.tensor([0, 3]), 1.0)
    with pytest.raises(ShapeError, match=r"dims must have shape \(B,\) = \(2,\)"):
        intervene(noise, torch.tensor([0]), 1.0)
    with pytest.raises(ShapeError, match="out of range"):
        intervene(noise, 5, 1.0)
    with pytest.raises(ShapeError, match=r"values must be a scalar or have shape \(B,\)"):
        intervene(noise, 0, torch.zeros(3))
    with pytest.raises(TypeError, match="dims must be an int or an integer tensor"):
        intervene(noise, torch.tensor([0.0, 1.0]), 1.0)
    with pytest.raises(ShapeError, match="rank 2"):
        intervene(torch.zeros(3), 0, 1.0)


def test_compile_matches_eager() -> None:
    noise = torch.randn(5, 3)
    dims = torch.tensor([0, 1, 2, 0, 1])
    values = torch.randn(5)
    compiled = torch.compile(intervene, fullgraph=True, backend="eager")
    assert torch.equal(compiled(noise, dims, values), intervene(noise, dims, values))


def test_dimension_bounds_dtype_and_values_are_exact() -> None:
    """Edges that a planted off-by-one or a dropped dtype would pass: dims = -n and n - 1 are
    valid, n and -n - 1 are not; a single out-of-range tensor index is caught; float64 values
    into float32 noise keep float32; the int form intervenes on the same coordinate."""
    noise = torch.zeros(2, 3)
    assert torch.equal(intervene(noise, -3, 1.0)[:, 0], torch.ones(2))  # -n is dimension 0
    assert torch.equal(intervene(noise, 2, 1.0)[:, 2], torch.ones(2))
    for bad in (3, -4):
        with pytest.raises(ValueError, match=f"dims={bad} is out of range"):
            intervene(noise, bad, 0.0)
    with pytest.raises(ValueError, match="dims"):
        intervene(torch.zeros(1, 3), torch.tensor([3]), 0.0)  # one row, one bad index
    out = intervene(noise, torch.tensor([0, 1]), torch.tensor([2.0, 3.0], dtype=torch.float64))
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]))


def test_intervene_edge_cases_dtype_and_message() -> None:
    """An empty batch with an empty dims tensor; a Python float lands exactly in a float64 batch
    (no float32 rounding on the way); non-finite noise passes (no data-dependent check in the
    hot path); a wrong rank names the argument."""
    from consistency import intervene

    empty = intervene(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert empty.shape == (0, 3)
    exact = intervene(torch.zeros(2, 3, dtype=torch.float64), 1, 0.1)
    assert exact.dtype == torch.float64 and exact[:, 1].tolist() == [0.1, 0.1]
    nan = intervene(torch.full((2, 3), float("nan")), 0, 1.0)
    assert nan[:, 0].tolist() == [1.0, 1.0] and bool(nan[:, 1:].isnan().all())
    with pytest.raises(ValueError, match=r"^noise must have shape \(B, n\) \(rank 2\); got rank 1"):
        intervene(torch.zeros(3), 0, 1.0)


def test_draw_interventions_checks_the_prior_unless_told_not_to() -> None:
    """check_values=True (default) refuses NaN/inf prior samples with their count; False (the
    losses, for prior samples made from latents they checked) draws without reading a value
    back, and the NaN stays where it was, untouched by the draw."""
    from consistency import NonFiniteError, draw_interventions

    prior = torch.randn(4, 3)
    prior[1, 2] = float("inf")
    bank = torch.randn(10, 3)
    with pytest.raises(NonFiniteError, match="prior contains 1 non-finite"):
        draw_interventions(prior, bank)
    iv = draw_interventions(prior, bank, dims="all", check_values=False)
    assert iv.noise.shape == (12, 3)
    kept = ~torch.isfinite(iv.noise)
    assert int(kept.sum()) == 2 and bool((iv.source[kept.any(1)] == 1).all())
