"""Building the library's objects changes nothing of the user's model: no buffer (BatchNorm
running statistics and counters), no parameter, no train/eval flag, no global random state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
)


class BNModel(nn.Module):
    """A user's model with BatchNorm in encoder and decoder, left in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
        )
        self.latent = XBlock(3)
        self.decoder = nn.Sequential(
            nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8)
        )


def _state(model: nn.Module) -> tuple[Any, ...]:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        tuple(m.training for m in model.modules()),
        torch.get_rng_state().clone(),
    )


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return (
        a[0].keys() == b[0].keys()
        and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
        and a[1] == b[1]
        and torch.equal(a[2], b[2])
    )


def _sampler() -> AggregatePosterior:
    q = AggregatePosterior(3)
    q.update(torch.randn(32, 3, generator=torch.Generator().manual_seed(0)))
    return q


BUILDERS: dict[str, Callable[[nn.Module], object]] = {
    "ResponseModel.of": lambda m: ResponseModel.of(m),
    "ResponseModel(lambda)": lambda m: ResponseModel(
        m.encoder, lambda n: m.decoder(m.latent(n)), xblock=m.latent, modules=[m]
    ),
    "InvarianceLoss": lambda m: InvarianceLoss(m),
    "InvarianceLoss.faithful": lambda m: InvarianceLoss.faithful(m, _sampler()),
    "EquivarianceLoss": lambda m: EquivarianceLoss(m, _sampler()),
    "EquivarianceLoss(lambda model)": lambda m: EquivarianceLoss(
        ResponseModel(m.encoder, lambda n: m.decoder(m.latent(n)), xblock=m.latent)
    ),
    "ConsistencyEvaluator": lambda m: ConsistencyEvaluator(m, _sampler()),
    "ConsistencyMetric": lambda m: ConsistencyMetric(m),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_building_changes_nothing_of_the_model(name: str) -> None:
    torch.manual_seed(0)
    model = BNModel().train()
    with torch.no_grad():  # running statistics away from their initial values
        model.decoder(model.latent(model.encoder(torch.randn(16, 8))))
    sampler = _sampler()
    before = _state(model)
    built = [BUILDERS[name](model) for _ in range(5)]  # e.g. one metric per validation epoch
    assert built[0] is not None
    assert _same(before, _state(model)), name
    assert len(sampler) == 32


def test_the_loss_leaves_batchnorm_statistics_and_modes_as_they_were() -> None:
    """A call of the default loss moves no BatchNorm statistic (its passes run the layers in eval
    mode) and leaves every module in the mode it found it; gradients still reach both BN layers'
    affine parameters."""
    torch.manual_seed(0)
    model = BNModel().train()
    loss = InvarianceLoss(model)
    means = model.encoder(torch.randn(16, 8)).detach()  # the user's pass moves the statistics
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    value = loss(means)
    assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
    assert all(m.training for m in model.modules())
    value.backward()
    assert model.decoder[1].weight.grad is not None and model.encoder[1].weight.grad is not None
    # batchnorm="update": plain training mode, the generated images move the statistics
    moved = InvarianceLoss(model, batchnorm="update")
    moved(means)
    assert not torch.equal(buffers["decoder.1.running_mean"], model.decoder[1].running_mean)


@pytest.mark.parametrize(
    "bad",
    [
        {"sampling": "normal"},
        {"reference": "prior"},
        {"weight": -1.0},
        {"n_interventions": 0},
    ],
    ids=lambda b: next(iter(b)),
)
def test_a_refused_loss_leaves_no_hook_on_the_model(bad: dict[str, Any]) -> None:
    """The default loss hooks the model's BatchNorm layers (batchnorm="data") only once every
    argument is accepted."""
    from consistency import ConsistencyError

    model = BNModel()
    with pytest.raises(ConsistencyError):
        InvarianceLoss(model, **bad)
    assert not any(m._forward_pre_hooks for m in model.modules())
    loss = InvarianceLoss(model)
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == 2  # one per BatchNorm
    loss.remove_hooks()
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_response_model_visits_each_module_once() -> None:
    model = BNModel()
    handle = ResponseModel(
        model.encoder,
        lambda n: model.decoder(model.latent(n)),
        xblock=model.latent,
        modules=[model],
    )
    assert handle.modules == [model]  # encoder and XBlock are inside it
    alone = ResponseModel(model.encoder, model.decoder, xblock=model.latent)
    assert alone.modules == [model.encoder, model.decoder, model.latent]
