"""The ``authors`` convention: the paper's tables as the authors' code computed them.

Written against the formulas of issue 20 / ``../shared/SPEC.md`` ("Facts from the authors'
public code"); the loop oracles live in ``tests/harness.py``. The INV / EQV oracle runs through
the component harness (``tests/test_components.py``, ``scores (authors)``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from consistency import AggregatePosterior, ConsistencyEvaluator, ResponseModel, XBlock
from consistency.errors import InvalidValueError
from consistency.evaluator import CONVENTION_DEFAULTS
from consistency.functional import AUTHORS_MMD_SCALES, imq_mmd, imq_mmd_multiscale
from tests.harness import oracle_self_consistency_authors

MODES = ("posterior", "hybrid", "uniform")


def _model(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    dec = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    return enc, dec


def _bank(rows: int = 300, seed: int = 0) -> AggregatePosterior:
    q = AggregatePosterior(3, capacity=rows, dtype=torch.float64)
    q.update(
        torch.randn(rows, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


def test_table2_equals_the_independent_oracle_in_every_mode() -> None:
    """On a seeded nonlinear model the library's Table 2 row equals the loop oracle on the very
    prior samples it drew (recorded at the generator) within 1e-6, and those samples follow each
    mode's rule: distinct bank rows, coordinates of bank rows, the bank's bounding box."""
    enc, dec = _model()
    q = _bank()
    seen: list[torch.Tensor] = []

    def generate(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.detach().clone())
        return dec(z)

    ev = ConsistencyEvaluator(
        ResponseModel(enc, generate),
        q,
        scn_samples=120,
        max_batch=100,  # the 360 rows pass in four chunks
        convention="authors",
        generator=torch.Generator().manual_seed(4),
        progress=False,
    )
    table = ev.self_consistency_table(MODES)
    priors = torch.cat(seen).split(120)
    bank = q.bank
    for mode, prior, row in zip(MODES, priors, table.values):
        oracle = oracle_self_consistency_authors(enc, dec, prior)
        assert torch.allclose(row.double(), oracle, atol=1e-6), mode
    posterior, hybrid, uniform = priors
    matches = (posterior[:, None, :] == bank[None]).all(-1)
    assert bool(matches.any(1).all()) and len(set(matches.float().argmax(1).tolist())) == 120
    for i in range(3):
        assert bool(torch.isin(hybrid[:, i], bank[:, i]).all())
    assert bool((uniform >= bank.amin(0)).all() and (uniform <= bank.amax(0)).all())


def test_posterior_samples_are_at_most_the_pool() -> None:
    """Their posterior draw takes distinct rows, so 1000 samples from a pool of 128 are 128."""
    enc, dec = _model()
    seen: list[torch.Tensor] = []

    def generate(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.detach().clone())
        return dec(z)

    ev = ConsistencyEvaluator(
        ResponseModel(enc, generate), _bank(), pool_size=128, convention="authors", progress=False
    )
    ev.self_consistency_table(("posterior",))
    prior = torch.cat(seen)
    assert prior.shape[0] == 128 and torch.unique(prior, dim=0).shape[0] == 128


def test_pool_size_bounds_every_draw_in_both_conventions() -> None:
    q = _bank()
    for convention in ("spec", "authors"):
        seen: list[torch.Tensor] = []

        def generate(z: torch.Tensor, seen: list[torch.Tensor] = seen) -> torch.Tensor:
            seen.append(z.detach().clone())
            return z

        ev = ConsistencyEvaluator(
            ResponseModel(lambda x: x, generate), q, n_samples=40, n_interventions=3,
            pool_size=5, convention=convention, progress=False,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        ev.evaluate("posterior" if convention == "spec" else "hybrid")
        values = torch.cat(seen)
        for i in range(3):  # every coordinate (prior or intervention value) is one of 5 rows'
            assert torch.unique(values[:, i]).numel() <= 5


def test_convention_defaults_are_the_authors_counts() -> None:
    q = _bank()
    ev = ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), q, convention="authors")
    assert (ev.n_samples, ev.n_interventions, ev.scn_samples) == (50, 50, 1000)
    assert CONVENTION_DEFAULTS["authors"].scn_samples == 1000
    spec = ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), q, n_samples=300)
    assert (spec.n_samples, spec.n_interventions, spec.scn_samples) == (300, 10, 300)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool_size": 1}, "pool_size must be"),
        ({"scn_samples": 1}, r"scn_samples must be >= 2"),
        ({"convention": "paper"}, 'convention must be "spec" or "authors"'),
    ],
)
def test_bad_arguments_name_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), _bank(), **kwargs)  # type: ignore[arg-type]


def test_authors_equivariance_compares_the_intervened_response_with_the_response() -> None:
    """With R = id every S(I(R(N))) equals S(R(I(N))): EQV is 1 everywhere; with R = N / 2
    it is not, and the score is not normalised by a variance (scaling the causes scales 1 - EQV)."""
    q = _bank()
    block = XBlock(3).double().eval()
    ident = ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: block(z), xblock=block), q,
        convention="authors", progress=False,
    )  # fmt: skip
    report = ident.evaluate()
    assert report.equivariance is not None
    assert torch.allclose(report.equivariance, torch.ones(3, 3), atol=1e-6)
    assert report.mean_equivariance == pytest.approx(1.0, abs=1e-6)


def test_multiscale_mmd_is_the_sum_over_the_authors_scales() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 2, generator=g, dtype=torch.float64) + 1
    total = 0.0
    for s in AUTHORS_MMD_SCALES:  # by hand: C = 2 D s, off-diagonal within, all pairs across
        c = 2 * 2 * s

        def k(a: torch.Tensor, b: torch.Tensor, c: float = c) -> float:
            return c / (c + float(((a - b) ** 2).sum()))

        xx = sum(k(x[i], x[j]) for i in range(3) for j in range(3) if i != j) / 6
        yy = sum(k(y[i], y[j]) for i in range(3) for j in range(3) if i != j) / 6
        xy = sum(k(x[i], y[j]) for i in range(3) for j in range(3)) / 9
        total += xx + yy - 2 * xy
    assert float(imq_mmd_multiscale(x, y)) == pytest.approx(total, abs=1e-12)
    assert float(imq_mmd_multiscale(x, y, scales=(1.0,))) == pytest.approx(
        float(imq_mmd(x, y, scale=4.0))
    )
    report = ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: z), _bank(), n_samples=50, progress=False
    ).evaluate()
    assert math.isfinite(report.mmd_hybrid_multiscale)
    assert "7 scales" in str(report)


def test_adjacency_density_counts_open_edges_over_n_squared() -> None:
    block = XBlock(4)
    with torch.no_grad():  # 6 allowed edges, 3 open
        block.gate_logits.copy_(torch.tensor([2.0, -2.0, 3.0, -1.0, 1.0, -3.0]))
    assert block.edge_density() == pytest.approx(3 / 6)
    assert block.adjacency_density() == pytest.approx(3 / 16)
    with torch.no_grad():
        block.gate_logits.fill_(5.0)  # every allowed edge: the paper's printed Table 1 values
    assert block.adjacency_density() == pytest.approx((4 - 1) / (2 * 4))
    six = XBlock(6)
    with torch.no_grad():
        six.gate_logits.fill_(5.0)
    assert round(100 * six.adjacency_density(), 2) == 41.67
