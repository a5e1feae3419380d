"""torch.compile of a whole XC training step: no graph break, and the compiled step matches eager.

The step is what a user's loop runs: encoder, sampler update, XBlock, decoder, reconstruction and
the consistency loss (hybrid prior samples from the batch, random dimensions and values from the
global RNG). Compiled with ``fullgraph=True`` (any graph break is an error) on the
``aot_eager`` backend, which traces forward and backward like inductor but runs the ops eagerly,
so the random draws are the same and the comparison can be tight: loss and every gradient agree
to 1e-5 relative (float32 re-association in the traced graph; measured differences ~1e-7).
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo
from torch import nn

from consistency import AggregatePosterior, EquivarianceLoss, InvarianceLoss, ResponseModel, XBlock


def _parts(kind: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(16, 32), nn.Mish(), nn.Linear(32, 4))
    dec = nn.Sequential(nn.Linear(4, 32), nn.Mish(), nn.Linear(32, 16))
    xb = XBlock(4, 1)
    sampler = AggregatePosterior(4, capacity=64)

    def generate(n: torch.Tensor) -> torch.Tensor:
        return dec(xb(n))

    loss = (
        InvarianceLoss(
            ResponseModel(enc, generate),
            sampling="hybrid",
            reference="noise",
            n_samples=8,
            weight=1.0,
        )
        if kind == "invariance"
        else EquivarianceLoss(
            ResponseModel(enc, generate, xblock=xb),
            sampling="hybrid",
            n_samples=8,
            weight=1.0,
            stop_reference=False,
        )
    )
    params = [*enc.parameters(), *dec.parameters(), *xb.parameters()]

    def step(x: torch.Tensor) -> torch.Tensor:
        z = enc(x)
        sampler.update(z)
        reconstruction = (generate(z) - x).square().sum(1).mean()
        return reconstruction + loss(z)

    return step, params, sampler


@pytest.mark.parametrize("kind", ["invariance", "equivariance"])
def test_xc_training_step_has_no_graph_break(kind: str) -> None:
    step, _, _ = _parts(kind)
    explanation = dynamo.explain(step)(torch.randn(32, 16))
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    assert explanation.graph_count == 1


@pytest.mark.parametrize("kind", ["invariance", "equivariance"])
def test_compiled_xc_training_step_matches_eager(kind: str) -> None:
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    results = []
    for compiled in (False, True):
        dynamo.reset()
        step, params, sampler = _parts(kind)
        fn = torch.compile(step, fullgraph=True, backend="aot_eager") if compiled else step
        torch.manual_seed(123)
        value = fn(x)
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in params], sampler.bank.clone()))
    (v0, g0, b0), (v1, g1, b1) = results
    torch.testing.assert_close(v1, v0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b1, b0, rtol=0, atol=0)


def test_bf16_autocast_training_stays_finite_for_200_steps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import math

    from consistency.data import SceneDataset
    from consistency.models import build_model
    from consistency.train import TrainConfig, train

    torch.manual_seed(0)
    model = build_model("AE", "scene", "XC-I")
    cfg = TrainConfig(
        steps=200, batch_size=8, lr=1e-3, amp=True, checkpoint_every=0, out=str(tmp_path), progress=False,
        figures=False, seed=0,
    )  # fmt: skip
    result = train(model, SceneDataset(1024), cfg, evaluate=False)
    assert len(result.history) == 200
    for record in result.history:
        assert all(math.isfinite(v) for k, v in record.items() if isinstance(v, float)), record
    assert all(torch.isfinite(p).all() for p in model.parameters())
    first, last = result.history[0]["reconstruction"], result.history[-1]["reconstruction"]
    assert last < 0.7 * first  # and it learns
