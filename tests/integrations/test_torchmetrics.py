"""The torchmetrics metrics equal the library's values, on one process and synced on two."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("torchmetrics")
from torchmetrics import MetricCollection

from consistency import ConsistencyMetric, ResponseModel, XBlock
from consistency.integrations.torchmetrics import (
    ConsistencyScores,
    DisentanglementScores,
)
from consistency.metrics import ground_truth_scores


def _model() -> ResponseModel:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    block = XBlock(3).double()
    dec = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 6)).double()
    return ResponseModel(enc, lambda z: dec(block(z)), xblock=block, modules=[dec])


def _data() -> torch.Tensor:
    return torch.randn(2, 12, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


KW = dict(n_samples=20, n_interventions=2, seed=4)


def _library(model: ResponseModel, rows: torch.Tensor) -> dict[str, float]:
    metric = ConsistencyMetric(model, n=3, **KW).double()  # type: ignore[arg-type]
    metric.update(rows)
    result = metric.compute()
    out = {
        "mean_invariance": result.report.mean_invariance,
        "mean_equivariance": result.report.mean_equivariance,
        "mmd_hybrid": result.report.mmd_hybrid,
        "reconstruction": result.reconstruction,
    }
    out.update({f"self_consistency_{m}": v for m, v in result.self_consistency.means().items()})
    return out  # type: ignore[return-value]


def test_consistency_scores_equal_the_library_in_a_collection_and_plot() -> None:
    model, data = _model(), _data()
    collection = MetricCollection({"consistency": ConsistencyScores(model, n=3, **KW)})  # type: ignore[arg-type]
    for batch in data:
        collection.update(batch)
    got = collection.compute()
    expected = _library(model, torch.cat(list(data)))
    for key, value in expected.items():
        # a dict-valued member is flattened into the collection's output by its own keys
        assert float(got[key]) == pytest.approx(value, abs=1e-6), key
    metric = ConsistencyScores(model, n=3, **KW)  # type: ignore[arg-type]
    metric.update(data[0])
    fig, ax = metric.plot()
    assert fig is not None and ax is not None
    metric.reset()
    with pytest.raises(ValueError, match="at least 2 images"):
        metric.compute()


def test_ground_truth_scores_equal_the_library() -> None:
    g = torch.Generator().manual_seed(0)
    factors = torch.rand(300, 2, generator=g)
    codes = torch.cat(
        [factors * 2 + 0.05 * torch.randn(300, 2, generator=g), torch.randn(300, 1, generator=g)], 1
    )
    metric = DisentanglementScores(factor_bins=10)
    for c, f in zip(codes.split(100), factors.split(100)):
        metric.update(c, f)
    got = metric.compute()
    expected = ground_truth_scores(codes, factors, factor_bins=10).summary()
    for key, value in expected.items():
        assert float(got[key]) == pytest.approx(value, abs=1e-6), key
    with pytest.raises(ValueError, match="same B"):
        metric.update(codes[:3], factors[:2])


def _worker(rank: int, world: int, init: str, out: str) -> None:
    import datetime

    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        metric = ConsistencyScores(_model(), n=3, **KW)  # type: ignore[arg-type]
        metric.update(_data()[rank])
        torch.save({k: v for k, v in metric.compute().items()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_consistency_scores_sync_across_two_processes(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    mp.start_processes(
        _worker, args=(2, init, str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    expected = _library(_model(), torch.cat(list(_data())))
    for key, value in expected.items():
        assert float(r0[key]) == pytest.approx(value, abs=1e-6), key
        assert float(r1[key]) == float(r0[key]), key
