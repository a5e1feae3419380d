from __future__ import annotations

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    ConsistencyMetric,
    EmptySamplerError,
    ResponseModel,
    XBlock,
)
from consistency.testing import assert_reports_close


def toy() -> tuple[nn.Module, nn.Module, XBlock]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double()
    block = XBlock(3).double()
    dec = nn.Sequential(nn.Linear(3, 5)).double()
    return enc, dec, block


def test_metric_matches_the_one_shot_evaluator_and_a_direct_error() -> None:
    enc, dec, block = toy()
    gen = lambda z: dec(block(z))  # noqa: E731
    data = torch.randn(5, 12, 5, dtype=torch.float64)
    metric = ConsistencyMetric(
        ResponseModel(enc, gen, xblock=block, modules=[enc]),
        n=3,
        n_samples=30,
        n_interventions=2,
        seed=3,
    ).double()
    enc.train()
    for batch in data:
        metric.update(batch)
    assert enc.training and block.training  # modes restored
    result = metric.compute()
    flat = data.flatten(0, 1)
    enc.eval(), block.eval()
    with torch.no_grad():
        means = enc(flat)
        error = (gen(means) - flat).square().sum(1).mean()
    assert result.images == 60
    assert result.reconstruction == pytest.approx(float(error), rel=1e-10)
    bank = AggregatePosterior(3, capacity=10_000, dtype=torch.float64)
    bank.update(means)
    evaluator = ConsistencyEvaluator(
        ResponseModel(enc, gen, xblock=block, modules=[enc]),
        bank,
        n_samples=30,
        n_interventions=2,
        generator=torch.Generator().manual_seed(3),
        progress=False,
    )
    assert_reports_close(result.report, evaluator.evaluate("posterior"))
    assert set(result.self_consistency.modes) == {"posterior", "hybrid", "uniform"}


def test_reset_and_compute_before_update() -> None:
    enc, dec, _ = toy()
    metric = ConsistencyMetric(
        ResponseModel(enc, dec), n=3, n_samples=10, n_interventions=1
    ).double()
    with pytest.raises(EmptySamplerError, match="needs at least 2 images seen; got 0"):
        metric.compute()
    metric.update(torch.randn(8, 5, dtype=torch.float64))
    assert int(metric.count) == 8 and len(metric.sampler) == 8
    metric.reset()
    assert int(metric.count) == 0 and len(metric.sampler) == 0
    assert float(metric.sum_squared_error) == 0.0
    state = metric.state_dict()
    assert {"sum_squared_error", "count"} <= set(state)


def _dist_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        enc, dec = nn.Linear(4, 2).double(), nn.Linear(2, 4).double()
        metric = ConsistencyMetric(
            ResponseModel(enc, dec), n=2, n_samples=10, n_interventions=1, seed=1
        ).double()
        data = torch.randn(2, 6, 4, dtype=torch.float64)  # the same on every rank (same seed)
        metric.update(data[rank][: 3 + 3 * rank])  # ranks see different shares: 3 and 6 rows
        result = metric.compute()
        torch.save(
            {"rec": result.reconstruction, "n": result.images, "inv": result.report.invariance},
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_metric_syncs_across_ranks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(
        _dist_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["n"] == r1["n"] == 9
    assert r0["rec"] == r1["rec"]
    torch.testing.assert_close(r0["inv"], r1["inv"], equal_nan=True)
    torch.manual_seed(0)
    enc, dec = nn.Linear(4, 2).double(), nn.Linear(2, 4).double()
    data = torch.randn(2, 6, 4, dtype=torch.float64)
    rows = torch.cat([data[0][:3], data[1][:6]])
    with torch.no_grad():
        expected = (dec(enc(rows)) - rows).square().sum(1).mean()
    assert r0["rec"] == pytest.approx(float(expected), rel=1e-10)
