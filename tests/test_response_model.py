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
from consistency.models import build_model
from consistency.testing import assert_reports_close


def parts() -> tuple[nn.Module, XBlock, nn.Module]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).double()
    return enc, XBlock(3, 2).double(), nn.Linear(6, 6).double()


class Retrofit(nn.Module):
    """A user's model: .encoder, .latent, .decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.latent, self.decoder = parts()


def test_handle_operations_match_the_parts_in_any_chunking() -> None:
    enc, block, dec = parts()
    gen = lambda z: dec(block(z))  # noqa: E731
    noise = torch.randn(10, 3, dtype=torch.float64)
    images = torch.randn(10, 6, dtype=torch.float64)
    whole = ResponseModel(enc, gen, xblock=block, modules=[dec])
    chunked = ResponseModel(enc, gen, xblock=block, modules=[dec], max_batch=3)
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


def test_of_reads_encoder_latent_decoder_and_encode_generate() -> None:
    model = Retrofit()
    handle = ResponseModel.of(model)
    assert handle.xblock is model.latent and handle.modules[-1] is model
    noise = torch.randn(5, 3, dtype=torch.float64)
    model.eval()
    torch.testing.assert_close(handle.generate(noise), model.decoder(model.latent(noise)))
    # a later retrofit is seen: the latent is read when used
    plain = Retrofit()
    plain.latent = nn.Identity()  # type: ignore[assignment]
    h = ResponseModel.of(plain)
    assert h.xblock is None
    plain.latent = XBlock(3, 2).double()
    assert h.xblock is plain.latent
    paper = build_model("AE", "scene", "X")
    hp = ResponseModel.of(paper)
    assert hp.encode_fn == paper.encode and hp.generate_fn == paper.generate
    assert hp.xblock is paper.latent
    assert ResponseModel.of(hp) is hp
    assert ResponseModel.of(hp, max_batch=4).max_batch == 4 and hp.max_batch is None


def test_losses_evaluator_and_metric_take_the_model() -> None:
    model = Retrofit()
    handle = ResponseModel.of(model)
    latents = torch.randn(16, 3, dtype=torch.float64)
    for cls in (InvarianceLoss, EquivarianceLoss):
        a = cls(model, generator=torch.Generator().manual_seed(1))
        b = cls(handle, generator=torch.Generator().manual_seed(1))
        assert b.model is handle and a.xblock is model.latent
        torch.manual_seed(5)  # the XBlock's training-mode gates draw from the global generator
        first = a(latents)
        torch.manual_seed(5)
        torch.testing.assert_close(first, b(latents))
    bank = AggregatePosterior(3, dtype=torch.float64)
    bank.update(latents)
    kw = dict(n_samples=12, n_interventions=2, progress=False)
    one = ConsistencyEvaluator(model, bank, generator=torch.Generator().manual_seed(2), **kw)  # type: ignore[arg-type]
    two = ConsistencyEvaluator(handle, bank, generator=torch.Generator().manual_seed(2), **kw)  # type: ignore[arg-type]
    assert_reports_close(one.evaluate("hybrid"), two.evaluate("hybrid"))
    metric = ConsistencyMetric(model, n_samples=8, n_interventions=1).double()
    assert metric.n == 3  # read off the XBlock
    metric.update(torch.randn(8, 6, dtype=torch.float64))
    assert metric.compute().images == 8


def test_handle_misuse_is_a_clear_error() -> None:
    enc, _, dec = parts()
    with pytest.raises(TypeError, match="encode must be a callable"):
        ResponseModel(3, dec)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="xblock must be an XBlock"):
        ResponseModel(enc, dec, xblock=dec)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"modules must be nn\.Modules"):
        ResponseModel(enc, dec, modules=[lambda x: x])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_batch must be >= 1; got 0"):
        ResponseModel(enc, dec, max_batch=0)
    two = nn.Sequential(XBlock(3), XBlock(3))
    two.encoder, two.decoder = enc, dec  # type: ignore[assignment]
    with pytest.raises(ValueError, match="holds 2 XBlocks; say which one"):
        ResponseModel.of(two)
    with pytest.raises(TypeError, match="has neither encode\\(\\) and generate\\(\\) nor"):
        InvarianceLoss(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="ConsistencyMetric: pass n="):
        ConsistencyMetric(ResponseModel(enc, dec))
    with pytest.raises(TypeError, match="generate must return a Tensor of images; got tuple"):
        ResponseModel(enc, lambda z: (dec(z), None)).respond(torch.randn(4, 6).double())
