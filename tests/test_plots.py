from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    ResponseModel,
    XBlock,
    plots,
)


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    n, u = 3, 2
    block = XBlock(n, u)
    cause_dec = nn.Sequential(nn.Linear(n * u, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6)))
    enc = nn.Sequential(nn.Flatten(), nn.Linear(36, n))
    q = AggregatePosterior(n)
    q.update(torch.randn(100, n))
    ev = ConsistencyEvaluator(
        ResponseModel(enc, lambda z: cause_dec(block(z)), xblock=block, modules=[cause_dec]),
        q,
        n_samples=20,
        n_interventions=2,
        progress=False,
    )
    return ev, cause_dec


def test_every_plot_has_its_axes(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ev, cause_dec = setup
    n = ev.n
    report = ev.evaluate()
    assert len(plots.plot_invariance(report).axes) == 2  # heatmap + colorbar
    assert len(plots.plot_equivariance(report).axes) == 2
    assert len(plots.plot_adjacency(report).axes) == 2
    assert len(plots.plot_adjacency(ev.xblock).axes) == 2
    assert len(plots.plot_traversal_responses(ev, steps=5).axes) == n
    assert len(plots.plot_latent_traversals(ev, steps=4).axes) == n * 4
    assert len(plots.plot_hybridisation_grid(ev, n_pairs=3).axes) == (n + 2) * 3
    assert len(plots.plot_double_intervention(ev).axes) == n * n
    assert (
        len(plots.plot_double_intervention(ev, space="causes", cause_decoder=cause_dec).axes)
        == n * n
    )
    assert len(plots.plot_reconstructions_and_samples(ev, torch.rand(5, 1, 6, 6)).axes) == 3 * 5
    paths = plots.save_figures(ev, tmp_path, images=torch.rand(4, 1, 6, 6), cause_decoder=cause_dec)
    assert len(paths) == 6 and all(p.stat().st_size > 1000 for p in paths)


def test_plot_errors(setup) -> None:  # type: ignore[no-untyped-def]
    ev, _ = setup
    with pytest.raises(ValueError, match='space="causes" needs'):
        plots.plot_double_intervention(ev, space="causes")
    with pytest.raises(ValueError, match="space must be"):
        plots.plot_double_intervention(ev, space="x")
