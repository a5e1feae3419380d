"""The slips a new user makes (issue 21's table), each caught where it happens.

Every case asserts the error type or the warning, that the message names the argument and the
fix, and that the user's model (parameters, buffers, train/eval flags), sampler and the global
RNG are unchanged by the refused call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyMetric,
    EquivarianceLoss,
    InvarianceLoss,
    ResponseModel,
    XBlock,
    frozen_batchnorm,
)
from consistency.errors import (
    ConsistencyError,
    EncoderOutputError,
    InvalidTypeError,
    InvalidValueError,
    ShapeError,
)


class AE(nn.Module):
    def __init__(self, n: int = 3, d: int = 8, width: int | None = None) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, n)
        )
        self.latent: nn.Module = nn.Identity()
        self.decoder = nn.Sequential(
            nn.Linear(width or n, d), nn.Sigmoid(), nn.Unflatten(1, (1, d))
        )


def _state(*objs: Any) -> list[Any]:
    out: list[Any] = [torch.get_rng_state()]
    for obj in objs:
        if isinstance(obj, nn.Module):
            out.append({k: v.detach().clone() for k, v in obj.state_dict().items()})
            out.append([m.training for m in obj.modules()])
    return out


def _same(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif isinstance(x, dict):
            if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
                return False
        elif x != y:
            return False
    return True


@contextmanager
def unchanged(*objs: Any) -> Iterator[None]:
    before = _state(*objs)
    yield
    assert _same(before, _state(*objs)), "the refused call changed the user's model or RNG"


def images(b: int = 6) -> torch.Tensor:
    return torch.rand(b, 1, 8)


# ---------------------------------------------------------------- silent training with no effect


def test_loss_under_no_grad_warns() -> None:
    model = AE().train()
    loss = InvarianceLoss(model)
    means = model.encoder(images())
    with torch.no_grad(), pytest.warns(UserWarning, match=r"no_grad.*no gradient"):
        loss(means)


def test_loss_on_a_model_in_eval_mode_warns() -> None:
    model = AE().eval()
    loss = InvarianceLoss(model)
    means = model.encoder(images())
    with pytest.warns(UserWarning, match=r"eval mode.*model\.train\(\)"):
        loss(means)


def test_images_in_0_255_warn_in_the_metric() -> None:
    model = AE()
    metric = ConsistencyMetric(model, n=3)
    with pytest.warns(UserWarning, match=r"\[0, 255\].*divide by 255"):
        metric.update(images() * 255)


@pytest.mark.parametrize("weight", [-4.0, math.nan, math.inf])
@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_weight_must_be_finite_and_non_negative(cls: Any, weight: float) -> None:
    model = AE()
    with (
        unchanged(model),
        pytest.raises(InvalidValueError, match=r"weight must be finite and >= 0; got"),
    ):
        cls(model, weight=weight)


def test_metric_with_one_latent_dimension_raises() -> None:
    with pytest.raises(InvalidValueError, match=r"n >= 2.*got n = 1"):
        ConsistencyMetric(AE(n=1), n=1)


# ------------------------------------------------ errors that name the wrong thing or come from torch


def test_generate_returning_a_tuple_names_generate() -> None:
    model = AE()
    handle = ResponseModel(model.encoder, lambda z: (model.decoder(z), None), modules=[model])
    metric = ConsistencyMetric(handle, n=3)
    batch = images()
    with unchanged(model), pytest.raises(InvalidTypeError, match=r"generate must return a Tensor"):
        metric.update(batch)
    loss = InvarianceLoss(handle)
    means = model.encoder(images()).detach()
    with unchanged(model), pytest.raises(InvalidTypeError, match=r"generate must return a Tensor"):
        loss(means)


def test_xblock_wider_than_the_decoder_is_named() -> None:
    model = AE(n=3)
    model.latent = XBlock(3, unit_size=4)  # 12 features into a decoder that takes 3
    loss = InvarianceLoss(model)
    means = model.encoder(images())
    with pytest.raises(ShapeError, match=r"XBlock\(3, unit_size=4\) outputs 12 features"):
        loss(means)
    metric = ConsistencyMetric(model)
    with pytest.raises(ShapeError, match=r"XBlock\(3, unit_size=4\) outputs 12 features"):
        metric.update(images())


def test_bf16_model_with_a_float32_bank() -> None:
    model = AE().to(torch.bfloat16)
    bank = AggregatePosterior(3)
    bank.update(torch.randn(50, 3))
    metric = ConsistencyMetric(model, n=3, n_samples=20, n_interventions=2)
    metric.update(images().to(torch.bfloat16))
    result = metric.compute()
    assert math.isfinite(result.report.mean_invariance)


def test_frozen_batchnorm_on_a_function_names_the_argument() -> None:
    model = AE()
    with pytest.raises(InvalidTypeError, match=r"frozen_batchnorm.*nn\.Module.*function"):
        with frozen_batchnorm(lambda z: model.decoder(z)):  # type: ignore[arg-type]
            pass


def test_encoder_dict_with_other_keys_lists_the_keys_read() -> None:
    model = AE()
    handle = ResponseModel(lambda x: {"z": model.encoder(x)}, model.decoder, modules=[model])
    metric = ConsistencyMetric(handle, n=3)
    with pytest.raises(EncoderOutputError, match=r"\.mean, \.loc, \.mu.*keys \['z'\]"):
        metric.update(images())


def test_uint8_images_and_image_label_pairs_are_refused() -> None:
    model = AE()
    metric = ConsistencyMetric(model, n=3)
    pixels, pair = (images() * 255).to(torch.uint8), [images(), torch.zeros(6)]
    with unchanged(model), pytest.raises(InvalidTypeError, match=r"floating point.*uint8.*255"):
        metric.update(pixels)
    with unchanged(model), pytest.raises(InvalidTypeError, match=r"images only.*labels"):
        metric.update(pair)  # type: ignore[arg-type]
    assert isinstance(InvalidTypeError("x"), ConsistencyError)
