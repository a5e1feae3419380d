from __future__ import annotations

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    ConsistencyMetric,
    EquivarianceLoss,
    InvarianceLoss,
    ResponseModel,
    XBlock,
    response,
)
from consistency.testing import assert_reports_close


def parts() -> tuple[nn.Module, XBlock, nn.Module]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).double()
    return enc, XBlock(3, 2).double(), nn.Linear(6, 6).double()


def test_handle_operations_match_the_parts_in_any_chunking() -> None:
    enc, block, dec = parts()
    gen = lambda z: dec(block(z))  # noqa: E731
    noise = torch.randn(10, 3, dtype=torch.float64)
    images = torch.randn(10, 6, dtype=torch.float64)
    whole = ResponseModel(enc, gen, xblock=block, model=dec)
    chunked = ResponseModel(enc, gen, xblock=block, model=dec, max_batch=3)
    enc.train(), block.train(), dec.train()
    with whole.evaluation():
        assert not enc.training and not block.training and not dec.training
        assert not torch.is_grad_enabled()
        expected = response(enc, gen, noise)
        for handle in (whole, chunked):
            torch.testing.assert_close(handle.respond(noise), expected)
            torch.testing.assert_close(handle.generate(noise), gen(noise))
            torch.testing.assert_close(handle.means(images), enc(images))
            torch.testing.assert_close(handle.causes(noise), block(noise))
    assert enc.training and block.training and dec.training  # restored
    with pytest.raises(TypeError, match="causes need an XBlock"):
        ResponseModel(enc, gen).causes(noise)


def test_losses_evaluator_and_metric_take_the_handle() -> None:
    enc, block, dec = parts()
    gen = lambda z: dec(block(z))  # noqa: E731
    handle = ResponseModel(enc, gen, xblock=block)
    latents = torch.randn(16, 3, dtype=torch.float64)
    for cls, kw in ((InvarianceLoss, {}), (EquivarianceLoss, {"xblock": block})):
        a = cls(enc, gen, None, generator=torch.Generator().manual_seed(1), **kw)  # type: ignore[arg-type]
        b = cls(handle, generator=torch.Generator().manual_seed(1))  # type: ignore[arg-type]
        assert b.model is handle and b.xblock is block
        torch.manual_seed(5)  # the XBlock's training-mode gates draw from the global generator
        first = a(latents)
        torch.manual_seed(5)
        torch.testing.assert_close(first, b(latents))
    bank = AggregatePosterior(3, dtype=torch.float64)
    bank.update(latents)
    kw = dict(n_samples=12, n_interventions=2, progress=False)
    one = ConsistencyEvaluator(
        enc, gen, bank, xblock=block, generator=torch.Generator().manual_seed(2), **kw
    )  # type: ignore[arg-type]
    two = ConsistencyEvaluator(handle, bank, generator=torch.Generator().manual_seed(2), **kw)  # type: ignore[arg-type]
    assert_reports_close(one.evaluate("hybrid"), two.evaluate("hybrid"))
    metric = ConsistencyMetric(handle, n=3, n_samples=8, n_interventions=1).double()
    metric.update(torch.randn(8, 6, dtype=torch.float64))
    assert metric.model is handle and metric.compute().images == 8


def test_handle_misuse_is_a_clear_error() -> None:
    enc, block, dec = parts()
    handle = ResponseModel(enc, lambda z: dec(block(z)), xblock=block)
    with pytest.raises(TypeError, match="given a ResponseModel, pass no separate generate"):
        InvarianceLoss(handle, dec)
    with pytest.raises(TypeError, match="xblock= differs from the ResponseModel's own xblock"):
        EquivarianceLoss(handle, xblock=XBlock(3, 2).double())
    with pytest.raises(TypeError, match="encode must be a callable"):
        ResponseModel(3, dec)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch must be >= 1; got 0"):
        ResponseModel(enc, dec, max_batch=0)
