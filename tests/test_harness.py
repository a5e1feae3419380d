"""Every component through the shared harness: loop oracle, dtypes, state_dict."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    EquivarianceLoss,
    InvarianceLoss,
    XBlock,
    draw_interventions,
)
from tests.harness import oracle_equivariance_loss, oracle_invariance_loss, oracle_scores


def nets(n: int = 3, d: int = 5, u: int = 2, dtype: torch.dtype = torch.float64):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, n)).to(dtype)
    block = XBlock(n, u, logit_init_std=1.0).to(dtype).eval()
    dec_net = nn.Sequential(nn.Linear(n * u, 8), nn.Tanh(), nn.Linear(8, d)).to(dtype)
    return enc, block, (lambda z: dec_net(block(z))), dec_net


@pytest.mark.parametrize("normalise", [None, "prior", "response"])
@pytest.mark.parametrize("dims", ["random", "all"])
def test_invariance_loss_matches_loop_oracle(dims: str, normalise: str | None) -> None:
    enc, _, dec, _ = nets()
    prior = torch.randn(5, 3, dtype=torch.float64)
    loss = InvarianceLoss(
        enc,
        dec,
        None,
        dims=dims,  # type: ignore[arg-type]
        n_interventions=2,
        normalise=normalise,  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(4),
    )
    value = loss(prior)
    iv = draw_interventions(
        prior, prior, dims=dims, n_interventions=2, generator=torch.Generator().manual_seed(4)
    )  # type: ignore[arg-type]
    expected = oracle_invariance_loss(enc, dec, prior, iv.source, iv.dims, iv.values, normalise)
    assert torch.allclose(value.double(), expected, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("normalise", [None, "prior", "response"])
def test_equivariance_loss_matches_loop_oracle(normalise: str | None) -> None:
    enc, block, dec, _ = nets()
    prior = torch.randn(4, 3, dtype=torch.float64)
    value = EquivarianceLoss(
        enc,
        dec,
        None,
        xblock=block,
        dims="all",
        normalise=normalise,  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(2),
    )(prior)
    iv = draw_interventions(prior, prior, dims="all", generator=torch.Generator().manual_seed(2))
    expected = oracle_equivariance_loss(
        enc, dec, block, prior, iv.source, iv.dims, iv.values, 3, normalise
    )
    assert torch.allclose(value.double(), expected, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("convention", ["spec", "authors"])
def test_evaluator_matches_loop_oracle(convention: str) -> None:
    enc, block, dec, _ = nets()
    q = AggregatePosterior(3, dtype=torch.float64)
    q.update(torch.randn(40, 3, dtype=torch.float64))
    g = torch.Generator().manual_seed(7)
    report = ConsistencyEvaluator(
        enc,
        dec,
        q,
        xblock=block,
        n_samples=6,
        n_interventions=2,
        generator=g,
        progress=False,
        batch_size=5,
        convention=convention,  # type: ignore[arg-type]
    ).evaluate()
    g = torch.Generator().manual_seed(7)  # replay the evaluator's draws
    prior = q.sample(6, "posterior", generator=g)
    values = q.intervention_values(torch.arange(3).repeat_interleave(2), generator=g).view(3, 2)
    inv, eqv, scn = oracle_scores(enc, dec, prior, values, causes=block, convention=convention)
    assert torch.allclose(report.invariance.double(), inv, atol=1e-5)
    assert report.equivariance is not None and eqv is not None
    assert torch.allclose(report.equivariance.double(), eqv, atol=1e-5)
    assert torch.allclose(report.self_consistency.double(), scn, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("component", ["invariance", "equivariance", "evaluator", "xblock"])
def test_dtypes(component: str, dtype: torch.dtype) -> None:
    enc, block, dec, _ = nets(dtype=dtype)
    prior = torch.randn(6, 3, dtype=dtype)
    if component == "invariance":
        out = InvarianceLoss(enc, dec, None)(prior)
        assert out.dtype in (torch.float32, torch.float64) and torch.isfinite(out)
    elif component == "equivariance":
        out = EquivarianceLoss(enc, dec, None, xblock=block)(prior)
        assert torch.isfinite(out)
    elif component == "evaluator":
        q = AggregatePosterior(3, dtype=dtype)
        q.update(prior)
        report = ConsistencyEvaluator(
            enc, dec, q, xblock=block, n_samples=6, n_interventions=1, progress=False
        ).evaluate()
        assert torch.isfinite(report.invariance).all()
    else:
        assert block(prior).dtype == dtype


@pytest.mark.parametrize("component", ["invariance", "equivariance", "xblock"])
def test_bf16_autocast(component: str) -> None:
    enc, block, dec, _ = nets(dtype=torch.float32)
    prior = torch.randn(6, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if component == "invariance":
            out = InvarianceLoss(enc, dec, None)(prior)
        elif component == "equivariance":
            out = EquivarianceLoss(enc, dec, None, xblock=block)(prior)
        else:
            out = block(prior).float().sum()
    assert torch.isfinite(out) and out.dtype == torch.float32


def test_state_dicts() -> None:
    _, block, dec, _ = nets()
    clone = XBlock(3, 2).double()
    clone.load_state_dict(block.state_dict())
    prior = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(clone.eval()(prior), block(prior))
    q = AggregatePosterior(3)
    q.update(torch.randn(5, 3))
    q2 = AggregatePosterior(3)
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2.bank, q.bank)
    for loss in (
        InvarianceLoss(nn.Identity(), dec, q),
        EquivarianceLoss(nn.Identity(), dec, q, xblock=block),
    ):
        assert (
            loss.state_dict() == {}
        )  # the losses own nothing: the model's state_dict is the one to save
