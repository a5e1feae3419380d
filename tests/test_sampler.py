from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from consistency import (
    AggregatePosterior,
    ConsistencyError,
    EmptySamplerError,
    NonFiniteError,
    ShapeError,
)


def filled(dim: int = 3, rows: int = 10, capacity: int = 100) -> AggregatePosterior:
    q = AggregatePosterior(dim, capacity=capacity)
    q.update(torch.randn(rows, dim))
    return q


@given(st.integers(1, 5), st.integers(1, 20), st.integers(1, 30), st.integers(0, 2**16))
def test_posterior_samples_are_bank_rows(dim: int, rows: int, k: int, seed: int) -> None:
    q = AggregatePosterior(dim, capacity=64)
    q.update(torch.randn(rows, dim))
    g = torch.Generator().manual_seed(seed)
    samples = q.sample(k, "posterior", generator=g)
    assert samples.shape == (k, dim)
    match = (samples[:, None, :] == q.bank[None, :, :]).all(-1).any(-1)
    assert bool(match.all())


@given(st.integers(1, 5), st.integers(2, 20), st.integers(0, 2**16))
def test_hybrid_columns_come_from_bank_columns(dim: int, rows: int, seed: int) -> None:
    q = AggregatePosterior(dim, capacity=64)
    q.update(torch.randn(rows, dim))
    samples = q.sample(50, "hybrid", generator=torch.Generator().manual_seed(seed))
    for i in range(dim):
        assert bool(torch.isin(samples[:, i], q.bank[:, i]).all())


def test_hybrid_breaks_row_structure() -> None:
    # Bank with perfectly correlated coordinates: hybrid samples are (almost surely) not rows.
    q = AggregatePosterior(2, capacity=1000)
    x = torch.randn(500, 1)
    q.update(torch.cat([x, x], 1))
    s = q.sample(2000, "hybrid", generator=torch.Generator().manual_seed(0))
    corr = torch.corrcoef(s.T)[0, 1]
    assert abs(float(corr)) < 0.1
    post = q.sample(2000, "posterior", generator=torch.Generator().manual_seed(0))
    assert float(torch.corrcoef(post.T)[0, 1]) > 0.999


@given(st.integers(1, 5), st.integers(1, 20), st.integers(0, 2**16))
def test_uniform_within_bounds(dim: int, rows: int, seed: int) -> None:
    q = AggregatePosterior(dim, capacity=64)
    q.update(torch.randn(rows, dim) * 3)
    lo, hi = q.bounds()
    s = q.sample(100, "uniform", generator=torch.Generator().manual_seed(seed))
    assert bool(((s >= lo) & (s <= hi)).all())
    assert torch.equal(lo, q.bank.amin(0)) and torch.equal(hi, q.bank.amax(0))


def test_intervention_values_drawn_from_marginal() -> None:
    q = filled(4, 30)
    dims = torch.tensor([0, 1, 2, 3, 3, 0])
    v = q.intervention_values(dims, generator=torch.Generator().manual_seed(1))
    assert v.shape == (6,)
    for j, d in enumerate(dims.tolist()):
        assert bool(torch.isin(v[j], q.bank[:, d]))
    assert q.intervention_values([1, 2]).shape == (2,)


def test_ring_buffer_wraps_keeping_newest() -> None:
    q = AggregatePosterior(1, capacity=5)
    q.update(torch.arange(3.0)[:, None])
    q.update(torch.arange(3.0, 7.0)[:, None])
    assert len(q) == 5
    assert sorted(q.bank[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    q.update(torch.arange(10.0, 22.0)[:, None])  # larger than capacity: keep the last 5
    assert sorted(q.bank[:, 0].tolist()) == [17.0, 18.0, 19.0, 20.0, 21.0]
    q.reset()
    assert len(q) == 0


def test_state_dict_round_trip_and_dtype() -> None:
    q = filled(3, 7, capacity=10)
    q2 = AggregatePosterior(3, capacity=10)
    q2.load_state_dict(q.state_dict())
    assert len(q2) == 7 and torch.equal(q2.bank, q.bank)
    q2.update(torch.randn(5, 3))
    assert len(q2) == 10
    before = (len(q), q.bank.clone(), int(q._next))
    q.update(torch.zeros(0, 3))  # an empty update changes nothing
    assert (len(q), int(q._next)) == before[::2] and torch.equal(q.bank, before[1])
    q3 = AggregatePosterior(3, capacity=2)  # capacity follows the saved bank
    q3.load_state_dict(q.state_dict())
    assert q3.capacity == 10 and torch.equal(q3.bank, q.bank)
    qd = q.to(torch.float64)
    assert qd.bank.dtype == torch.float64
    assert qd.sample(4).dtype == torch.float64
    assert qd.sample(4, "uniform").dtype == torch.float64
    qd.update(torch.randn(2, 3))  # float32 input is cast to the bank's dtype
    assert qd.bank.dtype == torch.float64


def test_errors() -> None:
    q = AggregatePosterior(3)
    # each message says what could not be done, and how full the bank is
    empty = r"the AggregatePosterior bank is empty \(0 of 10000 rows\); call \.update\(latents\)"
    with pytest.raises(EmptySamplerError, match=r"cannot sample in mode 'hybrid': " + empty):
        q.sample(4, "hybrid")
    with pytest.raises(EmptySamplerError, match=r"cannot draw intervention values: " + empty):
        q.intervention_values([0])
    with pytest.raises(EmptySamplerError, match=r"cannot compute bounds: " + empty):
        q.bounds()
    with pytest.raises(ShapeError, match=r"axis 1 .* must be 3; got 4"):
        q.update(torch.randn(2, 4))
    with pytest.raises(ShapeError, match="rank 2"):
        q.update(torch.randn(2, 3, 1))
    bad = torch.randn(4, 3)
    bad[1, 2] = float("nan")
    bad[3, 0] = float("inf")
    with pytest.raises(
        NonFiniteError,
        match=r"2 non-finite value\(s\) \(1 NaN, 1 inf\) at index \[\(1, 2\), \(3, 0\)\]",
    ):
        q.update(bad)
    with pytest.raises(ValueError, match="capacity must be an int >= 1; got 0"):
        AggregatePosterior(3, capacity=0)
    q.update(torch.randn(2, 3))
    with pytest.raises(ValueError, match="mode must be one of"):
        q.sample(2, "gaussian")
    with pytest.raises(ShapeError, match=r"dims must lie in \[0, 3\)"):
        q.intervention_values([3])
    assert issubclass(EmptySamplerError, ConsistencyError)


def _dist_worker(rank: int, world: int, init: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        q = AggregatePosterior(2, capacity=100)
        q.update(torch.full((rank + 1, 2), float(rank)))  # ranks send different batch sizes
        bank = q.bank[:, 0].tolist()
        assert sorted(bank) == [0.0, 1.0, 1.0], bank
    finally:
        dist.destroy_process_group()


def test_update_gathers_across_ranks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(_dist_worker, args=(2, init), nprocs=2, join=True, start_method="fork")


def test_capacity_one_and_state_dict_width_checks() -> None:
    """capacity = 1 is the smallest valid bank (0 and a bool are not); loading a bank of another
    width is a clear error naming both widths."""
    q = AggregatePosterior(2, capacity=1)
    q.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert len(q) == 1 and torch.equal(q.bank, torch.tensor([[3.0, 4.0]]))
    for bad in (0, True):
        with pytest.raises((ValueError, TypeError), match="capacity"):
            AggregatePosterior(2, capacity=bad)  # type: ignore[arg-type]
    other = AggregatePosterior(3, capacity=4)
    other.update(torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"state_dict bank has width 3; this AggregatePosterior has dim=2"
    ):
        AggregatePosterior(2, capacity=4).load_state_dict(other.state_dict())
    assert q._count.dtype == torch.long and q._next.dtype == torch.long


def test_state_dict_without_the_bank_loads_non_strict() -> None:
    """A checkpoint saved before the sampler existed has no bank key: non-strict loading keeps
    the sampler as it was and reports the key missing."""
    q = AggregatePosterior(3, capacity=4)
    q.update(torch.ones(2, 3))
    result = q.load_state_dict({}, strict=False)
    assert "bank_buffer" in result.missing_keys
    assert len(q) == 2 and torch.equal(q.bank, torch.ones(2, 3))
